"""Consent: recording consent and objections, and the one decision point for disclosure.

Every read of a case's personal data asks :func:`disclosure` first. Other domains import only
this module; consent never imports triage or settlement.

Live screens learn that a case's disclosure changed from ``consent.changed`` in every room of
the case. The writers here do not emit it themselves: :mod:`keerpunt.consent.models` declares
every row disclosure reads (consent records, youth-alone exceptions, case members, the case's
legal basis, birth date, registrar and shredding), and the unit of work emits it once per
changed case before it commits (:func:`keerpunt.platform.uow.watch_disclosure_inputs`), for
these writers and any other. What changes with the clock alone is in
:mod:`keerpunt.consent.daily`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from sqlalchemy import func, select

from keerpunt.consent.identifying import find_identifying
from keerpunt.consent.models import ConsentRecord, Decision, Purpose, YouthAloneException
from keerpunt.consent.rules import (
    Consenter,
    Disclosure,
    LegalBasis,
    Recipient,
    RecordFacts,
    YouthAloneGround,
    age_on,
    decide,
    renewal_due,
    required_consenters,
)
from keerpunt.consent.vocab import CONSENT_VOCAB
from keerpunt.platform import audit
from keerpunt.platform.errors import InvalidInput, NotAllowed, NotFound
from keerpunt.platform.i18n import AMSTERDAM, N_
from keerpunt.platform.models import (
    FAMILY_ROLES,
    AuditEntry,
    Case,
    CaseMember,
    CaseRole,
    Organisation,
    User,
)
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import UnitOfWork

__all__ = [
    "ConsentLine",
    "ConsentOverview",
    "Decision",
    "Disclosure",
    "DisclosureDecision",
    "FamilyConsent",
    "FamilyPage",
    "IdentifyingWarning",
    "Purpose",
    "ReadEntry",
    "RenewalTask",
    "YouthAloneView",
    "age_on",
    "consent_overview",
    "consent_overview_for",
    "consent_tasks",
    "disclosure",
    "disclosures_for",
    "end_youth_alone",
    "family_page",
    "identifying_kinds",
    "identifying_warning",
    "record_consent",
    "record_reads",
    "record_youth_alone",
    "withdraw_consent",
]

# Staff who may see that a case exists (pseudonymously) without being at its table.
_TEAM_ROLES = frozenset({"coordinator", "triage_member"})


@dataclass(frozen=True)
class DisclosureDecision:
    level: Disclosure
    record_ids: tuple[int, ...] = ()
    reason: str = ""


def _today() -> dt.date:
    return dt.datetime.now(AMSTERDAM).date()


async def _case_roles(uow: UnitOfWork, case_id: int, who: Principal) -> frozenset[str]:
    if who.member_id is not None:
        return frozenset({who.member_role or ""}) if who.case_id == case_id else frozenset()
    rows = await uow.db.scalars(
        select(CaseMember.role).where(
            CaseMember.case_id == case_id,
            CaseMember.user_id == who.user_id,
            CaseMember.removed_at.is_(None),
        )
    )
    return frozenset(rows.all())


async def disclosure(
    uow: UnitOfWork,
    case: Case,
    purpose: Purpose = Purpose.INFORMATION_EXCHANGE,
    *,
    audit_read: bool = True,
    family_present: Collection[int] = (),
) -> DisclosureDecision:
    """How much of this case the acting person may see, with the records that justify it.

    The family sees its own case. The organisation that registered the case holds the data
    it collected. Anyone else at the table sees personal data only with an effective consent
    (or objection-free legal basis) of everyone the law requires for the youth's age today;
    without it the case is discussed under its pseudonym (anonieme bespreking) — unless the
    family itself takes part in the meeting (``family_present``: the case-member ids of the
    family members present at the viewer's table, as the meeting knows them; see
    :func:`keerpunt.consent.rules.decide`). Someone with no part in the case sees nothing.
    """
    who = uow.who
    decided: DisclosureDecision | None = uow.decided.get(
        _decided_key(who, case.id, purpose, family_present)
    )
    if decided is not None:
        return decided  # decided for this viewer by disclosures_for, which also audits
    roles = await _case_roles(uow, case.id, who)
    decision = await _decide(uow, case, purpose, who, roles, family_present)
    if audit_read and decision.level is not Disclosure.NOTHING:
        await record_reads(uow, case, purpose, [(who, decision)])
    return decision


async def disclosures_for(
    uow: UnitOfWork,
    case: Case,
    viewers: Sequence[Principal],
    purpose: Purpose = Purpose.INFORMATION_EXCHANGE,
    *,
    family_present: Collection[int] = (),
    audit_read: bool = True,
) -> list[DisclosureDecision]:
    """:func:`disclosure` for many viewers of one case at once (a live table: everyone in
    the room), in the caller's transaction: the case's consent context (family members,
    consent records, legal basis, youth-alone exception) is read once and
    :func:`keerpunt.consent.rules.decide` runs per viewer, so each viewer gets exactly the
    decision the single path gives them. With ``audit_read`` every viewer who may see
    anything gets their own audit row, with the records that justify it, written in one batch.

    The decisions are remembered in ``uow.decided`` (shared by the units of work that
    :meth:`UnitOfWork.acting_as` derives for each viewer): a later :func:`disclosure` for the
    same viewer, case, purpose and family answers from them and does not audit again — the
    batch settles the audit; a caller who shows more later audits it with
    :func:`record_reads`."""
    keys = [_decided_key(who, case.id, purpose, family_present) for who in viewers]
    if all(k in uow.decided for k in keys):
        # Decided already in this batch: the same answer (one batch, one picture of consent).
        cached: list[DisclosureDecision] = [uow.decided[k] for k in keys]
        if audit_read:
            await record_reads(uow, case, purpose, list(zip(viewers, cached, strict=True)))
        return cached
    roles_by_viewer = await _case_roles_many(uow, case.id, viewers)
    context: _ConsentContext | None = None
    decisions: list[DisclosureDecision] = []
    for who in viewers:
        roles = roles_by_viewer[who.actor]
        step = _decide_without_consent(case, purpose, who, roles)
        if step is None:
            if context is None:
                context = await _consent_context(uow, case, purpose)
            step = _decide_by_consent(
                context,
                who,
                roles | (who.staff_roles & _TEAM_ROLES),
                at_table=bool(roles),
                family_present=family_present,
            )
        decisions.append(step)
        uow.decided[_decided_key(who, case.id, purpose, family_present)] = step
    if audit_read:
        await record_reads(uow, case, purpose, list(zip(viewers, decisions, strict=True)))
    return decisions


async def record_reads(
    uow: UnitOfWork,
    case: Case,
    purpose: Purpose,
    reads: Sequence[tuple[Principal, DisclosureDecision]],
) -> None:
    """Audit that each of these viewers read the case at the level consent decided, with the
    records that justify it (one audit row per viewer who saw anything), in one batch. In a
    read-only unit of work (``uow.deferred_audit``) the rows wait for the caller to write
    them before anything is shown."""
    entries = [
        audit.Entry(
            who, "case.read", case_id=case.id, purpose=purpose.value, detail=_read_detail(decision)
        )
        for who, decision in reads
        if decision.level is not Disclosure.NOTHING
    ]
    if uow.deferred_audit is not None:
        uow.deferred_audit.extend(entries)
    elif len(entries) == 1:
        e = entries[0]
        await audit.record(
            uow.db, e.who, e.action, case_id=e.case_id, purpose=e.purpose, detail=e.detail
        )
    else:
        await audit.record_many(uow.db, entries)


def _read_detail(decision: DisclosureDecision) -> str:
    return (
        f"level={decision.level.name.lower()} records={list(decision.record_ids)}"
        f" reason={decision.reason}"
    )


def _decided_key(
    who: Principal, case_id: int, purpose: Purpose, family_present: Collection[int]
) -> tuple[object, ...]:
    return (who.actor, case_id, purpose.value, tuple(sorted(set(family_present))))


async def _case_roles_many(
    uow: UnitOfWork, case_id: int, viewers: Sequence[Principal]
) -> dict[str, frozenset[str]]:
    """:func:`_case_roles` for many viewers with one query."""
    user_ids = {w.user_id for w in viewers if w.member_id is None and w.user_id is not None}
    by_user: dict[int, set[str]] = {}
    if user_ids:
        rows = await uow.db.execute(
            select(CaseMember.user_id, CaseMember.role).where(
                CaseMember.case_id == case_id,
                CaseMember.user_id.in_(user_ids),
                CaseMember.removed_at.is_(None),
            )
        )
        for user_id, role in rows:
            by_user.setdefault(user_id or 0, set()).add(role)
    out: dict[str, frozenset[str]] = {}
    for w in viewers:
        if w.member_id is not None:
            out[w.actor] = frozenset({w.member_role or ""}) if w.case_id == case_id else frozenset()
        else:
            out[w.actor] = frozenset(by_user.get(w.user_id or 0, ()))
    return out


async def _decide(
    uow: UnitOfWork,
    case: Case,
    purpose: Purpose,
    who: Principal,
    roles: frozenset[str],
    family_present: Collection[int],
) -> DisclosureDecision:
    decided = _decide_without_consent(case, purpose, who, roles)
    if decided is not None:
        return decided
    return _decide_by_consent(
        await _consent_context(uow, case, purpose),
        who,
        roles | (who.staff_roles & _TEAM_ROLES),
        at_table=bool(roles),
        family_present=family_present,
    )


def _decide_without_consent(
    case: Case, purpose: Purpose, who: Principal, roles: frozenset[str]
) -> DisclosureDecision | None:
    """The decisions that need no consent record; None: consent decides."""
    if case.shredded_at is not None:
        return DisclosureDecision(
            Disclosure.PSEUDONYMOUS if roles else Disclosure.NOTHING, reason="shredded"
        )
    if who.member_id is not None:
        if who.case_id == case.id and roles & {r.value for r in FAMILY_ROLES}:
            return DisclosureDecision(Disclosure.FULL, reason="family")
        return DisclosureDecision(Disclosure.NOTHING, reason="not_this_case")
    if (
        case.registered_by_id == who.user_id or "local_team" in roles
    ) and purpose is not Purpose.REPORT_SHARING:
        # The registrar holds the file it collected; the report is shared only as the family
        # answered at closing, with the registrar's organisation as with any other party.
        return DisclosureDecision(Disclosure.FULL, reason="registrar")
    if not roles and not (who.staff_roles & _TEAM_ROLES):
        return DisclosureDecision(Disclosure.NOTHING, reason="no_part")
    return None


@dataclass(frozen=True)
class _ConsentContext:
    """What consent needs to know of a case for one purpose, the same for every viewer."""

    age: int | None  # None: no birth date known
    basis: LegalBasis
    members: tuple[CaseMember, ...]
    records: tuple[RecordFacts, ...]
    exception_id: int | None
    today: dt.date


async def _consent_context(uow: UnitOfWork, case: Case, purpose: Purpose) -> _ConsentContext:
    cipher = await uow.vault.cipher(uow.db, case.id)
    birth_raw = cipher.decrypt("case.birth_date", case.birth_date_enc)
    today = _today()
    basis = LegalBasis(case.legal_basis)
    if birth_raw is None:
        return _ConsentContext(None, basis, (), (), None, today)
    members = (
        await uow.db.scalars(
            select(CaseMember).where(
                CaseMember.case_id == case.id,
                CaseMember.removed_at.is_(None),
                CaseMember.role.in_(["youth", "parent", "guardian"]),
            )
        )
    ).all()
    records = (
        await uow.db.scalars(
            select(ConsentRecord).where(
                ConsentRecord.case_id == case.id, ConsentRecord.purpose == purpose.value
            )
        )
    ).all()
    exception = await _youth_alone(uow, case.id)
    return _ConsentContext(
        age_on(dt.date.fromisoformat(birth_raw), today),
        basis,
        tuple(members),
        tuple(_facts(r) for r in records),
        exception.id if exception is not None else None,
        today,
    )


def _decide_by_consent(
    ctx: _ConsentContext,
    who: Principal,
    roles: frozenset[str],
    *,
    at_table: bool,
    family_present: Collection[int],
) -> DisclosureDecision:
    if ctx.age is None:
        return DisclosureDecision(Disclosure.PSEUDONYMOUS, reason="no_birth_date")
    present_ids = frozenset(family_present)  # ids not of this case's family count for nothing
    outcome = decide(
        age=ctx.age,
        basis=ctx.basis,
        consenters=[Consenter(m.id, _consent_role(m.role)) for m in ctx.members],
        records=ctx.records,
        recipient=Recipient(who.organisation_id, roles, at_table),
        today=ctx.today,
        youth_alone=ctx.exception_id is not None,
        family_present=frozenset(_consent_role(m.role) for m in ctx.members if m.id in present_ids),
    )
    reason = outcome.reason
    if reason == "youth_alone" and ctx.exception_id is not None:
        reason = f"youth_alone:{ctx.exception_id}"
    return DisclosureDecision(outcome.level, outcome.record_ids, reason)


def _consent_role(case_role: str) -> str:
    return "parent" if case_role in {"parent", "guardian"} else case_role


def _facts(r: ConsentRecord) -> RecordFacts:
    return RecordFacts(
        r.id,
        r.decision == Decision.OBJECTION,
        r.recipient_org_id,
        r.recipient_role,
        r.subject_member_id,
        r.valid_until,
        r.withdrawn_at is not None,
    )


async def _youth_alone(uow: UnitOfWork, case_id: int) -> YouthAloneException | None:
    return await uow.db.scalar(
        select(YouthAloneException)
        .where(YouthAloneException.case_id == case_id, YouthAloneException.ended_at.is_(None))
        .order_by(YouthAloneException.id.desc())
        .limit(1)
    )


async def record_consent(
    uow: UnitOfWork,
    case: Case,
    *,
    subject_member_id: int,
    purpose: Purpose,
    decision: Decision,
    recipient_org_id: int | None,
    recipient_role: str | None,
    obtained_how: str,
    explanation: str,
    valid_until: dt.date | None,
) -> ConsentRecord:
    """Record a consent or an objection (toestemming / bezwaar) that the registrar obtained.

    Only the professional who registered the case, or its local-team member, records it;
    the explanation given to the family is required (transparency principle).
    """
    who = uow.who
    roles = await _case_roles(uow, case.id, who)
    if not (
        case.registered_by_id == who.user_id or "local_team" in roles or who.has("coordinator")
    ):
        await _refuse(uow, case)
    errors: dict[str, str] = {}
    subject = await uow.db.get(CaseMember, subject_member_id)
    if (
        subject is None
        or subject.case_id != case.id
        or subject.role not in {CaseRole.YOUTH, CaseRole.PARENT, CaseRole.GUARDIAN}
    ):
        errors["subject_member_id"] = N_("Kies de jeugdige of een ouder die toestemming geeft.")
    if obtained_how not in {"in_person", "phone", "written"}:
        errors["obtained_how"] = N_("Kies hoe de toestemming is gegeven.")
    if len(explanation.strip()) < 10:
        errors["explanation"] = N_("Schrijf kort op wat u aan het gezin heeft uitgelegd.")
    if recipient_org_id is not None and await uow.db.get(Organisation, recipient_org_id) is None:
        errors["recipient"] = N_("Kies een bestaande organisatie.")
    if valid_until is not None and valid_until < _today():
        errors["valid_until"] = N_("De einddatum ligt in het verleden.")
    if errors:
        raise InvalidInput(errors)
    cipher = await uow.vault.cipher(uow.db, case.id)
    if cipher.shredded:  # retention destroyed this case's personal data: nothing to consent to
        raise NotAllowed()
    rec = ConsentRecord(
        case_id=case.id,
        subject_member_id=subject_member_id,
        purpose=purpose.value,
        decision=decision.value,
        recipient_org_id=recipient_org_id,
        recipient_role=recipient_role,
        obtained_how=obtained_how,
        obtained_by_id=who.user_id,
        explanation_enc=cipher.encrypt("consent.explanation", explanation.strip()),
        valid_until=valid_until,
    )
    uow.db.add(rec)
    await uow.db.flush()
    await audit.record(
        uow.db,
        who,
        f"consent.{decision.value}",
        case_id=case.id,
        purpose=purpose.value,
        detail=f"record={rec.id}",
    )
    return rec


async def withdraw_consent(uow: UnitOfWork, record_id: int) -> ConsentRecord:
    """Withdraw a consent (intrekken): by the family member who gave it, or by a
    professional who may record consent for the case (registrar, local team, coordinator).
    It takes effect at the next read (at once); the record stays, with who withdrew it and
    when (audited)."""
    rec = await uow.db.get(ConsentRecord, record_id)
    if rec is None:
        raise NotFound()
    who = uow.who
    case = await uow.db.get(Case, rec.case_id)
    assert case is not None
    if who.member_id is not None:
        # A family member withdraws only their own consent; another case does not exist.
        if who.case_id != rec.case_id:
            raise NotFound()
        if rec.subject_member_id != who.member_id or rec.decision != Decision.CONSENT:
            raise NotAllowed(N_("U kunt alleen uw eigen toestemming intrekken."))
    elif not _may_record(case, who, await _case_roles(uow, case.id, who)):
        await _refuse(uow, case)  # who may record a consent may withdraw it, nobody else
    if rec.withdrawn_at is None:
        rec.withdrawn_at = dt.datetime.now(dt.UTC)
        rec.withdrawn_by = who.actor
        await audit.record(
            uow.db,
            who,
            "consent.withdrawn",
            case_id=rec.case_id,
            purpose=rec.purpose,
            detail=f"record={rec.id}",
        )
    return rec


async def _refuse(uow: UnitOfWork, case: Case) -> NoReturn:
    """Refuse a change: a case the actor may not know of answers as if it did not exist."""
    if (await disclosure(uow, case, audit_read=False)).level is Disclosure.NOTHING:
        raise NotFound()
    raise NotAllowed()


def _may_record(case: Case, who: Principal, roles: frozenset[str]) -> bool:
    return who.is_staff and (
        case.registered_by_id == who.user_id or "local_team" in roles or who.has("coordinator")
    )


async def record_youth_alone(
    uow: UnitOfWork, case: Case, *, ground: str, reason: str
) -> YouthAloneException:
    """Record that, at 12 to 15, the youth's consent alone suffices (Jeugdwet 7.3.4 lid 3:
    serious harm without the help, or the youth persists after the parents refused), with the
    reasoning, by whom and when. Only for a youth who is 12 to 15 today."""
    who = uow.who
    if not _may_record(case, who, await _case_roles(uow, case.id, who)):
        await _refuse(uow, case)
    errors: dict[str, str] = {}
    if ground not in set(YouthAloneGround):
        errors["ground"] = N_("Kies de reden uit de wet.")
    if len(reason.strip()) < 10:
        errors["reason"] = N_("Schrijf op waarom deze uitzondering hier geldt.")
    cipher = await uow.vault.cipher(uow.db, case.id)
    birth_raw = cipher.decrypt("case.birth_date", case.birth_date_enc)
    age = age_on(dt.date.fromisoformat(birth_raw), _today()) if birth_raw else None
    if age is None or not 12 <= age < 16:
        errors["ground"] = N_(
            "Deze uitzondering geldt alleen voor een jeugdige van 12 tot en met 15 jaar."
        )
    if errors:
        raise InvalidInput(errors)
    exc = YouthAloneException(
        case_id=case.id,
        ground=ground,
        reason_enc=cipher.encrypt("consent.youth_alone_reason", reason.strip()),
        recorded_by_id=who.user_id,
    )
    uow.db.add(exc)
    await uow.db.flush()
    await audit.record(
        uow.db,
        who,
        "consent.youth_alone",
        case_id=case.id,
        detail=f"exception={exc.id} ground={ground}",
    )
    return exc


async def end_youth_alone(uow: UnitOfWork, exception_id: int) -> YouthAloneException:
    """End a youth-alone exception (from now on the parents' consent is needed again); the
    record stays, with who ended it and when."""
    exc = await uow.db.get(YouthAloneException, exception_id)
    if exc is None:
        raise NotFound()
    case = await uow.db.get(Case, exc.case_id)
    assert case is not None
    who = uow.who
    if not _may_record(case, who, await _case_roles(uow, case.id, who)):
        await _refuse(uow, case)
    if exc.ended_at is None:
        exc.ended_at = dt.datetime.now(dt.UTC)
        exc.ended_by = who.actor
        await audit.record(
            uow.db, who, "consent.youth_alone_ended", case_id=case.id, detail=f"exception={exc.id}"
        )
    return exc


@dataclass(frozen=True)
class ConsentLine:
    record_id: int
    subject_label: str
    purpose: str
    decision: str
    recipient_label: str
    recipient_is_org: bool
    obtained_how: str
    explanation: str | None  # personal free text: only for a viewer who sees the case in full
    recorded_at: dt.datetime
    valid_until: dt.date | None
    withdrawn_at: dt.datetime | None


@dataclass(frozen=True)
class RenewalTask:
    """Ask consent again: the youth turned (or turns) 12 or 16 during the case. The birthday
    is personal data: it is None for a viewer who sees the case under its pseudonym."""

    age: int
    birthday: dt.date | None
    already: bool  # the birthday has come
    due_by: dt.date | None  # the next session, when planned
    needed: frozenset[str]  # "youth" and/or "parent"


@dataclass(frozen=True)
class YouthAloneView:
    exception_id: int
    ground: str
    reason: str | None  # only for who may record consent, when they see the case in full
    recorded_by: str
    recorded_at: dt.datetime


@dataclass(frozen=True)
class ConsentOverview:
    case_id: int
    lines: tuple[ConsentLine, ...]
    needed_roles: frozenset[str]
    subjects: tuple[tuple[int, str], ...]  # (member id, label) who may consent
    organisations: tuple[tuple[int, str], ...]
    may_record: bool
    vocab: dict[str, dict[str, str]] = field(default_factory=lambda: CONSENT_VOCAB)
    tasks: tuple[RenewalTask, ...] = ()
    youth_alone: YouthAloneView | None = None
    may_record_youth_alone: bool = False  # a recorder, and the youth is 12 to 15 today


async def consent_overview_for(
    uow: UnitOfWork, case_id: int, level: Disclosure, *, next_session_on: dt.date | None = None
) -> ConsentOverview:
    """The consent overview of a case by its id (for other domains' pages)."""
    case = await uow.db.get(Case, case_id)
    if case is None:
        raise NotFound()
    return await consent_overview(uow, case, level, next_session_on=next_session_on)


async def consent_tasks(
    uow: UnitOfWork, case: Case, next_session_on: dt.date | None, level: Disclosure
) -> tuple[RenewalTask, ...]:
    """What must be done about consent before the next session: a 12th or 16th birthday
    during the case calls for new consent (Jeugdwet 7.3.4/7.3.15, age on the day of
    processing). Without a planned session: once the birthday has come."""
    cipher = await uow.vault.cipher(uow.db, case.id)
    if cipher.shredded:
        return ()
    birth_raw = cipher.decrypt("case.birth_date", case.birth_date_enc)
    if birth_raw is None:
        return ()
    members = (
        await uow.db.scalars(
            select(CaseMember).where(
                CaseMember.case_id == case.id,
                CaseMember.removed_at.is_(None),
                CaseMember.role.in_(["youth", "parent", "guardian"]),
            )
        )
    ).all()
    records = (
        await uow.db.scalars(select(ConsentRecord).where(ConsentRecord.case_id == case.id))
    ).all()
    today = _today()
    due = renewal_due(
        birth=dt.date.fromisoformat(birth_raw),
        case_started_on=case.registered_at.astimezone(AMSTERDAM).date(),
        today=today,
        next_session_on=next_session_on,
        consenters=[Consenter(m.id, _consent_role(m.role)) for m in members],
        decided_on=[
            (r.subject_member_id, r.recorded_at.astimezone(AMSTERDAM).date()) for r in records
        ],
        basis=LegalBasis(case.legal_basis),
    )
    if due is None:
        return ()
    return (
        RenewalTask(
            age=due.age,
            birthday=due.birthday if level is Disclosure.FULL else None,
            already=due.birthday <= today,
            due_by=due.due_by,
            needed=due.needed,
        ),
    )


async def consent_overview(
    uow: UnitOfWork, case: Case, level: Disclosure, *, next_session_on: dt.date | None = None
) -> ConsentOverview:
    """The case's consent records for its consent page, labelled for this viewer."""
    cipher = await uow.vault.cipher(uow.db, case.id)
    members = {
        m.id: m
        for m in (await uow.db.scalars(select(CaseMember).where(CaseMember.case_id == case.id)))
    }

    def label(member_id: int) -> str:
        m = members[member_id]
        name = (
            cipher.decrypt("member.name", m.name_enc)
            if level is Disclosure.FULL and not cipher.shredded
            else None
        )
        role = {"youth": N_("Jeugdige"), "parent": N_("Ouder"), "guardian": N_("Voogd")}.get(
            m.role, m.role
        )
        return f"{role}: {name}" if name else role

    orgs = {
        o.id: o.name for o in await uow.db.scalars(select(Organisation).order_by(Organisation.name))
    }
    records = (
        await uow.db.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.case_id == case.id)
            .order_by(ConsentRecord.recorded_at)
        )
    ).all()
    lines = tuple(
        ConsentLine(
            record_id=r.id,
            subject_label=label(r.subject_member_id),
            purpose=r.purpose,
            decision=r.decision,
            recipient_label=(
                orgs.get(r.recipient_org_id, "?")
                if r.recipient_org_id
                else CONSENT_VOCAB["recipient_role"].get(r.recipient_role or "", "")
            ),
            recipient_is_org=r.recipient_org_id is not None,
            obtained_how=r.obtained_how,
            explanation=(
                cipher.decrypt("consent.explanation", r.explanation_enc)
                if level is Disclosure.FULL and not cipher.shredded
                else None
            ),
            recorded_at=r.recorded_at,
            valid_until=r.valid_until,
            withdrawn_at=r.withdrawn_at,
        )
        for r in records
    )
    birth_raw = (
        cipher.decrypt("case.birth_date", case.birth_date_enc) if not cipher.shredded else None
    )
    exception = await _youth_alone(uow, case.id)
    age = age_on(dt.date.fromisoformat(birth_raw), _today()) if birth_raw else None
    needed = (
        required_consenters(age, LegalBasis(case.legal_basis), youth_alone=exception is not None)
        if age is not None
        else frozenset()
    )
    roles = await _case_roles(uow, case.id, uow.who)
    may_record = _may_record(case, uow.who, roles)
    youth_alone = None
    if exception is not None and age is not None and 12 <= age < 16:
        recorder = await uow.db.get(User, exception.recorded_by_id)
        youth_alone = YouthAloneView(
            exception.id,
            exception.ground,
            cipher.decrypt("consent.youth_alone_reason", exception.reason_enc)
            if may_record and level is Disclosure.FULL and not cipher.shredded
            else None,
            recorder.display_name if recorder else "?",
            exception.recorded_at,
        )
    subjects = tuple(
        (m.id, label(m.id))
        for m in members.values()
        if m.role in {"youth", "parent", "guardian"} and m.removed_at is None
    )
    return ConsentOverview(
        case.id,
        lines,
        needed,
        subjects,
        tuple(orgs.items()),
        may_record,
        # the task is for those who ask for consent, not for the family or the experts
        tasks=await consent_tasks(uow, case, next_session_on, level) if may_record else (),
        youth_alone=youth_alone,
        may_record_youth_alone=may_record
        and exception is None
        and LegalBasis(case.legal_basis) is LegalBasis.CONSENT
        and age is not None
        and 12 <= age < 16,
    )


