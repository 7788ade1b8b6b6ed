"""A demo-like world for the leak test, built through the real services, where every personal
field holds a unique canary string, and the oracle: who may see which case's canaries.

The oracle is written out by hand from the consent rules (DOMAIN.md "Consent", issue #4),
not derived from the code under test.

Cases (all through the real registration, consent, planning and table services):

- A: 14 years old; youth and parent consent for the organisation Karakter only (a named
  recipient). Accare sits at the same table without being named.
- B: 9 years old; no consent at all: discussed anonymously.
- C: 9 years old; both parents consent for "everyone at the table", and one parent objects
  to Karakter (an objection beats a consent; the more specific record wins).
- D: 14 years old; consent for everyone at the table, then crypto-shredded.

A and B also had an earlier session, closed through the closing flow with the family's answer
per party on sharing the report (A: Accare left out; B: Karakter and the wijkteam), with arrangement
lines and their stated shares, a plan (activities, the three agreements) and its report; the
open sessions of A and B hold a line and an activity too.

Besides the tables: A has a youth-alone exception (its reason is personal) and a factor link;
B was handed to the manager zorgbemiddeling (RET), allocated with an overriding reason and
disputed (both written under the pseudonym); C has a settlement allocation (toewijzing) held
by Karakter, and the last quarter is closed into a settlement run.

The kassier model in that run: Horizon holds a second allocation of C as kassier; Altra
(6,60 %) and Ambiq (€ 2,50 an hour) are registered with it as sub-providers and deliver under
it; each has a bank account. So the run holds a kassier ledger, statements with margins for the
kassier and each sub-provider, and a payment batch (SEPA XML). The finance staff of Horizon and
Altra are viewers too: at no table, they know C only by the pseudonym on its allocation; a
statement and the kassier page show allocation numbers, never a pseudonym.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum

from babel.dates import format_date
from sqlalchemy import select

from keerpunt.consent import service as consent
from keerpunt.consent.service import Decision, Purpose
from keerpunt.platform.auth import create_invitation
from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import Case, CaseMember, Organisation, User
from keerpunt.platform.principal import Principal, family_principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.bank_accounts import record_bank_account
from keerpunt.settlement.declaration import Allocation as SettlementAllocation
from keerpunt.settlement.declaration import (
    Frequency,
    Margin,
    MarginKind,
    SubProviderAgreement,
    Variant,
)
from keerpunt.settlement.rules import Quarter
from keerpunt.settlement.service import (
    DeliveryDraft,
    add_agreement,
    add_allocation,
    close_quarter,
    quarter_of,
    record_delivery,
)
from keerpunt.triage import allocation_service as alloc
from keerpunt.triage import plan as step5
from keerpunt.triage import report as reports
from keerpunt.triage import service as triage
from keerpunt.triage.models import Report
from tests.helpers import make_org, make_user
from tests.settlement.factories import add_tariff

CASES = ("A", "B", "C", "D")


class Sees(Enum):
    """What a viewer may see of one case."""

    NOTHING = "nothing"  # not even that it exists
    PSEUDONYM = "pseudonym"  # the pseudonym and non-identifying facts: no canary at all
    TABLE = "table"  # at the table without consent: plus the items written anonymously
    FULL = "full"  # every personal field


# The oracle: viewer -> what they may see of cases A, B, C, D.
# coordinator: at every table (plans every session), not named in A's consent, included in
#   C's "everyone at the table". Ruud (Karakter): named in A, objected to in C. Sanne (Accare):
#   at the table everywhere, not named in A, included in C. Gerrit (Trias): a triage member
#   at no table: the pseudonym only. The registrar registered every case (and is its local
#   team). A shredded case shows nobody any personal data. The penvoerder's finance staff
#   settle fixed arrangements (A, B and C have one: a closed session) under the case's
#   pseudonym, and know nothing else.
#   Staff without a part (the RET manager, a staff member without roles, the municipality's
#   funder who reads the monitor) and anonymous visitors see nothing. The RET manager
#   allocates B (the manager zorgbemiddeling works under the pseudonym: "no names") and knows
#   only that. Karakter holds C's settlement allocation; Ruud sees it anyway. Every family
#   member (the JIM included) sees their own case in full, and nothing of the others.
N, P, T, F = Sees.NOTHING, Sees.PSEUDONYM, Sees.TABLE, Sees.FULL
STAFF_ORACLE: dict[str, tuple[Sees, Sees, Sees, Sees]] = {
    "coordinator": (T, T, F, T),
    "ruud_named_karakter": (F, T, T, T),
    "sanne_accare": (T, T, F, T),
    "gerrit_no_table": (P, P, P, P),
    "registrar": (F, F, F, P),
    "finance_penvoerder": (P, P, P, N),  # settles fixed arrangements, by pseudonym
    "ret_manager": (N, P, N, N),  # allocates B, by pseudonym
    "outsider_staff": (N, N, N, N),
    "funder_gemeente": (N, N, N, N),  # the monitor's aggregates only: no case, no pseudonym
    # The kassier model: the finance staff of the kassier (Horizon, holding an allocation of
    # C) and of its sub-provider (Altra, delivering under it) are at no table. Like Karakter's
    # staff for T-LEAK-C, they know the case of the allocation they deliver under by its
    # pseudonym (the allocations page names it), and nothing else.
    "kassier_finance": (N, N, P, N),
    "sub_provider_finance": (N, N, P, N),
}

# The kassier arrangement (DOMAIN.md "Kassier model"): the kassier pays its sub-providers.
# Who may see the kassier's ledger and download its payment batch: its own finance staff and
# the penvoerder's (who settles with the municipalities). Not the sub-provider (it must not
# see what the kassier keeps of others), not staff without the finance role, not the
# municipality's funder, not the family.
KASSIER_READERS = frozenset({"finance_penvoerder", "kassier_finance"})
# Each provider's statement: its own staff and the penvoerder's finance staff.
STATEMENT_READERS = {
    "karakter": frozenset({"finance_penvoerder", "ruud_named_karakter"}),
    "accare": frozenset(),  # delivered nothing: no statement
    "kassier": frozenset({"finance_penvoerder", "kassier_finance"}),
    "sub": frozenset({"finance_penvoerder", "sub_provider_finance"}),
    "other_sub": frozenset({"finance_penvoerder"}),  # no viewer of its own
}
KASSIER_IBAN, SUB_IBAN = "NL91ABNA0417164300", "NL20INGB0001234567"
# Altra's 10 hours at € 124,80: € 1.248,00, of which the kassier keeps 6,60 % (€ 82,37)
SUB_GROSS, SUB_MARGIN, SUB_NET = 124_800, 8_237, 116_563
# Ambiq, the other sub-provider: 8 hours, € 2,50 an hour for the kassier (€ 20,00 of € 998,40)
OTHER_SUB_IBAN, OTHER_SUB_MARGIN = "NL39RABO0300065264", Margin(MarginKind.FIXED, 250)
OTHER_SUB_GROSS, OTHER_SUB_CUT, OTHER_SUB_NET = 99_840, 2_000, 97_840
ANONYMOUS_VISITOR = (N, N, N, N)

# In a meeting the family itself takes part in (connected to its live stream: the youth, and
# under 16 a parent too), the professionals at the table see the case in full, unless one
# whose consent is needed objected to them (consent.rules.decide, seed 003 §5.2). The crawler
# lets every family member listen to the meetings of their own case, so on those streams:
# A (14, youth alone) and B (9): the coordinator, Ruud and Sanne in full. C: Ruud stays under
# the pseudonym (a parent objected to Karakter). D is shredded: nothing changes.
WITH_FAMILY_AT_TABLE: dict[str, frozenset[str]] = {
    "A": frozenset({"coordinator", "ruud_named_karakter", "sanne_accare"}),
    "B": frozenset({"coordinator", "ruud_named_karakter", "sanne_accare"}),
    "C": frozenset({"coordinator", "sanne_accare"}),
    "D": frozenset(),
}


# Who may read each case's report (verslag): the family itself, and the parties the family
# allowed at the closing — for each party the answer of everyone whose consent the law
# requires (A: the youth alone, under the youth-alone exception; B: the parent). The
# registrar's organisation (the local team) is a party like any other. A: Karakter (Ruud),
# Pactum (the coordinator) and the wijkteam (the registrar) yes, Accare (Sanne) left out.
# B: Accare and Pactum yes, Karakter and the wijkteam left out. C was closed without the
# closing flow: no answers, so only the family. Nobody else: not Gerrit (at no table), not
# the penvoerder's finance staff or the RET manager (no part in sharing).
REPORT_READERS: dict[str, frozenset[str]] = {
    "A": frozenset({"coordinator", "ruud_named_karakter", "registrar"}),
    "B": frozenset({"coordinator", "sanne_accare"}),
    "C": frozenset(),
}
# the parties the family said no to
REPORT_LEFT_OUT = {"A": ("Accare",), "B": ("Karakter", "Sociaal Wijkteam")}


def may_read_report(viewer: str, case: str) -> bool:
    if viewer.startswith("family:"):
        return viewer.split(":")[1] == case
    return viewer in REPORT_READERS[case]


def family_oracle(own_case: str) -> tuple[Sees, ...]:
    return tuple((F if c != "D" else P) if c == own_case else N for c in CASES)


def canary(name: str, case: str) -> str:
    return f"CANARY-{name}-{case}-END"


def _valid_bsn(seed: int) -> str:
    """A BSN that passes the 11-proef, unique per seed."""
    n = 100_000_000 + seed * 1000
    while True:
        digits = f"{n:09d}"
        total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
        if (total - int(digits[8])) % 11 == 0 and digits[0] != "0":
            return digits
        n += 1


@dataclass
class LeakWorld:
    case_ids: dict[str, int]
    session_ids: dict[str, list[int]]  # per case
    staff: dict[str, User]
    family: dict[str, dict[str, int]]  # case -> role key -> member id
    # canary -> (case, needs): FULL for personal data, TABLE for items written anonymously,
    # PSEUDONYM for the pseudonym itself
    canaries: dict[str, tuple[str, Sees]] = field(default_factory=dict)
    invitation_tokens: list[str] = field(default_factory=list)
    # ids for the routes of the other pages: factor links, a youth-alone exception, RET
    # allocation requests, decisions and disputes (by kind)
    ids: dict[str, list[int]] = field(default_factory=dict)
    id_case: dict[str, str] = field(default_factory=dict)  # route parameter -> case of its ids
    quarters: list[str] = field(default_factory=list)  # settlement quarters with a page
    items: list[tuple[int, str, int]] = field(default_factory=list)  # (session, kind, id)
    # ids that live under a session (plan activities, arrangement lines): name -> (session, id)
    session_ids_of: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)  # case -> the report's public id
    # the kassier arrangement: "kassier" and "sub" (its sub-provider) -> organisation id;
    # the statements: also "karakter" and "accare"
    providers: dict[str, int] = field(default_factory=dict)

    def personal(self, value: str, case: str) -> str:
        self.canaries[value] = (case, Sees.FULL)
        return value

    def oracle(self, viewer: str) -> tuple[Sees, ...]:
        if viewer == "anonymous":
            return ANONYMOUS_VISITOR
        if viewer in STAFF_ORACLE:
            return STAFF_ORACLE[viewer]
        return family_oracle(viewer.split(":")[1])  # "family:A:parent1"

    def forbidden(self, viewer: str, family_at_table: str | None = None) -> set[str]:
        """The canaries this viewer must never get; ``family_at_table``: on the live stream
        of a meeting of that case with its family taking part."""
        sees = dict(zip(CASES, self.oracle(viewer), strict=True))
        if family_at_table and viewer in WITH_FAMILY_AT_TABLE[family_at_table]:
            sees[family_at_table] = F
        out = set()
        rank = {N: 0, P: 1, T: 2, F: 3}
        for value, (case, needs) in self.canaries.items():
            if rank[sees[case]] < rank[needs]:
                out.add(value)
        # A report's address is secret: whoever may not read it must not even learn it.
        for case, public_id in self.reports.items():
            if not may_read_report(viewer, case):
                out.add(public_id)
        return out

    def case_of_session(self, session_id: int) -> str | None:
        return next((c for c, ids in self.session_ids.items() if session_id in ids), None)

    def viewers(self) -> dict[str, tuple[int | None, int | None]]:
        """Every role the crawler logs in as: (user id, member id); (None, None) anonymous."""
        out: dict[str, tuple[int | None, int | None]] = {
            k: (u.id, None) for k, u in self.staff.items()
        }
        for case, members in self.family.items():
            for key, member_id in members.items():
                out[f"family:{case}:{key}"] = (None, member_id)
        out["anonymous"] = (None, None)
        return out


def _date_forms(day: dt.date) -> list[str]:
    """Every way a birth date could be shown."""
    forms = {day.isoformat(), day.strftime("%d-%m-%Y")}
    for locale in ("nl", "en"):
        for fmt in ("long", "medium", "short"):
            forms.add(format_date(day, fmt, locale=locale))
    return sorted(forms)


async def build_leak_world(rt: Runtime) -> LeakWorld:
    wijkteam = await make_org(rt, "Sociaal Wijkteam", kind="other")
    pactum = await make_org(rt, "Pactum", is_penvoerder=True, agb_code="98000005")
    karakter = await make_org(rt, "Karakter", agb_code="98000004")
    accare = await make_org(rt, "Accare", agb_code="98000001")
    trias = await make_org(rt, "Trias Jeugdhulp", agb_code="98000008")
    deventer = await make_org(rt, "Gemeente Deventer", kind="municipality", cbs_code="0150")
    staff = {
        "registrar": await make_user(rt, wijkteam, "Wim Wijkteam", "registrar"),
        "coordinator": await make_user(rt, pactum, "Carla Coord", "coordinator"),
        "ruud_named_karakter": await make_user(
            rt, karakter, "Ruud Regie", "triage_member", "regiebehandelaar"
        ),
        "sanne_accare": await make_user(
            rt, accare, "Sanne Systeem", "triage_member", "systeembehandelaar"
        ),
        "gerrit_no_table": await make_user(
            rt, trias, "Gerrit Gezin", "triage_member", "gezinsbehandelaar"
        ),
        "finance_penvoerder": await make_user(rt, pactum, "Fatima Financien", "finance"),
        "ret_manager": await make_user(rt, pactum, "Rita Ret", "allocation_manager"),
        "outsider_staff": await make_user(rt, accare, "Otto Buiten", ""),
        "funder_gemeente": await make_user(rt, deventer, "Frank Financier", "funder"),
    }
    world = LeakWorld({}, {}, staff, {})
    today = dt.datetime.now(AMSTERDAM).date()
    reg = staff_principal(staff["registrar"])
    ages = {"A": 14, "B": 9, "C": 9, "D": 14}
    for i, case in enumerate(CASES):
        birth = today.replace(year=today.year - ages[case], day=1) - dt.timedelta(days=3 + i)
        for form in _date_forms(birth):
            world.canaries[form] = (case, F)
        bsn = _valid_bsn(271 + i * 7)
        world.personal(bsn, case)
        parents = [world.personal(canary("parent1", case), case)]
        if case in {"A", "C", "D"}:
            parents.append(world.personal(canary("parent2", case), case))
        async with rt.unit_of_work(reg) as uow:
            row = await triage.register_case(
                uow,
                triage.Registration(
                    answers={key: True for key, _q, _w in triage.ENTRY_QUESTIONS},
                    youth_name=world.personal(canary("youthname", case), case),
                    birth_date=birth,
                    bsn=bsn,
                    situation=world.personal(canary("situation", case), case),
                    parent_names=tuple(parents),
                    jim_name=world.personal(canary("jim", case), case),
                    municipality_id=None,
                ),
            )
            world.case_ids[case] = row.id
            # Not personal, but who may not know the case exists must not see it either.
            world.canaries[row.pseudonym] = (case, P)
            members = (
                await uow.db.scalars(
                    select(CaseMember)
                    .where(CaseMember.case_id == row.id, CaseMember.user_id.is_(None))
                    .order_by(CaseMember.id)
                )
            ).all()
            keys: dict[str, int] = {}
            n_parent = 0
            for m in members:
                if m.role == "parent":
                    n_parent += 1
                    keys[f"parent{n_parent}"] = m.id
                else:
                    keys[m.role] = m.id
            world.family[case] = keys
            await _consents(uow, row, case, keys, karakter, world)
    # Sessions: everyone but Gerrit invited; items written with and without consent.
    coord = staff_principal(staff["coordinator"])
    experts = [staff["ruud_named_karakter"].id, staff["sanne_accare"].id]
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    for case in CASES:
        async with rt.unit_of_work(coord) as uow:
            s = await triage.plan_session(uow, world.case_ids[case], start, experts)
            world.session_ids[case] = [s.id]
        await _items(rt, world, case, world.session_ids[case][0])
    # A closed earlier session for C (its page shows the fixed arrangement).
    async with rt.unit_of_work(coord) as uow:
        past = await triage.plan_session(
            uow, world.case_ids["C"], start - dt.timedelta(days=30), experts
        )
        world.session_ids["C"].append(past.id)
    await _items(rt, world, "C", past.id, suffix="closed")
    async with rt.unit_of_work(coord) as uow:
        await triage.add_line(uow, past.id, accare.id, "45A52", "ambulant", "2", today)
        await triage.close_session(uow, past.id)
        c_report = await uow.db.scalar(select(Report).where(Report.session_id == past.id))
        assert c_report is not None  # closed without the closing flow: no sharing answers
        world.reports["C"] = c_report.public_id
    # Invitation links (their pages are crawled too).
    for case in CASES:
        async with rt.unit_of_work(reg) as uow:
            inv = await create_invitation(uow, world.family[case]["parent1"], days=14)
            world.invitation_tokens.append(inv.link_token)
    await _more_pages(rt, world, karakter, accare, trias)
    for case in ("A", "B"):
        await _steps_4_and_5(rt, world, case, world.session_ids[case][0], karakter, accare)
        await _reported_session(rt, world, case, start - dt.timedelta(days=20), karakter, accare)
    # D ends: crypto-shredded.
    async with rt.sessionmaker() as db, db.begin():
        await rt.vault.shred(db, world.case_ids["D"])
    return world


async def _consents(
    uow: UnitOfWork,
    case: Case,
    letter: str,
    keys: dict[str, int],
    karakter: Organisation,
    w: LeakWorld,
) -> None:
    async def rec(member: str, decision: Decision, org: int | None) -> None:
        await consent.record_consent(
            uow,
            case,
            subject_member_id=keys[member],
            purpose=Purpose.INFORMATION_EXCHANGE,
            decision=decision,
            recipient_org_id=org,
            recipient_role=None,
            obtained_how="in_person",
            explanation=w.personal(
                canary(f"explanation-{member}-{decision.value}", letter), letter
            ),
            valid_until=None,
        )

    if letter == "A":
        await rec("youth", Decision.CONSENT, karakter.id)
        await rec("parent1", Decision.CONSENT, karakter.id)
        await rec("parent2", Decision.CONSENT, karakter.id)
    elif letter == "C":
        await rec("parent1", Decision.CONSENT, None)
        await rec("parent2", Decision.CONSENT, None)
        await rec("parent1", Decision.OBJECTION, karakter.id)
    elif letter == "D":
        await rec("youth", Decision.CONSENT, None)
        await rec("parent1", Decision.CONSENT, None)
        await rec("parent2", Decision.CONSENT, None)


async def _items(rt: Runtime, w: LeakWorld, case: str, session_id: int, suffix: str = "") -> None:
    """Each person at the table writes: whether the text is personal (needs FULL) or
    anonymous (written without consent: for everyone at the table) follows from the oracle
    of its author, not from the code."""
    authors: list[tuple[str, Principal]] = [
        ("registrar", staff_principal(w.staff["registrar"])),
        ("ruud_named_karakter", staff_principal(w.staff["ruud_named_karakter"])),
        ("sanne_accare", staff_principal(w.staff["sanne_accare"])),
    ]
    async with rt.sessionmaker() as db:
        parent = await db.get(CaseMember, w.family[case]["parent1"])
        assert parent is not None
        authors.append(("family:" + case + ":parent1", family_principal(parent)))
    index = CASES.index(case)
    for who, principal in authors:
        level = w.oracle(who)[index]
        # Written in full view, or under the pseudonym (then for everyone at the table).
        # D was written before it was shredded: nothing of it may show anywhere.
        needs = F if level is F or case == "D" else T
        tag = f"{who.split(':')[0]}{suffix}"
        text = canary(f"item-{tag}", case)
        w.canaries[text] = (case, needs)
        async with rt.unit_of_work(principal) as uow:
            # Factors and goals take turns, so each kind is written with and without consent.
            if len(w.items) % 2 == 0:
                item = await triage.add_factor(uow, session_id, "home", "perpetuating", text)
                w.items.append((session_id, "factor", item.id))
            else:
                goal = await triage.add_goal(uow, session_id, text)
                w.items.append((session_id, "goal", goal.id))


async def _more_pages(
    rt: Runtime, w: LeakWorld, karakter: Organisation, accare: Organisation, trias: Organisation
) -> None:
    """Data for the pages beyond the table, each through its real service."""
    today = dt.datetime.now(AMSTERDAM).date()
    reg = staff_principal(w.staff["registrar"])
    a_session = w.session_ids["A"][0]
    factors = [i for s, k, i in w.items if s == a_session and k == "factor"]
    async with rt.unit_of_work(reg) as uow:
        link = await triage.link_factors(uow, a_session, factors[0], factors[1])
        case_a = await uow.db.get(Case, w.case_ids["A"])
        assert case_a is not None
        exc = await consent.record_youth_alone(
            uow,
            case_a,
            ground="serious_harm",
            reason=w.personal(canary("youth-alone-reason", "A"), "A"),
        )
    w.ids["link_id"] = [link.id]
    w.ids["exception_id"] = [exc.id]
    w.id_case |= {"link_id": "A", "exception_id": "A"}
    # RET: the manager zorgbemiddeling allocates B, overrides the proposal, and a provider
    # disputes it. Written under the pseudonym: for the manager, who knows B by it.
    manager = staff_principal(w.staff["ret_manager"])
    async with rt.unit_of_work(manager) as uow:
        for pos, org in enumerate((karakter, accare, trias), start=1):
            await alloc.save_provider(
                uow,
                alloc.ProviderDraft(
                    organisation_id=org.id,
                    lot=alloc.DEFAULT_LOT,
                    domain="jo",
                    position=str(pos),
                    expertise="gezin",
                    min_age="0",
                    max_age="23",
                    locations="Deventer",
                    milieus=("2", "3"),
                    contract_active=True,
                ),
            )
    async with rt.unit_of_work(manager) as uow:
        req = await alloc.request_allocation(
            uow,
            w.case_ids["B"],
            alloc.RequestDraft(
                lot=alloc.DEFAULT_LOT,
                trigger="tables_timeout",
                since=today - dt.timedelta(days=40),
                domain="jo",
                age="9",
                location="Deventer",
                milieu="",
                expertise=frozenset({"gezin"}),
                continue_ids=frozenset(),
                not_again_ids=frozenset(),
            ),
        )
    async with rt.unit_of_work(manager) as uow:
        view = await alloc.proposal_view(uow, req.id)
    other = next(o for o in (karakter, accare, trias) if o.id != view.explanation.proposed_id)
    reason = canary("ret-reason", "B")
    w.canaries[reason] = ("B", Sees.PSEUDONYM)
    async with rt.unit_of_work(manager) as uow:
        decided = await alloc.decide_allocation(
            uow,
            req.id,
            alloc.Choice(
                provider_id=other.id, reason=reason, expected_turn=view.explanation.turn_before
            ),
        )
    note = canary("ret-dispute-note", "B")
    w.canaries[note] = ("B", Sees.PSEUDONYM)
    spoke_with = canary("ret-dispute-spoke-with", "B")
    w.canaries[spoke_with] = ("B", Sees.PSEUDONYM)
    async with rt.unit_of_work(manager) as uow:
        dispute = await alloc.open_dispute(uow, decided.id, other.id, spoke_with, note)
    w.ids["request_id"] = [req.id]
    w.ids["allocation_id"] = [decided.id]
    w.ids["dispute_id"] = [dispute.id]
    w.id_case |= {"request_id": "B", "allocation_id": "B", "dispute_id": "B"}
    # Settlement: C's toewijzing, held by Karakter; the last quarter closed into a run.
    finance = staff_principal(w.staff["finance_penvoerder"])
    async with rt.sessionmaker() as db:
        municipality = await db.scalar(
            select(Organisation.id).where(Organisation.kind == "municipality")
        )
    assert municipality is not None
    last = quarter_of(today).previous
    async with rt.unit_of_work(finance) as uow:
        await add_allocation(
            uow,
            SettlementAllocation(
                number="T-LEAK-C",
                case_id=w.case_ids["C"],
                provider_id=karakter.id,
                municipality_id=municipality,
                variant=Variant.SPECIFIC,
                start=last.start,
                end=today + dt.timedelta(days=90),
                product_category="45",
                product_code="45A52",
                volume=20,
                unit="04",
                frequency=Frequency.MONTH,
            ),
        )
    # Karakter delivered under it in that quarter, so the run has Karakter's statement.
    await add_tariff(rt, karakter, 12_480, last.start)
    first_month_end = (last.start.replace(day=28) + dt.timedelta(days=4)).replace(
        day=1
    ) - dt.timedelta(days=1)
    async with rt.unit_of_work(staff_principal(w.staff["ruud_named_karakter"])) as uow:
        await record_delivery(
            uow,
            DeliveryDraft(
                allocation_number="T-LEAK-C",
                product_code="45A52",
                start=last.start,
                end=first_month_end,
                volume=3,
            ),
        )
    await _kassier(rt, w, last, municipality)
    async with rt.unit_of_work(finance) as uow:
        await close_quarter(uow, last, today)
    w.quarters = [last.code, quarter_of(today).code]
    w.providers |= {"karakter": karakter.id, "accare": accare.id}  # a statement, and none
    w.ids["provider_id"] = list(w.providers.values())


async def _kassier(rt: Runtime, w: LeakWorld, quarter: Quarter, municipality: int) -> None:
    """The kassier model, through the real services: Horizon holds an allocation of C as
    kassier, Altra delivers under it as registered sub-provider with a 6,60 % margin, both
    record their bank account; Horizon and Altra both deliver in ``quarter``."""
    today = dt.datetime.now(AMSTERDAM).date()
    horizon = await make_org(rt, "Horizon", agb_code="98000011")
    altra = await make_org(rt, "Altra", agb_code="98000012")
    ambiq = await make_org(rt, "Ambiq", agb_code="98000013")
    w.staff["kassier_finance"] = await make_user(rt, horizon, "Kees Kassier", "finance")
    w.staff["sub_provider_finance"] = await make_user(rt, altra, "Olga Onderaannemer", "finance")
    w.providers |= {"kassier": horizon.id, "sub": altra.id, "other_sub": ambiq.id}
    finance = staff_principal(w.staff["finance_penvoerder"])
    async with rt.unit_of_work(finance) as uow:
        for sub, margin in ((altra, Margin(MarginKind.PERCENT, 660)), (ambiq, OTHER_SUB_MARGIN)):
            await add_agreement(
                uow, SubProviderAgreement(horizon.id, sub.id, margin, quarter.start)
            )
        await add_allocation(
            uow,
            SettlementAllocation(
                number="T-LEAK-K",
                case_id=w.case_ids["C"],
                provider_id=horizon.id,
                municipality_id=municipality,
                variant=Variant.SPECIFIC,
                start=quarter.start,
                end=today + dt.timedelta(days=90),
                product_category="45",
                product_code="45A52",
                volume=40,
                unit="04",
                frequency=Frequency.MONTH,
            ),
        )
    await add_tariff(rt, horizon, 12_480, quarter.start)
    month_end = (quarter.start.replace(day=28) + dt.timedelta(days=4)).replace(
        day=1
    ) - dt.timedelta(days=1)
    for who, iban, hours in (
        ("kassier_finance", KASSIER_IBAN, 3),
        ("sub_provider_finance", SUB_IBAN, 10),
    ):
        async with rt.unit_of_work(staff_principal(w.staff[who])) as uow:
            await record_bank_account(
                uow,
                {"iban": iban, "holder_name": who, "valid_from": quarter.start.isoformat()},
            )
            await record_delivery(
                uow, DeliveryDraft("T-LEAK-K", "45A52", quarter.start, month_end, hours)
            )
    # Ambiq, a second sub-provider (€ 2,50 an hour), entered by the penvoerder: Altra must
    # not see its margin.
    async with rt.unit_of_work(finance) as uow:
        await record_bank_account(
            uow,
            {
                "organisation_id": str(ambiq.id),
                "iban": OTHER_SUB_IBAN,
                "holder_name": "Ambiq",
                "valid_from": quarter.start.isoformat(),
            },
        )
        await record_delivery(
            uow, DeliveryDraft("T-LEAK-K", "45A52", quarter.start, month_end, 8, ambiq.id)
        )


def _needs(w: LeakWorld, author: str, case: str) -> Sees:
    """Written by someone who sees the case in full: personal; else under the pseudonym."""
    return F if w.oracle(author)[CASES.index(case)] is F else T


async def _steps_4_and_5(
    rt: Runtime,
    w: LeakWorld,
    case: str,
    session_id: int,
    karakter: Organisation,
    accare: Organisation,
    suffix: str = "",
) -> None:
    """Arrangement lines with a stated share (Ruud for Karakter, Sanne for Accare) and plan
    activities (the registrar, Sanne), each free-text field a canary."""
    today = dt.datetime.now(AMSTERDAM).date()
    for who, org in (("ruud_named_karakter", karakter), ("sanne_accare", accare)):
        share = canary(f"share-{who}{suffix}", case)
        w.canaries[share] = (case, _needs(w, who, case))
        async with rt.unit_of_work(staff_principal(w.staff[who])) as uow:
            line = await triage.add_line(
                uow, session_id, org.id, "45A52", "ambulant", "2", today, share=share
            )
        w.session_ids_of.setdefault("line_id", []).append((session_id, line.id))
    for who in ("registrar", "sanne_accare"):
        texts = {}
        for part in ("who", "what"):
            texts[part] = canary(f"activity-{part}-{who}{suffix}", case)
            w.canaries[texts[part]] = (case, _needs(w, who, case))
        async with rt.unit_of_work(staff_principal(w.staff[who])) as uow:
            act = await step5.add_activity(
                uow, session_id, texts["who"], texts["what"], today + dt.timedelta(days=14)
            )
        w.session_ids_of.setdefault("activity_id", []).append((session_id, act.id))


async def _reported_session(
    rt: Runtime,
    w: LeakWorld,
    case: str,
    when: dt.datetime,
    karakter: Organisation,
    accare: Organisation,
) -> None:
    """An earlier session of ``case``: the table, steps 4 and 5 and the three agreements
    (informing each other, the municipality, the crisis plan), closed through the closing
    flow with the family's answer per party; one party is left out of the report."""
    coord = staff_principal(w.staff["coordinator"])
    experts = [w.staff["ruud_named_karakter"].id, w.staff["sanne_accare"].id]
    async with rt.unit_of_work(coord) as uow:
        sid = (await triage.plan_session(uow, w.case_ids[case], when, experts)).id
    w.session_ids[case].append(sid)
    await _items(rt, w, case, sid, suffix="reported")
    await _steps_4_and_5(rt, w, case, sid, karakter, accare, suffix="reported")
    for topic, who in zip(
        step5.TOPICS, ("registrar", "sanne_accare", "ruud_named_karakter"), strict=True
    ):
        text = canary(f"agreement-{topic}-{who}", case)
        w.canaries[text] = (case, _needs(w, who, case))
        async with rt.unit_of_work(staff_principal(w.staff[who])) as uow:
            await step5.set_agreement(uow, sid, topic, text, 0)
    async with rt.unit_of_work(coord) as uow:
        parties = await reports.sharing_parties(uow, sid)
        left_out = {p.name for p in parties} & set(REPORT_LEFT_OUT[case])
        assert left_out == set(REPORT_LEFT_OUT[case]), parties
        sharing = {p.organisation_id: p.name not in left_out for p in parties}
        report = await reports.close_and_share(uow, sid, sharing)
        w.reports[case] = report.public_id