@dataclass(frozen=True)
class FamilyConsent:
    """One of the family member's own records, as they see it on their page."""

    record_id: int
    purpose: str
    decision: str
    recipient_label: str  # an organisation's name, or a Dutch message id (role / everyone)
    recipient_is_org: bool
    explanation: str
    obtained_how: str
    obtained_by: str
    recorded_at: dt.datetime
    valid_until: dt.date | None
    withdrawn_at: dt.datetime | None
    in_force: bool  # not withdrawn and not expired
    may_withdraw: bool


@dataclass(frozen=True)
class ReadEntry:
    """A professional looked at the case (from the audit log)."""

    at: dt.datetime
    organisation: str | None
    roles: tuple[str, ...]  # Dutch message ids
    full: bool  # with names and details, or under the pseudonym


@dataclass(frozen=True)
class FamilyPage:
    member_role: str
    consents: tuple[FamilyConsent, ...]
    reads: tuple[ReadEntry, ...]
    reads_total: int
    vocab: dict[str, dict[str, str]] = field(default_factory=lambda: CONSENT_VOCAB)


_READS_SHOWN = 100


async def family_page(uow: UnitOfWork) -> FamilyPage:
    """For a logged-in family member or JIM: what they agreed to, with whom and until when,
    and which professionals read the case's data when (inzage in het logboek). Only their own
    records and only their own case."""
    who = uow.who
    if who.member_id is None or who.case_id is None:
        raise NotAllowed()
    case = await uow.db.get(Case, who.case_id)
    if case is None:
        raise NotFound()
    await disclosure(uow, case)  # the family's own read is audited too
    orgs: dict[int, str] = {
        org_id: name
        for org_id, name in (await uow.db.execute(select(Organisation.id, Organisation.name)))
    }
    mine = (
        await uow.db.scalars(
            select(ConsentRecord)
            .where(
                ConsentRecord.case_id == case.id,
                ConsentRecord.subject_member_id == who.member_id,
            )
            .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())
        )
    ).all()
    recorders = {
        u.id: u.display_name
        for u in await uow.db.scalars(
            select(User).where(User.id.in_({r.obtained_by_id for r in mine}))
        )
    }
    today = _today()
    cipher = await uow.vault.cipher(uow.db, case.id)
    consents = tuple(
        FamilyConsent(
            record_id=r.id,
            purpose=r.purpose,
            decision=r.decision,
            recipient_label=_recipient_label(r, orgs),
            recipient_is_org=r.recipient_org_id is not None,
            explanation=cipher.decrypt("consent.explanation", r.explanation_enc) or "",
            obtained_how=r.obtained_how,
            obtained_by=recorders.get(r.obtained_by_id, ""),
            recorded_at=r.recorded_at,
            valid_until=r.valid_until,
            withdrawn_at=r.withdrawn_at,
            in_force=_facts(r).is_live(today),
            may_withdraw=r.withdrawn_at is None and r.decision == Decision.CONSENT,
        )
        for r in mine
    )
    reads_where = (
        AuditEntry.case_id == case.id,
        AuditEntry.action == "case.read",
        AuditEntry.actor.like("user:%"),
    )
    total = await uow.db.scalar(select(func.count()).select_from(AuditEntry).where(*reads_where))
    rows = (
        await uow.db.scalars(
            select(AuditEntry)
            .where(*reads_where)
            .order_by(AuditEntry.seq.desc())
            .limit(_READS_SHOWN)
        )
    ).all()
    reads = tuple(
        ReadEntry(
            at=a.at,
            organisation=orgs.get(a.organisation_id) if a.organisation_id else None,
            roles=tuple(
                CONSENT_VOCAB["staff_role"].get(role, N_("Medewerker"))
                for role in a.role.split(",")
                if role
            ),
            full="level=full" in a.detail.split(),
        )
        for a in rows
    )
    return FamilyPage(who.member_role or "", consents, reads, total or 0)


def _recipient_label(r: ConsentRecord, orgs: dict[int, str]) -> str:
    if r.recipient_org_id is not None:
        return orgs.get(r.recipient_org_id, "?")
    if r.recipient_role is not None:
        return CONSENT_VOCAB["recipient_role"].get(r.recipient_role, r.recipient_role)
    return N_("Iedereen aan tafel bij deze casus")


@dataclass(frozen=True)
class IdentifyingWarning:
    """Text about to be saved in anonymous mode seems to hold identifying data.

    ``kinds`` are Dutch message ids ("een naam", "een BSN"…) for the warning; ``spans`` are
    (start, end) positions in the author's own text, to mark them."""

    kinds: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    # the sentence to show; %(what)s is the translated kinds, joined by commas
    message: str = N_(
        "Let op: deze tekst bevat misschien %(what)s. De casus wordt anoniem besproken."
        " Haal dit weg, of sla toch op als het niet naar het gezin te herleiden is."
    )


_KIND_LABELS = {
    "name": N_("een naam"),
    "bsn": N_("een burgerservicenummer"),
    "date": N_("een datum"),
    "phone": N_("een telefoonnummer"),
    "email": N_("een e-mailadres"),
    "postcode": N_("een postcode"),
    "address": N_("een adres"),
}


def identifying_kinds(text: str, names: Iterable[str] = ()) -> tuple[str, ...]:
    """The kinds of identifying data found in ``text`` (translatable labels, in order), with
    ``names`` the family's names typed in the same form; empty when none was found."""
    return tuple(dict.fromkeys(_KIND_LABELS[f.kind] for f in find_identifying(text, names)))


async def identifying_warning(
    uow: UnitOfWork, case_id: int, text: str
) -> IdentifyingWarning | None:
    """A warning when ``text`` seems to hold identifying data (herleidbare gegevens), for a
    case discussed anonymously; None when nothing was found.

    The names of the case's people are only checked for an author who may see them: for
    someone who sees the case under its pseudonym a warning on a name would tell them that
    the name they typed belongs to this family."""
    case = await uow.db.get(Case, case_id)
    if case is None:
        raise NotFound()
    level = (await disclosure(uow, case, audit_read=False)).level
    if level is Disclosure.NOTHING:
        raise NotFound()
    names: list[str] = []
    cipher = await uow.vault.cipher(uow.db, case.id)
    if level is Disclosure.FULL and not cipher.shredded:
        members = await uow.db.scalars(
            select(CaseMember).where(
                CaseMember.case_id == case.id, CaseMember.role.in_([r.value for r in FAMILY_ROLES])
            )
        )
        raw = [cipher.decrypt("case.youth_name", case.youth_name_enc)]
        raw += [cipher.decrypt("member.name", m.name_enc) for m in members]
        names = [n for n in raw if n]
    found = find_identifying(text, names)
    if not found:
        return None
    kinds = tuple(dict.fromkeys(_KIND_LABELS[f.kind] for f in found))
    return IdentifyingWarning(kinds, tuple((f.start, f.end) for f in found))
