"""Triage: registration with the entry check, planning a session, the shared work at the
table (factors, goals, arrangement lines), and closing the session.

Reads of personal data go through :func:`keerpunt.consent.service.disclosure`; view models
returned here are already redacted for the viewer.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.consent import service as consent
from keerpunt.consent.service import Disclosure
from keerpunt.platform import audit
from keerpunt.platform.crypto import CaseCipher, InvalidBSN, normalise_bsn
from keerpunt.platform.db import utcnow
from keerpunt.platform.errors import DomainError, InvalidInput, NotAllowed, NotFound, StaleVersion
from keerpunt.platform.i18n import AMSTERDAM, N_
from keerpunt.platform.models import (
    FAMILY_ROLES,
    Case,
    CaseMember,
    CaseRole,
    Invitation,
    Organisation,
    OrgKind,
    User,
)
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage import analysis, lifecycle
from keerpunt.triage.models import (
    Arrangement,
    ArrangementLine,
    BoundTo,
    EntryCheck,
    Factor,
    FactorKind,
    FactorLink,
    Goal,
    GoalFactor,
    LifeArea,
    SessionBoard,
    SessionParticipant,
    SessionStatus,
    StepNote,
    TriageSession,
)
from keerpunt.triage.table_rows import TableRows

__all__ = [
    "ENTRY_QUESTIONS",
    "ROLE_LABELS",
    "STEPS",
    "AttendanceChoice",
    "BoardView",
    "CaseView",
    "Duty",
    "EntryCheckFailed",
    "FixedArrangementLine",
    "ItemView",
    "JimView",
    "LineView",
    "LinkView",
    "PersonLabel",
    "Registration",
    "SessionView",
    "TableChanges",
    "TeamTime",
    "TeamTimeReport",
    "add_factor",
    "add_goal",
    "add_line",
    "add_note",
    "attendance_choices",
    "board_view",
    "case_view",
    "close_session",
    "fixed_arrangement_lines",
    "import_analysis",
    "item_view",
    "link_factors",
    "list_cases",
    "open_duties",
    "parse_attended_hours",
    "parse_hours",
    "plan_session",
    "put_on_screen",
    "record_attendance",
    "register_case",
    "ret_allocations_per_provider",
    "session_view",
    "set_not_without_me",
    "set_perspective",
    "table_changes",
    "table_labels",
    "tick_quality",
    "triage_team_time",
    "unlink_factors",
    "update_factor",
    "update_goal",
    "update_note",
]


# The toetsingskader: (field, question, why a NO stops the registration). Dutch message ids.
ENTRY_QUESTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "under_18",
        N_("Is de jeugdige jonger dan 18 jaar?"),
        N_("De triage is alleen voor jeugdigen jonger dan 18 jaar."),
    ),
    (
        "multiple_expertises",
        N_(
            "Is er een hulpvraag aan meerdere expertises (specialistische jeugdhulp, psychiatrie, "
            "verslavingszorg)?"
        ),
        N_("De triage is voor vragen waar meerdere expertises samen nodig zijn."),
    ),
    (
        "all_life_areas",
        N_("Zijn er problemen op alle leefgebieden (school, thuis, vrije tijd)?"),
        N_("De triage is voor problemen op alle leefgebieden."),
    ),
    (
        "placement_threat",
        N_("Dreigt een uithuisplaatsing, of woont de jeugdige in een residentiële voorziening?"),
        N_(
            "De triage is voor jeugdigen bij wie uithuisplaatsing dreigt of die residentieel wonen."
        ),
    ),
    (
        "no_other_perspective",
        N_("Is er geen perspectief op andere hulp, terwijl afschalen wenselijk is?"),
        N_("Als andere hulp nog kan, gaat die voor."),
    ),
    (
        "not_a_crisis",
        N_("Is er géén crisis (hoeft er niet binnen 24 uur iets te gebeuren)?"),
        N_("Bij een crisis gaat de crisisroute voor. Bel de crisisdienst."),
    ),
)


class EntryCheckFailed(DomainError):
    status_code = 422
    message = N_("Deze casus past (nog) niet in de triage. Er is niets opgeslagen.")

    def __init__(self, reasons: list[str]) -> None:
        super().__init__()
        self.reasons = reasons


# -- registration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """What the registrar (aanmelder) fills in."""

    answers: dict[str, bool]
    youth_name: str
    birth_date: dt.date | None
    bsn: str
    situation: str
    parent_names: tuple[str, ...]
    jim_name: str
    municipality_id: int | None
    domain: str = ""  # the predominant domain: jo | ggz | lvb, or not known yet
    anonymous_summary: str = ""  # for the table when there is no consent (anonieme bespreking)
    summary_checked: bool = False  # the registrar confirmed it identifies no one


DOMAINS = {
    "jo": N_("Jeugd en opvoeding"),
    "ggz": N_("Psychische problemen (ggz)"),
    "lvb": N_("Licht verstandelijke beperking (lvb)"),
}


def _age_band(birth: dt.date, today: dt.date) -> str:
    age = consent.age_on(birth, today)
    return "0-11" if age < 12 else "12-15" if age < 16 else "16-17"


def _new_pseudonym() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at the table
    return "K-" + "".join(secrets.choice(alphabet) for _ in range(6))


async def register_case(uow: UnitOfWork, reg: Registration) -> Case:
    """Register a case (aanmelding): only when all entry questions are YES (toetsingskader)."""
    who = uow.who
    if not who.has("registrar"):
        raise NotAllowed(N_("Alleen een aanmelder (lokale toegang, GI, huisarts) kan aanmelden."))
    reasons = [why for key, _q, why in ENTRY_QUESTIONS if not reg.answers.get(key, False)]
    if reasons:
        raise EntryCheckFailed(reasons)
    today = dt.datetime.now(AMSTERDAM).date()
    errors: dict[str, str] = {}
    if not reg.youth_name.strip():
        errors["youth_name"] = N_("Vul de naam van de jeugdige in.")
    if reg.birth_date is None:
        errors["birth_date"] = N_("Vul de geboortedatum in.")
    elif reg.birth_date > today or consent.age_on(reg.birth_date, today) >= 18:
        errors["birth_date"] = N_("Deze geboortedatum past niet bij een jeugdige jonger dan 18.")
    bsn = None
    if reg.bsn.strip():
        try:
            bsn = normalise_bsn(reg.bsn)
        except InvalidBSN as exc:
            errors["bsn"] = str(exc)
    if bsn and await uow.db.scalar(
        select(Case.id).where(Case.bsn_hash == uow.vault.bsn_hash(bsn), Case.shredded_at.is_(None))
    ):
        # Found through the keyed hash; the other case itself is not shown here.
        errors["bsn"] = N_(
            "Er is al een aanmelding met dit BSN. Neem contact op met de coördinator."
        )
    if not any(n.strip() for n in reg.parent_names):
        errors["parent_names"] = N_("Vul minstens één ouder of voogd in.")
    if reg.domain and reg.domain not in DOMAINS:
        errors["domain"] = N_("Kies het domein uit de lijst, of laat het leeg.")
    names = (reg.youth_name, *reg.parent_names, reg.jim_name)
    if (
        reg.anonymous_summary.strip()
        and not reg.summary_checked
        and consent.identifying_kinds(reg.anonymous_summary, [n for n in names if n.strip()])
    ):
        errors["anonymous_summary"] = N_(
            "Deze tekst lijkt herkenbare gegevens te bevatten, zoals een naam, datum, adres of"
            " telefoonnummer. Haal die weg. Of vink hieronder aan dat de tekst toch niemand"
            " herkenbaar maakt."
        )
    if reg.municipality_id is not None:
        muni = await uow.db.get(Organisation, reg.municipality_id)
        if muni is None or muni.kind != OrgKind.MUNICIPALITY:
            errors["municipality_id"] = N_("Kies een gemeente.")
    if errors:
        raise InvalidInput(errors)
    assert reg.birth_date is not None
    case = Case(
        pseudonym=_new_pseudonym(),
        status=lifecycle.Status.REGISTERED,
        municipality_id=reg.municipality_id,
        registered_by_id=who.user_id,
        age_band=_age_band(reg.birth_date, today),
        domain=reg.domain or None,
    )
    uow.db.add(case)
    await uow.db.flush()
    cipher = await uow.vault.create_case_key(uow.db, case.id)
    case.youth_name_enc = cipher.encrypt("case.youth_name", reg.youth_name.strip())
    case.birth_date_enc = cipher.encrypt("case.birth_date", reg.birth_date.isoformat())
    if bsn:
        case.bsn_enc = cipher.encrypt("case.bsn", bsn)
        case.bsn_hash = uow.vault.bsn_hash(bsn)
    case.situation_enc = cipher.encrypt("case.situation", reg.situation.strip() or None)
    case.anonymous_summary_enc = cipher.encrypt(
        "case.anonymous_summary", reg.anonymous_summary.strip() or None
    )
    uow.db.add(EntryCheck(case_id=case.id, **{k: True for k, _q, _w in ENTRY_QUESTIONS}))

    def member(role: CaseRole, name: str | None = None, user_id: int | None = None) -> None:
        uow.db.add(
            CaseMember(
                case_id=case.id,
                role=role.value,
                user_id=user_id,
                name_enc=cipher.encrypt("member.name", name),
            )
        )

    member(CaseRole.YOUTH, reg.youth_name.strip())
    for name in reg.parent_names:
        if name.strip():
            member(CaseRole.PARENT, name.strip())
    if reg.jim_name.strip():
        member(CaseRole.JIM, reg.jim_name.strip())
    member(CaseRole.LOCAL_TEAM, user_id=who.user_id)
    await uow.db.flush()
    await audit.record(uow.db, who, "case.registered", case_id=case.id, purpose="registration")
    return case


# -- reading a case ---------------------------------------------------------------------------


# Who someone is at a case's table (Dutch message ids; templates translate them).
ROLE_LABELS: dict[str, str] = {
    "youth": N_("Jeugdige"),
    "parent": N_("Ouder"),
    "guardian": N_("Voogd"),
    "jim": N_("JIM (mentor)"),
    "local_team": N_("Lokale toegang"),
    "coordinator": N_("Coördinator"),
    "triage_member": N_("Triageteam"),
    "school": N_("School"),
    "child_protection": N_("Jeugdbeschermer"),
    "care_worker": N_("Hulpverlener"),
    "procesregisseur": N_("Procesregisseur"),
}


@dataclass(frozen=True)
class MemberView:
    id: int
    role: str
    role_label: str
    name: str | None  # None when the viewer may not see it
    organisation: str | None
    is_family: bool


@dataclass(frozen=True)
class SessionSummary:
    id: int
    scheduled_at: dt.datetime
    status: str
    may_open: bool = False  # the viewer may open the meeting (invited, or the coordinator)


@dataclass(frozen=True)
class CaseView:
    id: int
    pseudonym: str
    level: Disclosure
    youth_name: str | None
    birth_date: dt.date | None
    age_band: str
    domain: str | None
    anonymous_summary: str | None  # shown to all at the table, also without consent
    situation: str | None
    status: str
    members: tuple[MemberView, ...]
    sessions: tuple[SessionSummary, ...]
    may_plan: bool

    @property
    def title(self) -> str:
        return self.youth_name or self.pseudonym

    @property
    def domain_label(self) -> str | None:
        """The predominant domain in words (a message id), or None when not known."""
        return DOMAINS.get(self.domain) if self.domain else None

    @property
    def next_session(self) -> SessionSummary | None:
        upcoming = [s for s in self.sessions if s.status != SessionStatus.CLOSED]
        return upcoming[0] if upcoming else None

    @property
    def full(self) -> bool:
        return self.level is Disclosure.FULL


async def _load_case(uow: UnitOfWork, case_id: int) -> Case:
    case = await uow.db.get(Case, case_id)
    if case is None:
        raise NotFound()
    return case


def _reveal(cipher: CaseCipher, level: Disclosure, field: str, value: bytes | None) -> str | None:
    if level is not Disclosure.FULL or cipher.shredded:
        return None
    return cipher.decrypt(field, value)


async def _members(
    uow: UnitOfWork, case: Case, cipher: CaseCipher, level: Disclosure
) -> tuple[MemberView, ...]:
    rows = (
        await uow.db.scalars(
            select(CaseMember)
            .where(CaseMember.case_id == case.id, CaseMember.removed_at.is_(None))
            .order_by(CaseMember.id)
        )
    ).all()
    out = []
    for m in rows:
        family = CaseRole(m.role).is_family
        name = (
            _reveal(cipher, level, "member.name", m.name_enc)
            if family
            else (m.user.display_name if m.user else None)
        )
        org = m.user.organisation.name if m.user else None
        out.append(MemberView(m.id, m.role, ROLE_LABELS.get(m.role, m.role), name, org, family))
    return tuple(out)


def _as_date(iso: str | None) -> dt.date | None:
    return dt.date.fromisoformat(iso) if iso else None


def family_at_the_table(
    present: frozenset[str], session: TriageSession | None = None
) -> tuple[int, ...]:
    """The case-member ids of the family members connected to a meeting (actors
    "member:N"): consent asks whether the family itself is at the table. A closed meeting
    has no table any more: looking at it later opens nothing."""
    if session is not None and session.status == SessionStatus.CLOSED:
        return ()
    return tuple(sorted(int(a.split(":", 1)[1]) for a in present if a.startswith("member:")))


async def case_view(
    uow: UnitOfWork, case_id: int, *, family_present: tuple[int, ...] = ()
) -> CaseView:
    """A case as this viewer may see it (full, or under its pseudonym); NotFound otherwise.
    ``family_present``: the family members taking part in the meeting being shown."""
    case = await _load_case(uow, case_id)
    decision = await consent.disclosure(uow, case, family_present=family_present)
    if decision.level is Disclosure.NOTHING:
        raise NotFound()
    cipher = await uow.vault.cipher(uow.db, case.id)
    level = decision.level
    sessions = (
        await uow.db.scalars(
            select(TriageSession)
            .where(TriageSession.case_id == case.id)
            .order_by(TriageSession.scheduled_at)
        )
    ).all()
    may_open = await sessions_open_to(uow, [s.id for s in sessions])
    return CaseView(
        id=case.id,
        pseudonym=case.pseudonym,
        level=level,
        youth_name=_reveal(cipher, level, "case.youth_name", case.youth_name_enc),
        birth_date=_as_date(_reveal(cipher, level, "case.birth_date", case.birth_date_enc)),
        age_band=case.age_band,
        domain=case.domain,
        anonymous_summary=(
            None
            if cipher.shredded
            else cipher.decrypt("case.anonymous_summary", case.anonymous_summary_enc)
        ),
        situation=_reveal(cipher, level, "case.situation", case.situation_enc),
        status=case.status,
        members=await _members(uow, case, cipher, level),
        sessions=tuple(
            SessionSummary(s.id, s.scheduled_at, s.status, s.id in may_open) for s in sessions
        ),
        may_plan=uow.who.has("coordinator"),
    )


async def list_cases(uow: UnitOfWork) -> list[CaseView]:
    """The cases this viewer may see; cases they may not see are not counted or hinted at."""
    if not uow.who.is_staff:
        return [await case_view(uow, uow.who.case_id)] if uow.who.case_id else []
    ids = (await uow.db.scalars(select(Case.id).order_by(Case.registered_at.desc()))).all()
    out = []
    for case_id in ids:
        try:
            out.append(await case_view(uow, case_id))
        except NotFound:
            continue
    return out


@dataclass(frozen=True)
class ExpertChoice:
    id: int
    name: str
    discipline: str  # a key of VOCAB["discipline"], or ""
    organisation: str


async def staff_choices(uow: UnitOfWork) -> list[ExpertChoice]:
    """Triage team members a coordinator can invite (name, discipline, organisation)."""
    users = (
        await uow.db.scalars(select(User).where(User.active.is_(True)).order_by(User.display_name))
    ).all()
    return [
        ExpertChoice(u.id, u.display_name, u.discipline or "", u.organisation.name)
        for u in users
        if "triage_member" in u.role_set
    ]


# -- planning a session --------------------------------------------------------------------


async def plan_session(
    uow: UnitOfWork, case_id: int, scheduled_at: dt.datetime, expert_user_ids: list[int]
) -> TriageSession:
    """The coordinator plans a triage session and invites the experts; the family, the JIM
    and the local team of the case are invited with it."""
    if not uow.who.has("coordinator"):
        raise NotAllowed(N_("Alleen de coördinator plant een triage-bespreking."))
    case = await _load_case(uow, case_id)
    if case.shredded_at is not None:
        raise NotAllowed(N_("Deze casus is afgesloten en vernietigd."))
    if case.status == lifecycle.Status.CLOSED:
        raise NotAllowed(N_("Deze casus is afgesloten. Er kan niets meer veranderen."))
    session = TriageSession(
        case_id=case.id, scheduled_at=scheduled_at, planned_by_id=uow.who.user_id
    )
    uow.db.add(session)
    await uow.db.flush()
    members = list(
        await uow.db.scalars(
            select(CaseMember).where(CaseMember.case_id == case.id, CaseMember.removed_at.is_(None))
        )
    )
    staff = {(m.user_id, m.role): m for m in members if m.user_id is not None}
    # The family, the JIM and the local team always sit at the table; of the professionals
    # only the chosen experts and the coordinator who plans it.
    invited = [m for m in members if m.user_id is None or m.role == "local_team"]
    assert uow.who.user_id is not None  # a coordinator is staff
    wanted = [(uid, "triage_member") for uid in dict.fromkeys(expert_user_ids)]
    wanted.append((uow.who.user_id, "coordinator"))
    for uid, role in wanted:
        if role == "triage_member":
            user = await uow.db.get(User, uid)
            if user is None or not user.active or "triage_member" not in user.role_set:
                raise InvalidInput({"experts": N_("Kies leden van het triageteam.")})
        member = staff.get((uid, role))
        if member is None:
            member = CaseMember(case_id=case.id, role=role, user_id=uid)
            uow.db.add(member)
        invited.append(member)
    await uow.db.flush()
    for member in invited:
        uow.db.add(SessionParticipant(session_id=session.id, member_id=member.id))
    if case.status in {lifecycle.Status.REGISTERED, lifecycle.Status.CONSENT_PENDING}:
        await lifecycle.transition(uow, case, lifecycle.Status.SCHEDULED, flow="plan_session")
    await uow.db.flush()
    await _record_change(uow, session, case, "session.planned", session.id, f"session={session.id}")
    return session


# -- the session ------------------------------------------------------------------------------


async def _record_change(
    uow: UnitOfWork, session: TriageSession, case: Case, kind: str, subject_id: int, detail: str
) -> None:
    """Every change at the table: a room event for the live screens and an audit row, both in
    the caller's transaction (published only after it commits)."""
    await uow.emit(session.room, kind, subject_id)
    await audit.record(uow.db, uow.who, kind, case_id=case.id, purpose="triage", detail=detail)


STEPS = (1, 2, 3, 4, 5)  # the stappenplan: JIM, analysis, goals, arrangement, plan
QUALITY_KEYS = analysis.QUALITIES
FAMILY_ROLE_NAMES = frozenset(r.value for r in FAMILY_ROLES)


@dataclass(frozen=True)
class LinkView:
    """Factor ``source_id`` keeps factor ``target_id`` going (houdt in stand)."""

    id: int
    source_id: int
    target_id: int
    target_text: str | None  # None: hidden for this viewer


@dataclass(frozen=True)
class ItemView:
    """A factor, a goal or a family note as this viewer may see it."""

    id: int
    kind: str  # "factor" | "goal" | "note"
    text: str | None  # None: hidden for this viewer (no consent, or held back)
    version: int
    author: PersonLabel
    life_area: str = ""
    factor_kind: str = ""
    anonymous: bool = False
    bound_to: str = ""
    draft: bool = False
    own_view: bool = False  # written by the youth, a parent or the JIM: their own view
    step: int = 0  # notes: the step they belong to
    # "Niet over mij zonder mij": whose wish it is, and whether it holds the text back now.
    private_to: PersonLabel | None = None
    held_back: bool = False
    may_flag: bool = False  # this viewer may set or lift the wish
    flag_is_mine: bool = False
    by_viewer: bool = False  # this viewer wrote it
    links: tuple[LinkView, ...] = ()  # factors: what this one keeps going
    factor_ids: tuple[int, ...] = ()  # goals: the factors it addresses
    measure: str | None = None  # goals, optional SMART: how we notice it works
    target_date: dt.date | None = None  # goals, optional SMART: by when

    @property
    def dom_id(self) -> str:
        return f"{self.kind}-{self.id}"

    @property
    def list_id(self) -> str:
        """The list a new item of this kind is added to on screen."""
        if self.kind == "factor":
            return f"factor-list-{self.life_area if not self.draft and self.life_area else 'draft'}"
        if self.kind == "note":
            return f"note-list-{self.step}"
        return f"{self.kind}-list"


@dataclass(frozen=True)
class LineView:
    id: int
    provider: str
    product_code: str
    help_form: str
    hours_per_week: str
    start_date: dt.date
    end_date: dt.date
    author: PersonLabel


@dataclass(frozen=True)
class JimView:
    """Step 1: a JIM of the case, whether they are asked to this meeting and here now."""

    member: MemberView
    invited: bool
    joined: bool  # used their invitation at least once
    present: bool


@dataclass(frozen=True)
class BoardView:
    """The shared board: the step on screen, the perspective and the four qualities."""

    session_id: int
    on_screen_step: int
    perspective: str | None
    perspective_version: int
    perspective_hidden: bool  # there is one, but this viewer may not read it
    qualities: frozenset[str]
    hints: dict[str, list[tuple[str, str]]]
    may_chair: bool
    may_tick: bool


@dataclass(frozen=True)
class SessionView:
    id: int
    room: str
    case: CaseView
    status: str
    scheduled_at: dt.datetime
    factors: tuple[ItemView, ...]
    goals: tuple[ItemView, ...]
    notes: tuple[ItemView, ...]
    lines: tuple[LineView, ...]
    providers: tuple[tuple[int, str], ...]
    invited: tuple[PersonLabel, ...]  # who was asked to the table, as this viewer may see them
    jims: tuple[JimView, ...]
    board: BoardView
    last_seq: int
    may_close: bool
    may_arrange: bool  # providers state their share: professionals at the table add lines
    viewer_is_family: bool

    @property
    def is_open(self) -> bool:
        return self.status != SessionStatus.CLOSED

    @property
    def anonymous_mode(self) -> bool:
        return not self.case.full

    def factors_in(self, area: str) -> tuple[ItemView, ...]:
        """Structured factors of one life area ("draft": those still to be structured)."""
        if area == "draft":
            return tuple(f for f in self.factors if f.draft or not f.life_area)
        return tuple(f for f in self.factors if not f.draft and f.life_area == area)

    def notes_for(self, step: int) -> tuple[ItemView, ...]:
        return tuple(n for n in self.notes if n.step == step)

    @property
    def factor_choices(self) -> tuple[tuple[int, str], ...]:
        """Factors this viewer can read, to link a goal or another factor to."""
        return tuple((f.id, f.text) for f in self.factors if f.text is not None)


async def _session_for(uow: UnitOfWork, session_id: int) -> tuple[TriageSession, Case]:
    """The session, if the viewer is invited to it (or coordinates); NotFound otherwise."""
    session = await uow.db.get(TriageSession, session_id)
    if session is None:
        raise NotFound()
    case = await _load_case(uow, session.case_id)
    if session.id not in await sessions_open_to(uow, [session.id]):
        raise NotFound()
    return session, case


async def sessions_open_to(uow: UnitOfWork, session_ids: Collection[int]) -> set[int]:
    """Which of these meetings the viewer may open: the coordinator all of them, anyone
    else those they are invited to while still a member of the case. A page links only to
    these, so a link never ends in 'not found'."""
    if uow.who.has("coordinator") or not session_ids:
        return set(session_ids)
    q = (
        select(SessionParticipant.session_id)
        .join(CaseMember, CaseMember.id == SessionParticipant.member_id)
        .where(SessionParticipant.session_id.in_(session_ids), CaseMember.removed_at.is_(None))
    )
    q = (
        q.where(CaseMember.id == uow.who.member_id)
        if uow.who.member_id is not None
        else q.where(CaseMember.user_id == uow.who.user_id)
    )
    return set(await uow.db.scalars(q))


async def _table_session(
    uow: UnitOfWork, session_id: int, table: TableRows
) -> tuple[TriageSession, Case]:
    """:func:`_session_for` for the reads of the table: who is invited is read once for all
    viewers of a batch."""
    session = await uow.db.get(TriageSession, session_id)
    if session is None:
        raise NotFound()
    case = await _load_case(uow, session.case_id)
    if uow.who.has("coordinator"):
        return session, case
    invited = await table.participants(session.id)
    who = uow.who
    if not any(
        (member == who.member_id) if who.member_id is not None else (user == who.user_id)
        for member, user in invited
    ):
        raise NotFound()
    return session, case


@dataclass(frozen=True)
class PersonLabel:
    """Who someone is at the table, for this viewer: a role (a message id, translated in the
    template) and a name only where consent allows (family) or always (professionals)."""

    role: str | None
    name: str | None


async def _labels(
    table: TableRows, case_id: int, cipher: CaseCipher, level: Disclosure
) -> dict[str, PersonLabel]:
    """Labels by actor ("member:7", "user:3") for everyone who is or was at this case's table."""
    labels: dict[str, PersonLabel] = {}
    for m in await table.members(case_id):
        if m.user is not None:
            staff = f"{m.user.display_name} ({m.user.organisation.name})"
            labels[f"user:{m.user_id}"] = PersonLabel(None, staff)
        else:
            family = _reveal(cipher, level, "member.name", m.name_enc)
            labels[f"member:{m.id}"] = PersonLabel(ROLE_LABELS.get(m.role, m.role), family)
    return labels


_NOBODY = PersonLabel(None, None)
_TextItem = TypeVar("_TextItem", Factor, Goal, StepNote)


@dataclass
class _Reader:
    """Decides, for one viewer, what of the table they may read.

    Consent first (``level``; items written under the pseudonym are readable by all at the
    table). Then "niet over mij zonder mij" (transparantiebeginsel, seed 003 §5.2: talk *with*
    the family, not about them): an item a family member marked so is shown only to them and
    to others while that person is at the table (connected to this meeting); anywhere else,
    e.g. a report read later, it stays held back until they lift the wish.
    """

    cipher: CaseCipher
    level: Disclosure
    labels: dict[str, PersonLabel]
    viewer: str  # actor of the viewer
    viewer_member_id: int | None
    present: frozenset[str]

    def consent_allows(self, anonymous: bool) -> bool:
        return (anonymous or self.level is Disclosure.FULL) and not self.cipher.shredded

    def held_back(self, private_to: int | None) -> bool:
        return (
            private_to is not None
            and private_to != self.viewer_member_id
            and f"member:{private_to}" not in self.present
        )

    def text(self, field: str, row: Factor | Goal | StepNote) -> str | None:
        if not self.consent_allows(row.anonymous) or self.held_back(row.private_to_member_id):
            return None
        return self.cipher.decrypt(field, row.text_enc)

    def is_family(self, actor: str) -> bool:
        label = self.labels.get(actor)
        return actor.startswith("member:") and label is not None and label.role is not None


def _item(
    kind: str,
    row: Factor | Goal | StepNote,
    reader: _Reader,
    *,
    links: tuple[LinkView, ...] = (),
    factor_ids: tuple[int, ...] = (),
) -> ItemView:
    text = reader.text(f"{kind}.text", row)
    flagger = row.private_to_member_id
    mine = flagger is not None and flagger == reader.viewer_member_id
    extra: dict[str, object] = {}
    if isinstance(row, Factor):
        extra = {
            "life_area": row.life_area,
            "factor_kind": row.kind,
            "bound_to": row.bound_to,
            "draft": row.draft,
            "links": links,
        }
    elif isinstance(row, Goal):
        extra = {
            "factor_ids": factor_ids,
            "measure": reader.cipher.decrypt("goal.measure", row.measure_enc)
            if text is not None
            else None,
            "target_date": row.target_date if text is not None else None,
        }
    else:
        extra = {"step": row.step}
    return ItemView(
        id=row.id,
        kind=kind,
        text=text,
        version=row.version,
        author=reader.labels.get(row.author, _NOBODY),
        anonymous=row.anonymous,
        own_view=reader.is_family(row.author),
        private_to=reader.labels.get(f"member:{flagger}", _NOBODY) if flagger else None,
        held_back=reader.held_back(flagger),
        may_flag=reader.viewer_member_id is not None and (flagger is None or mine),
        flag_is_mine=mine,
        by_viewer=row.author == reader.viewer,
        **extra,  # type: ignore[arg-type]
    )


def _hours(minutes: int) -> str:
    return str((Decimal(minutes) / 60).quantize(Decimal("0.01")).normalize())


async def _reader(
    uow: UnitOfWork, table: TableRows, case: Case, level: Disclosure, present: frozenset[str]
) -> _Reader:
    cipher = await table.cipher(uow.vault, case.id)
    labels = await _labels(table, case.id, cipher, level)
    return _Reader(
        cipher, level, labels, uow.who.actor, uow.who.member_id, present | {uow.who.actor}
    )


async def _factor_items(
    table: TableRows, session_id: int, rows: Sequence[Factor], reader: _Reader
) -> list[ItemView]:
    links = await table.links(session_id, {f.id for f in rows})
    targets = {f.id: f for f in await table.factors(session_id, {ln.target_id for ln in links})}
    by_source: dict[int, list[LinkView]] = {}
    for ln in links:
        target = targets.get(ln.target_id)
        text = reader.text("factor.text", target) if target is not None else None
        by_source.setdefault(ln.source_id, []).append(
            LinkView(ln.id, ln.source_id, ln.target_id, text)
        )
    return [_item("factor", f, reader, links=tuple(by_source.get(f.id, ()))) for f in rows]


async def _goal_items(table: TableRows, rows: Sequence[Goal], reader: _Reader) -> list[ItemView]:
    by_goal = await table.goal_factors({g.id for g in rows})
    return [_item("goal", g, reader, factor_ids=tuple(sorted(by_goal.get(g.id, ())))) for g in rows]


async def _board_row(uow: UnitOfWork, session_id: int, *, lock: bool = False) -> SessionBoard:
    board = await uow.db.get(SessionBoard, session_id, with_for_update=lock)
    if board is None:
        board = SessionBoard(session_id=session_id, on_screen_step=1, perspective_version=0)
        uow.db.add(board)
        await uow.db.flush()
    return board


_CIPHER_OVERHEAD = 29  # format byte, nonce, tag: the text's length without decrypting it


async def _board_view(
    uow: UnitOfWork, table: TableRows, session: TriageSession, reader: _Reader
) -> BoardView:
    board = await table.board(session.id)
    facts = [
        analysis.FactorFacts(
            f.id, f.life_area, f.kind, f.draft, max(0, len(f.text_enc) - _CIPHER_OVERHEAD)
        )
        for f in await table.factors(session.id)
    ]
    links = [(ln.source_id, ln.target_id) for ln in await table.links(session.id)]
    perspective = None
    hidden = False
    if board is not None and board.perspective_enc is not None:
        if reader.consent_allows(board.perspective_anonymous):
            perspective = reader.cipher.decrypt("board.perspective", board.perspective_enc)
        else:
            hidden = True
    return BoardView(
        session_id=session.id,
        on_screen_step=board.on_screen_step if board else 1,
        perspective=perspective,
        perspective_version=board.perspective_version if board else 0,
        perspective_hidden=hidden,
        qualities=frozenset(q for q in (board.qualities if board else "").split(",") if q),
        hints=analysis.quality_hints(facts, links),
        may_chair=uow.who.has("coordinator"),
        may_tick=_may_arrange(uow),
    )


async def _jims(
    uow: UnitOfWork, case: Case, session: TriageSession, reader: _Reader
) -> tuple[JimView, ...]:
    members = await _members(uow, case, reader.cipher, reader.level)
    jims = [m for m in members if m.role == CaseRole.JIM]
    if not jims:
        return ()
    ids = [m.id for m in jims]
    invited = set(
        (
            await uow.db.scalars(
                select(SessionParticipant.member_id).where(
                    SessionParticipant.session_id == session.id,
                    SessionParticipant.member_id.in_(ids),
                )
            )
        ).all()
    )
    joined = set(
        (
            await uow.db.scalars(
                select(Invitation.member_id).where(
                    Invitation.member_id.in_(ids), Invitation.used_at.is_not(None)
                )
            )
        ).all()
    )
    return tuple(
        JimView(m, m.id in invited, m.id in joined, f"member:{m.id}" in reader.present)
        for m in jims
    )


async def session_view(
    uow: UnitOfWork,
    session_id: int,
    present: frozenset[str] = frozenset(),
    *,
    table: TableRows | None = None,
) -> SessionView:
    """The whole shared table for this viewer, redacted by consent and by "niet over mij
    zonder mij" (``present``: the actors connected to the meeting now). ``table``: the rows
    already read for other viewers of the same picture (a live push)."""
    table = table or TableRows(uow.db)
    session, case = await _table_session(uow, session_id, table)
    cv = await case_view(uow, case.id, family_present=family_at_the_table(present, session))
    reader = await _reader(uow, table, case, cv.level, present)
    factors = await table.factors(session.id)
    goals = await table.goals(session.id)
    notes = await table.notes(session.id)
    orgs = await table.providers()
    invited_ids = (
        await uow.db.scalars(
            select(CaseMember)
            .join(SessionParticipant, SessionParticipant.member_id == CaseMember.id)
            .where(SessionParticipant.session_id == session.id)
            .order_by(CaseMember.id)
        )
    ).all()
    lines = await table.lines(session.id)
    return SessionView(
        id=session.id,
        room=session.room,
        case=cv,
        status=session.status,
        scheduled_at=session.scheduled_at,
        factors=tuple(await _factor_items(table, session.id, factors, reader)),
        goals=tuple(await _goal_items(table, goals, reader)),
        notes=tuple(_item("note", n, reader) for n in notes),
        lines=tuple(_line(ln, orgs, reader.labels) for ln in lines),
        providers=tuple(orgs.items()),
        invited=tuple(
            reader.labels.get(f"user:{m.user_id}" if m.user_id else f"member:{m.id}", _NOBODY)
            for m in invited_ids
        ),
        jims=await _jims(uow, case, session, reader),
        board=await _board_view(uow, table, session, reader),
        last_seq=await uow.last_seq(session.room),
        may_close=uow.who.has("coordinator") and session.status != SessionStatus.CLOSED,
        may_arrange=_may_arrange(uow),
        viewer_is_family=(uow.who.member_role or "") in FAMILY_ROLE_NAMES,
    )


async def _providers(uow: UnitOfWork, ids: set[int] | None = None) -> dict[int, str]:
    q = select(Organisation.id, Organisation.name).where(Organisation.kind == OrgKind.PROVIDER)
    if ids is not None:
        q = q.where(Organisation.id.in_(ids))
    return {row.id: row.name for row in await uow.db.execute(q.order_by(Organisation.name))}


def _line(ln: ArrangementLine, orgs: dict[int, str], labels: dict[str, PersonLabel]) -> LineView:
    return LineView(
        id=ln.id,
        provider=orgs.get(ln.provider_id, "?"),
        product_code=ln.product_code,
        help_form=ln.help_form,
        hours_per_week=_hours(ln.minutes_per_week),
        start_date=ln.start_date,
        end_date=ln.end_date,
        author=labels.get(ln.author, _NOBODY),
    )


@dataclass(frozen=True)
class TableChanges:
    """Only what some room events changed, rendered for one viewer (cheap enough per push)."""

    session_id: int
    items: dict[tuple[str, int], ItemView]
    present: dict[str, PersonLabel]
    board: BoardView | None = None
    factor_choices: tuple[tuple[int, str], ...] = ()
    level: Disclosure = Disclosure.PSEUDONYMOUS  # what consent allowed this viewer here


async def _rows_of(
    uow: UnitOfWork, model: type[_TextItem], session_id: int, ids: set[int]
) -> Sequence[_TextItem]:
    if not ids:
        return ()
    q = select(model).where(model.session_id == session_id, model.id.in_(ids))
    return (await uow.db.scalars(q)).all()


async def table_changes(
    uow: UnitOfWork,
    session_id: int,
    refs: list[tuple[str, int]],
    present: frozenset[str] = frozenset(),
    *,
    table: TableRows | None = None,
) -> TableChanges:
    """The factors, goals and notes named by ``refs`` ((kind, id) pairs; ("board", 0)
    for the shared board) and the labels of the people at the table, for this viewer. One
    consent decision (audited), then only the named rows: what a live push needs, instead
    of the whole table. ``table``: the rows already read for other viewers of the same
    picture (a live push reads each changed row once for all its viewers)."""
    table = table or TableRows(uow.db)
    session, case = await _table_session(uow, session_id, table)
    level = (
        await consent.disclosure(uow, case, family_present=family_at_the_table(present, session))
    ).level
    if level is Disclosure.NOTHING:
        raise NotFound()
    reader = await _reader(uow, table, case, level, present)
    wanted: dict[str, set[int]] = {"factor": set(), "goal": set(), "note": set()}
    for kind, item_id in refs:
        wanted.setdefault(kind, set()).add(item_id)
    board_too = bool(wanted.get("board") or wanted["factor"])  # the hints follow the factors
    choices_too = bool(wanted["factor"] or wanted["goal"])
    if board_too or choices_too:
        # Every factor is read anyway (hints, choices): the changed ones are among them.
        await table.factors(session.id)
    if board_too:
        await table.links(session.id)
    items: dict[tuple[str, int], ItemView] = {}
    factor_rows = await table.factors(session.id, wanted["factor"])
    for view in await _factor_items(table, session.id, factor_rows, reader):
        items[("factor", view.id)] = view
    for view in await _goal_items(table, await table.goals(session.id, wanted["goal"]), reader):
        items[("goal", view.id)] = view
    for note in await table.notes(session.id, wanted["note"]):
        items[("note", note.id)] = _item("note", note, reader)
    board = await _board_view(uow, table, session, reader) if board_too else None
    choices: tuple[tuple[int, str], ...] = ()
    if choices_too:
        # Goals name the factors they address; new factors become choices in the forms.
        choices = tuple(
            (f.id, text)
            for f in await table.factors(session.id)
            if (text := reader.text("factor.text", f))
        )
    return TableChanges(session.id, items, reader.labels, board, choices, level)


async def table_labels(
    uow: UnitOfWork,
    session_id: int,
    present: frozenset[str] = frozenset(),
    *,
    table: TableRows | None = None,
) -> dict[str, PersonLabel]:
    """The labels of the people at the table for this viewer, for the typing signal.
    ``present``: the actors connected to the meeting now; with the family at the table the
    names are shown as in the presence list and on the rest of the screen.

    Not audited as a read: it names only the people the presence list (audited) already
    named on this connection, and it runs for every typing signal."""
    table = table or TableRows(uow.db)
    session, case = await _table_session(uow, session_id, table)
    level = (
        await consent.disclosure(
            uow, case, family_present=family_at_the_table(present, session), audit_read=False
        )
    ).level
    if level is Disclosure.NOTHING:
        raise NotFound()
    cipher = await table.cipher(uow.vault, case.id)
    return await _labels(table, case.id, cipher, level)


async def _open_session(uow: UnitOfWork, session_id: int) -> tuple[TriageSession, Case, Disclosure]:
    session, case = await _session_for(uow, session_id)
    if session.status == SessionStatus.CLOSED:
        raise NotAllowed(N_("Deze bespreking is gesloten. Er kan niets meer bij."))
    level = (await consent.disclosure(uow, case, audit_read=False)).level
    if session.status == SessionStatus.PLANNED:
        # The first edits of a meeting often come at once: the first opens it (and moves the
        # case into triage), the others wait for that here and find it open.
        await uow.db.refresh(session, with_for_update=True)
    if session.status == SessionStatus.PLANNED:
        await uow.db.refresh(case)
        session.status = SessionStatus.OPEN
        if case.status == lifecycle.Status.SCHEDULED:
            await lifecycle.transition(uow, case, lifecycle.Status.IN_TRIAGE, flow="session_start")
    return session, case, level


IDENTIFYING_WARNING = N_(
    "Let op: deze tekst bevat misschien herkenbare gegevens, zoals een naam, datum, adres of"
    " telefoonnummer. De casus wordt anoniem besproken. Haal dit weg. Of vink hieronder aan"
    " dat de tekst niet naar het gezin te herleiden is, en sla opnieuw op."
)


async def _guard_anonymous(
    uow: UnitOfWork,
    case: Case,
    level: Disclosure,
    text: str,
    confirmed: bool,
    field: str = "text",
) -> None:
    """Text written under the pseudonym is shown to everyone at the table (anonieme
    bespreking): identifying data in it needs a deliberate second look before it is saved.
    The warning is on ``field``, the form field the text came from."""
    if level is Disclosure.FULL or confirmed:
        return
    if await consent.identifying_warning(uow, case.id, text) is not None:
        raise InvalidInput(
            {
                field: IDENTIFYING_WARNING,
                "confirm_identifying": N_("Vink aan als de tekst niemand herkenbaar maakt."),
            }
        )


def _clean_text(text: str, field: str = "text") -> str:
    text = text.strip()
    if not text:
        raise InvalidInput({field: N_("Schrijf iets op.")})
    if len(text) > 4000:
        raise InvalidInput({field: N_("Dit is te lang. Maak het korter dan 4000 tekens.")})
    return text


def _check_structure(life_area: str, kind: str, bound_to: str) -> None:
    errors = {}
    if life_area not in LifeArea.__members__.values():
        errors["life_area"] = N_("Kies een leefgebied.")
    if kind not in FactorKind.__members__.values():
        errors["kind"] = N_("Kies wat voor factor het is.")
    if bound_to and bound_to not in BoundTo.__members__.values():
        errors["bound_to"] = N_("Kies bij wie de factor hoort: kind, gezin of omgeving.")
    if errors:
        raise InvalidInput(errors)


async def add_factor(
    uow: UnitOfWork,
    session_id: int,
    life_area: str,
    kind: str,
    text: str,
    bound_to: str = "",
    *,
    confirmed: bool = False,
) -> Factor:
    """Add a factor of the explanatory analysis (verklarende analyse): a life area, one of
    the four kinds, and optionally whether it sits in the child, the family or around them.
    ``confirmed``: the author looked again at text the identifying-data check flagged."""
    _check_structure(life_area, kind, bound_to)
    session, case, level = await _open_session(uow, session_id)
    await _guard_anonymous(uow, case, level, text, confirmed)
    cipher = await uow.vault.cipher(uow.db, case.id)
    factor = Factor(
        session_id=session.id,
        life_area=life_area,
        kind=kind,
        bound_to=bound_to,
        text_enc=cipher.encrypt("factor.text", _clean_text(text)),
        anonymous=level is not Disclosure.FULL,
        author=uow.who.actor,
    )
    uow.db.add(factor)
    await uow.db.flush()
    await _record_change(uow, session, case, "factor.created", factor.id, f"factor={factor.id}")
    return factor


async def import_analysis(
    uow: UnitOfWork, session_id: int, text: str, *, confirmed: bool = False
) -> list[Factor]:
    """An existing analysis, pasted as text, becomes draft factors the table then structures
    (soms is er al een verklarende analyse). Nothing is saved when nothing is found. Under
    the pseudonym the drafts are read by everyone at the table: identifying data in the text
    needs a second look (``confirmed``) first."""
    if len(text) > 100_000:
        raise InvalidInput({"analysis": N_("Dit is te lang om in één keer over te nemen.")})
    drafts = analysis.split_analysis(text)
    if not drafts:
        raise InvalidInput({"analysis": N_("Plak de tekst van de analyse in het vak.")})
    session, case, level = await _open_session(uow, session_id)
    await _guard_anonymous(uow, case, level, text, confirmed, "analysis")
    cipher = await uow.vault.cipher(uow.db, case.id)
    rows = [
        Factor(
            session_id=session.id,
            life_area=d.life_area,
            kind=d.kind,
            bound_to=d.bound_to,
            draft=True,
            text_enc=cipher.encrypt("factor.text", d.text),
            anonymous=level is not Disclosure.FULL,
            author=uow.who.actor,
        )
        for d in drafts
    ]
    uow.db.add_all(rows)
    await uow.db.flush()
    for row in rows:
        await uow.emit(session.room, "factor.created", row.id)
    await audit.record(
        uow.db,
        uow.who,
        "factor.imported",
        case_id=case.id,
        purpose="triage",
        detail=f"factors={len(rows)}",
    )
    return rows


async def link_factors(
    uow: UnitOfWork, session_id: int, source_id: int, target_id: int
) -> FactorLink:
    """Record that one factor keeps another going (houdt in stand); a link once is enough."""
    session, case, level = await _open_session(uow, session_id)
    if source_id == target_id:
        raise InvalidInput({"target_id": N_("Kies twee verschillende factoren.")})
    rows = await _rows_of(uow, Factor, session.id, {source_id, target_id})
    if len(rows) != 2:
        raise InvalidInput({"target_id": N_("Kies twee factoren uit deze analyse.")})
    if any(not (r.anonymous or level is Disclosure.FULL) for r in rows):
        raise NotAllowed()
    existing = await uow.db.scalar(
        select(FactorLink).where(
            FactorLink.source_id == source_id, FactorLink.target_id == target_id
        )
    )
    if existing is not None:
        return existing
    link = FactorLink(
        session_id=session.id, source_id=source_id, target_id=target_id, author=uow.who.actor
    )
    uow.db.add(link)
    await uow.db.flush()
    # The source factor shows what it keeps going: it is re-rendered for everyone.
    await _record_change(
        uow, session, case, "factor.linked", source_id, f"link={source_id}->{target_id}"
    )
    return link


async def unlink_factors(uow: UnitOfWork, session_id: int, link_id: int) -> None:
    """Remove a "keeps going" link that turned out wrong."""
    session, case, level = await _open_session(uow, session_id)
    link = await uow.db.get(FactorLink, link_id)
    if link is None or link.session_id != session.id:
        raise NotFound()
    ends = await _rows_of(uow, Factor, session.id, {link.source_id, link.target_id})
    if any(not (f.anonymous or level is Disclosure.FULL) for f in ends):
        raise NotAllowed()  # not for someone who cannot read what it links
    source = link.source_id
    await uow.db.delete(link)
    await uow.db.flush()
    await _record_change(uow, session, case, "factor.unlinked", source, f"link={link_id}")


def _clean_measure(measure: str) -> str | None:
    measure = measure.strip()
    if len(measure) > 1000:
        raise InvalidInput({"measure": N_("Dit is te lang. Maak het korter dan 1000 tekens.")})
    return measure or None


async def _check_factors(
    uow: UnitOfWork, session: TriageSession, factor_ids: Sequence[int]
) -> set[int]:
    wanted = set(factor_ids)
    found = {f.id for f in await _rows_of(uow, Factor, session.id, wanted)}
    if found != wanted:
        raise InvalidInput({"factor_ids": N_("Kies factoren uit deze analyse.")})
    return wanted


async def _set_goal_factors(
    uow: UnitOfWork, session: TriageSession, goal: Goal, factor_ids: Sequence[int]
) -> None:
    wanted = await _check_factors(uow, session, factor_ids)
    current = set(
        (
            await uow.db.scalars(select(GoalFactor.factor_id).where(GoalFactor.goal_id == goal.id))
        ).all()
    )
    for fid in current - wanted:
        row = await uow.db.get(GoalFactor, (goal.id, fid))
        if row is not None:
            await uow.db.delete(row)
    uow.db.add_all(GoalFactor(goal_id=goal.id, factor_id=fid) for fid in wanted - current)
    await uow.db.flush()


async def add_goal(
    uow: UnitOfWork,
    session_id: int,
    text: str,
    factor_ids: Sequence[int] = (),
    measure: str = "",
    target_date: dt.date | None = None,
    *,
    confirmed: bool = False,
) -> Goal:
    """Add a goal, in the youth's own words, with the factors it addresses; how we notice it
    works and by when (SMART) are optional."""
    clean = _clean_text(text)
    clean_measure = _clean_measure(measure)
    session, case, level = await _open_session(uow, session_id)
    await _guard_anonymous(uow, case, level, f"{clean}\n{clean_measure or ''}", confirmed)
    await _check_factors(uow, session, factor_ids)  # before anything is written
    cipher = await uow.vault.cipher(uow.db, case.id)
    goal = Goal(
        session_id=session.id,
        text_enc=cipher.encrypt("goal.text", clean),
        measure_enc=cipher.encrypt("goal.measure", clean_measure),
        target_date=target_date,
        anonymous=level is not Disclosure.FULL,
        author=uow.who.actor,
    )
    uow.db.add(goal)
    await uow.db.flush()
    await _set_goal_factors(uow, session, goal, factor_ids)
    await _record_change(uow, session, case, "goal.created", goal.id, f"goal={goal.id}")
    return goal


async def _locked_item(
    uow: UnitOfWork, model: type[_TextItem], session_id: int, item_id: int, version: int
) -> tuple[TriageSession, Case, Disclosure, _TextItem]:
    session, case, level = await _open_session(uow, session_id)
    row = await uow.db.get(model, item_id, with_for_update=True)
    if row is None or row.session_id != session.id:
        raise NotFound()
    if not (row.anonymous or level is Disclosure.FULL):
        raise NotAllowed()
    if row.private_to_member_id not in (None, uow.who.member_id):
        # Held back for this person: they cannot change what they may not read.
        raise NotAllowed(N_("Dit wordt alleen besproken als de persoon zelf erbij is."))
    if row.version != version:
        raise StaleVersion()
    return session, case, level, row


async def _save_text(
    uow: UnitOfWork,
    kind: str,
    model: type[_TextItem],
    session_id: int,
    item_id: int,
    text: str,
    version: int,
    change: Callable[[_TextItem], str | None] | None = None,
    confirmed: bool = False,
) -> tuple[TriageSession, _TextItem]:
    clean = _clean_text(text)
    session, case, _level, row = await _locked_item(uow, model, session_id, item_id, version)
    if row.anonymous:
        # An anonymous item is read by everyone at the table, whoever edits it now.
        await _guard_anonymous(uow, case, Disclosure.PSEUDONYMOUS, clean, confirmed)
    cipher = await uow.vault.cipher(uow.db, case.id)
    encrypted = cipher.encrypt(f"{kind}.text", clean)
    assert encrypted is not None
    row.text_enc = encrypted
    action = (change(row) if change is not None else None) or "updated"
    row.version += 1
    row.updated_at = utcnow()
    await uow.db.flush()
    await _record_change(
        uow, session, case, f"{kind}.{action}", row.id, f"{kind}={row.id} version={row.version}"
    )
    return session, row


async def update_factor(
    uow: UnitOfWork,
    session_id: int,
    factor_id: int,
    text: str,
    version: int,
    structure: tuple[str, str, str] | None = None,
    *,
    confirmed: bool = False,
) -> Factor:
    """Change a factor's text and, with ``structure`` (life area, kind, bound to), its place
    in the analysis (a draft becomes a structured factor); refused (StaleVersion) if someone
    changed it meanwhile."""
    if structure is not None:
        _check_structure(*structure)

    def place(row: Factor) -> str | None:
        if structure is None:
            return None
        before = (row.life_area, row.draft)
        row.life_area, row.kind, row.bound_to = structure
        row.draft = False
        # Another life area (or out of the drafts): it moves to another list on screen.
        return "moved" if before != (row.life_area, row.draft) else None

    _session, row = await _save_text(
        uow, "factor", Factor, session_id, factor_id, text, version, place, confirmed
    )
    return row


async def update_goal(
    uow: UnitOfWork,
    session_id: int,
    goal_id: int,
    text: str,
    version: int,
    factor_ids: Sequence[int] | None = None,
    measure: str | None = None,
    target_date: dt.date | None = None,
    *,
    confirmed: bool = False,
) -> Goal:
    """Change a goal (text, and when given its factors and SMART details); refused
    (StaleVersion) if someone changed it meanwhile."""
    clean_measure = _clean_measure(measure) if measure is not None else None
    case_cipher: list[CaseCipher] = []

    def details(row: Goal) -> str | None:
        if measure is not None:
            row.measure_enc = case_cipher[0].encrypt("goal.measure", clean_measure)
            row.target_date = target_date
        return None

    session = await uow.db.get(TriageSession, session_id)
    if session is None:
        raise NotFound()
    case_cipher.append(await uow.vault.cipher(uow.db, session.case_id))
    if factor_ids is not None:
        await _check_factors(uow, session, factor_ids)  # before anything is written
    session, row = await _save_text(
        uow, "goal", Goal, session_id, goal_id, text, version, details, confirmed
    )
    if factor_ids is not None:
        await _set_goal_factors(uow, session, row, factor_ids)
    return row


async def add_note(
    uow: UnitOfWork, session_id: int, step: int, text: str, *, confirmed: bool = False
) -> StepNote:
    """The youth, a parent or the JIM adds their own view to a step (eigen inbreng); it is
    marked as theirs."""
    if (uow.who.member_role or "") not in FAMILY_ROLE_NAMES:
        raise NotAllowed(N_("Hier schrijven de jeugdige, de ouders en de JIM hun eigen kijk."))
    if step not in STEPS:
        raise InvalidInput({"step": N_("Kies een stap van 1 tot en met 5.")})
    clean = _clean_text(text)
    session, case, level = await _open_session(uow, session_id)
    await _guard_anonymous(uow, case, level, clean, confirmed)
    cipher = await uow.vault.cipher(uow.db, case.id)
    note = StepNote(
        session_id=session.id,
        step=step,
        text_enc=cipher.encrypt("note.text", clean),
        anonymous=level is not Disclosure.FULL,
        author=uow.who.actor,
    )
    uow.db.add(note)
    await uow.db.flush()
    await _record_change(uow, session, case, "note.created", note.id, f"note={note.id}")
    return note


async def update_note(
    uow: UnitOfWork,
    session_id: int,
    note_id: int,
    text: str,
    version: int,
    *,
    confirmed: bool = False,
) -> StepNote:
    """Change a family note; only its author may, and not over someone else's change."""
    note = await uow.db.get(StepNote, note_id)
    if note is not None and note.author != uow.who.actor:
        raise NotAllowed(N_("Alleen wie dit schreef kan het aanpassen."))
    _session, row = await _save_text(
        uow, "note", StepNote, session_id, note_id, text, version, None, confirmed
    )
    return row


_FLAGGABLE: dict[str, type[Factor] | type[Goal] | type[StepNote]] = {
    "factor": Factor,
    "goal": Goal,
    "note": StepNote,
}


async def set_not_without_me(
    uow: UnitOfWork, session_id: int, kind: str, item_id: int, on: bool
) -> None:
    """ "Niet over mij zonder mij": the youth, a parent or the JIM asks that an item is only
    shown while they are at the table (and held back elsewhere, e.g. in a report), or lifts
    that wish again. One person's wish per item; only they can lift it."""
    if (uow.who.member_role or "") not in FAMILY_ROLE_NAMES or uow.who.member_id is None:
        raise NotAllowed(N_("Dit kunnen alleen de jeugdige, de ouders en de JIM aangeven."))
    model = _FLAGGABLE.get(kind)
    if model is None:
        raise NotFound()
    session, case, level = await _open_session(uow, session_id)
    row: Factor | Goal | StepNote | None = await uow.db.get(model, item_id, with_for_update=True)
    if row is None or row.session_id != session.id:
        raise NotFound()
    if not (row.anonymous or level is Disclosure.FULL):
        raise NotAllowed()
    if row.private_to_member_id not in (None, uow.who.member_id):
        raise NotAllowed(
            N_("Iemand anders heeft dit al gevraagd. Alleen die persoon kan het weer vrijgeven.")
        )
    row.private_to_member_id = uow.who.member_id if on else None
    await uow.db.flush()
    await _record_change(
        uow, session, case, f"{kind}.flagged", row.id, f"{kind}={row.id} private={on}"
    )


async def put_on_screen(uow: UnitOfWork, session_id: int, step: int) -> None:
    """The chair (coordinator) puts a step on the shared screen; everyone sees which."""
    if not uow.who.has("coordinator"):
        raise NotAllowed(N_("Alleen de voorzitter kiest wat op het scherm staat."))
    if step not in STEPS:
        raise InvalidInput({"step": N_("Kies een stap van 1 tot en met 5.")})
    session, case, _level = await _open_session(uow, session_id)
    board = await _board_row(uow, session.id, lock=True)
    board.on_screen_step = step
    await uow.db.flush()
    await _record_change(uow, session, case, "board.screen", session.id, f"step={step}")


async def set_perspective(
    uow: UnitOfWork, session_id: int, text: str, version: int, *, confirmed: bool = False
) -> None:
    """The desired perspective of the youth (gewenst perspectief), which the goals serve;
    refused (StaleVersion) if someone changed it meanwhile. Written under the pseudonym it is
    read by everyone at the table: identifying data needs a second look (``confirmed``)."""
    clean = _clean_text(text, "perspective")
    session, case, level = await _open_session(uow, session_id)
    await _guard_anonymous(uow, case, level, clean, confirmed, "perspective")
    board = await _board_row(uow, session.id, lock=True)
    if board.perspective_version != version:
        raise StaleVersion()
    if board.perspective_enc is not None and not (
        board.perspective_anonymous or level is Disclosure.FULL
    ):
        raise NotAllowed()
    cipher = await uow.vault.cipher(uow.db, case.id)
    board.perspective_enc = cipher.encrypt("board.perspective", clean)
    board.perspective_anonymous = level is not Disclosure.FULL
    board.perspective_version += 1
    await uow.db.flush()
    await _record_change(
        uow, session, case, "board.perspective", session.id, f"version={board.perspective_version}"
    )


async def tick_quality(uow: UnitOfWork, session_id: int, quality: str, ticked: bool) -> None:
    """The team ticks off a quality of the analysis: complete, simple, coherent, testable
    (volledig, eenvoudig, samenhangend, toetsbaar)."""
    if not _may_arrange(uow):
        raise NotAllowed(N_("Het triageteam vinkt de kwaliteiten van de analyse af."))
    if quality not in QUALITY_KEYS:
        raise InvalidInput({"quality": N_("Kies een van de vier kwaliteiten.")})
    session, case, _level = await _open_session(uow, session_id)
    board = await _board_row(uow, session.id, lock=True)
    ticked_now = {q for q in board.qualities.split(",") if q}
    ticked_now = ticked_now | {quality} if ticked else ticked_now - {quality}
    board.qualities = ",".join(q for q in QUALITY_KEYS if q in ticked_now)
    await uow.db.flush()
    await _record_change(
        uow, session, case, "board.quality", session.id, f"{quality}={'yes' if ticked else 'no'}"
    )


async def board_view(
    uow: UnitOfWork, session_id: int, present: frozenset[str] = frozenset()
) -> BoardView:
    """The shared board as this viewer may see it."""
    changes = await table_changes(uow, session_id, [("board", 0)], present)
    assert changes.board is not None
    return changes.board


async def item_view(
    uow: UnitOfWork,
    session_id: int,
    kind: str,
    item_id: int,
    present: frozenset[str] = frozenset(),
) -> ItemView:
    """One factor, goal or note as this viewer may see it."""
    changes = await table_changes(uow, session_id, [(kind, item_id)], present)
    try:
        return changes.items[(kind, item_id)]
    except KeyError:
        raise NotFound() from None


def parse_hours(raw: str) -> int:
    """Hours per week as typed ("2", "2,5", "1.25") to whole minutes; InvalidInput otherwise."""
    try:
        hours = Decimal(raw.strip().replace(",", "."))
    except InvalidOperation:
        raise InvalidInput(
            {"hours": N_("Vul het aantal uren per week in, bijvoorbeeld 2 of 2,5.")}
        ) from None
    if not hours.is_finite() or hours <= 0 or hours > 168:
        raise InvalidInput({"hours": N_("Het aantal uren per week moet tussen 0 en 168 liggen.")})
    minutes = hours * 60
    if minutes != minutes.to_integral_value():
        raise InvalidInput({"hours": N_("Vul uren in hele minuten in, bijvoorbeeld 1,25 of 1,5.")})
    return int(minutes)


def _may_arrange(uow: UnitOfWork) -> bool:
    return uow.who.is_staff and bool(uow.who.staff_roles & {"triage_member", "coordinator"})


async def add_line(
    uow: UnitOfWork,
    session_id: int,
    provider_id: int,
    product_code: str,
    help_form: str,
    hours: str,
    start: dt.date | None,
    *,
    intensity_unit: str = "hour",
    share: str = "",
    end: dt.date | None = None,
    confirmed: bool = False,
) -> ArrangementLine:
    """Add a line to the arrangement: the provider states its share and the intensity
    (``hours``: hours per week, or dagdelen / etmalen per week with ``intensity_unit``).
    Refused once the chair has agreed the split: then only a new version changes it. A
    share written under the pseudonym is read by everyone at the table: identifying data in
    it needs a second look (``confirmed``)."""
    from keerpunt.triage import arrangement  # step 4 builds on this module

    if not _may_arrange(uow):
        raise NotAllowed(
            N_("Alleen de professionals aan tafel leggen hulp vast in het arrangement.")
        )
    errors: dict[str, str] = {}
    provider = await uow.db.get(Organisation, provider_id)
    if provider is None or provider.kind != OrgKind.PROVIDER:
        errors["provider_id"] = N_("Kies een zorgaanbieder.")
    code = product_code.strip().upper()
    if not (len(code) == 5 and code.isalnum()):
        errors["product_code"] = N_("Een productcode heeft 5 tekens, bijvoorbeeld 45A52.")
    if help_form not in arrangement.HELP_FORMS:
        errors["help_form"] = N_("Kies de vorm van de hulp.")
    try:
        minutes, units = arrangement.parse_intensity(hours, intensity_unit)
    except InvalidInput as exc:
        errors.update(exc.errors)
        minutes, units = 0, None
    if len(share.strip()) > 2000:
        errors["share"] = N_("Dit is te lang. Maak het korter dan 2000 tekens.")
    begin = start or dt.datetime.now(AMSTERDAM).date()
    if end is not None and end < begin:
        errors["end_date"] = N_("Het einde ligt voor de start.")
    if errors:
        raise InvalidInput(errors)
    session, case, level = await _open_session(uow, session_id)
    current = await arrangement.arrangement_for(uow, session.id)
    if current.agreed_at is not None:
        raise NotAllowed(arrangement._AGREED)
    if share.strip():
        await _guard_anonymous(uow, case, level, share, confirmed, "share")
    cipher = await uow.vault.cipher(uow.db, case.id)
    line = ArrangementLine(
        session_id=session.id,
        provider_id=provider_id,
        product_code=code,
        help_form=help_form,
        minutes_per_week=minutes,
        intensity_unit=intensity_unit,
        units_per_week=units,
        share_enc=cipher.encrypt("line.share", share.strip() or None),
        share_anonymous=level is not Disclosure.FULL,
        start_date=begin,
        end_date=end or arrangement.expected_end(begin),
        author=uow.who.actor,
        revision=current.version,
    )
    uow.db.add(line)
    await uow.db.flush()
    await _record_change(uow, session, case, "line.created", line.id, f"line={line.id}")
    return line


async def close_session(uow: UnitOfWork, session_id: int) -> TriageSession:
    """The chair closes the session; the arrangement is fixed from then on."""
    if not uow.who.has("coordinator"):
        raise NotAllowed(N_("Alleen de voorzitter (coördinator) sluit de bespreking."))
    session, case, _level = await _open_session(uow, session_id)
    has_lines = await uow.db.scalar(
        select(ArrangementLine.id).where(ArrangementLine.session_id == session.id).limit(1)
    )
    if has_lines is None:
        raise InvalidInput(
            {"close": N_("Er is nog geen arrangement. Voeg eerst minstens één regel hulp toe.")}
        )
    from keerpunt.triage import arrangement, report  # steps 4 and the ending build on this

    await arrangement.fix_on_close(uow, session, case)
    session.status = SessionStatus.CLOSED
    session.closed_at = utcnow()
    session.closed_by_id = uow.who.user_id
    if case.status == lifecycle.Status.IN_TRIAGE:
        await lifecycle.transition(
            uow, case, lifecycle.Status.ARRANGEMENT_AGREED, flow="session_close"
        )
    await uow.db.flush()
    await report.create_report(uow, session, case)
    await _record_change(uow, session, case, "session.closed", session.id, f"session={session.id}")
    return session


# -- for settlement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedArrangementLine:
    line_id: int
    case_id: int
    case_pseudonym: str
    session_id: int
    provider_id: int
    product_code: str
    help_form: str
    minutes_per_week: int
    start_date: dt.date
    end_date: dt.date
    intensity_unit: str = "hour"  # "dagdeel" / "etmaal": minutes_per_week is their time
    units_per_week: int | None = None


async def fixed_arrangement_lines(
    db: AsyncSession, start: dt.date, end: dt.date
) -> list[FixedArrangementLine]:
    """Arrangement lines of closed sessions overlapping [start, end]: non-personal by design.
    Only the arrangement's current version counts (older versions are history)."""
    rows = await db.execute(
        select(ArrangementLine, TriageSession.case_id, Case.pseudonym)
        .join(TriageSession, TriageSession.id == ArrangementLine.session_id)
        .join(Case, Case.id == TriageSession.case_id)
        .outerjoin(Arrangement, Arrangement.session_id == ArrangementLine.session_id)
        .where(
            TriageSession.status == SessionStatus.CLOSED,
            ArrangementLine.revision
            == func.coalesce(Arrangement.version, ArrangementLine.revision),
            ArrangementLine.start_date <= end,
            ArrangementLine.end_date >= start,
        )
        .order_by(ArrangementLine.id)
    )
    return [
        FixedArrangementLine(
            line_id=ln.id,
            case_id=case_id,
            case_pseudonym=pseudonym,
            session_id=ln.session_id,
            provider_id=ln.provider_id,
            product_code=ln.product_code,
            help_form=ln.help_form,
            minutes_per_week=ln.minutes_per_week,
            start_date=ln.start_date,
            end_date=ln.end_date,
            intensity_unit=ln.intensity_unit,
            units_per_week=ln.units_per_week,
        )
        for ln, case_id, pseudonym in rows.all()
    ]


# -- attendance of the triage team (for settlement: verrekening inzet triageleden) ------------

MAX_ATTENDED_MINUTES = 12 * 60  # a session with its preparation is one working day at most
_HOURS_HINT = N_("Vul het aantal uren in, bijvoorbeeld 4 of 3,5. Niet aanwezig: 0.")


@dataclass(frozen=True)
class AttendanceChoice:
    """A triage team member invited to the session, as the chair confirms their time."""

    participant_id: int
    name: str
    discipline: str  # a key of VOCAB["discipline"], or ""
    organisation: str
    minutes: int | None  # confirmed time; None: not confirmed yet

    @property
    def hours_text(self) -> str:
        """The confirmed hours as a Dutch number ("3,5"); the usual 4 when not confirmed
        (seed 003 §6.1: about 4 hours of triage time per youth)."""
        if self.minutes is None:
            return "4"
        whole, rest = divmod(self.minutes, 60)
        if not rest:
            return str(whole)
        return f"{Decimal(self.minutes) / 60:.2f}".rstrip("0").replace(".", ",")


async def _team(uow: UnitOfWork, session_id: int) -> list[tuple[SessionParticipant, User]]:
    rows = await uow.db.execute(
        select(SessionParticipant, User)
        .join(CaseMember, CaseMember.id == SessionParticipant.member_id)
        .join(User, User.id == CaseMember.user_id)
        .where(
            SessionParticipant.session_id == session_id,
            CaseMember.role == CaseRole.TRIAGE_MEMBER,
        )
        .order_by(User.display_name, SessionParticipant.id)
    )
    return [(p, u) for p, u in rows.all()]


async def attendance_choices(uow: UnitOfWork, session_id: int) -> list[AttendanceChoice]:
    """The triage team members of a session, for the chair's attendance list."""
    session, _case = await _session_for(uow, session_id)
    return [
        AttendanceChoice(
            p.id,
            u.display_name,
            p.discipline or u.discipline or "",
            u.organisation.name,
            p.minutes_present,
        )
        for p, u in await _team(uow, session.id)
    ]


def parse_attended_hours(raw: str) -> int:
    """Hours at the session as the chair types them ("4", "3,5", "0" for absent) to minutes."""
    try:
        hours = Decimal(raw.strip().replace(",", "."))
    except InvalidOperation:
        raise InvalidInput({"hours": _HOURS_HINT}) from None
    minutes = hours * 60
    if not hours.is_finite() or minutes < 0 or minutes > MAX_ATTENDED_MINUTES:
        raise InvalidInput({"hours": N_("Het aantal uren moet tussen 0 en 12 liggen.")})
    # A chair types "0,33" for twenty minutes: round to the nearest whole minute.
    return int(minutes.to_integral_value(rounding=ROUND_HALF_UP))


async def record_attendance(uow: UnitOfWork, session_id: int, hours: Mapping[int, str]) -> None:
    """The chair confirms, per triage team member, the hours spent on the session (the
    presentielijst the penvoerder reimburses from). The discipline and the seconding provider
    are recorded as they are today. Every member needs an answer; 0 means not there."""
    if not uow.who.has("coordinator"):
        raise NotAllowed(N_("Alleen de voorzitter (coördinator) bevestigt wie er was."))
    session, case = await _session_for(uow, session_id)
    team = await _team(uow, session.id)
    errors: dict[str, str] = {}
    minutes: dict[int, int] = {}
    for participant, _user in team:
        key = f"hours_{participant.id}"
        raw = hours.get(participant.id)
        if raw is None or not raw.strip():
            errors[key] = _HOURS_HINT
            continue
        try:
            minutes[participant.id] = parse_attended_hours(raw)
        except InvalidInput as exc:
            errors[key] = exc.errors["hours"]
    if errors:
        raise InvalidInput(errors, N_("Vul voor elk lid van het triageteam de uren in."))
    for participant, user in team:
        participant.minutes_present = minutes[participant.id]
        participant.discipline = participant.discipline or user.discipline
        participant.seconded_by_id = participant.seconded_by_id or user.organisation_id
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "session.attendance",
        case_id=case.id,
        purpose="triage",
        detail=f"session={session.id}",
    )


@dataclass(frozen=True)
class TeamTime:
    """Confirmed time of one triage team member at one closed session: non-personal for the
    family (no case), what the penvoerder reimburses."""

    session_id: int
    day: dt.date  # the session's date in Europe/Amsterdam
    provider_id: int
    provider_name: str
    discipline: str
    minutes: int


@dataclass(frozen=True)
class TeamTimeReport:
    rows: tuple[TeamTime, ...]
    unconfirmed_sessions: int  # closed sessions in the period whose attendance is missing


async def triage_team_time(db: AsyncSession, start: dt.date, end: dt.date) -> TeamTimeReport:
    """Confirmed triage team time of the closed sessions held from ``start`` to ``end``
    (inclusive, Amsterdam dates), and how many closed sessions still lack it."""
    begin = dt.datetime.combine(start, dt.time(), AMSTERDAM).astimezone(dt.UTC)
    after = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), AMSTERDAM).astimezone(dt.UTC)
    sessions = (
        await db.scalars(
            select(TriageSession).where(
                TriageSession.status == SessionStatus.CLOSED,
                TriageSession.scheduled_at >= begin,
                TriageSession.scheduled_at < after,
            )
        )
    ).all()
    days = {s.id: s.scheduled_at.astimezone(AMSTERDAM).date() for s in sessions}
    if not days:
        return TeamTimeReport((), 0)
    rows = (
        await db.execute(
            select(SessionParticipant, Organisation.name)
            .join(CaseMember, CaseMember.id == SessionParticipant.member_id)
            .outerjoin(Organisation, Organisation.id == SessionParticipant.seconded_by_id)
            .where(
                SessionParticipant.session_id.in_(days),
                CaseMember.role == CaseRole.TRIAGE_MEMBER,
            )
            .order_by(SessionParticipant.session_id, SessionParticipant.id)
        )
    ).all()
    confirmed = {p.session_id for p, _n in rows if p.minutes_present is not None}
    out = tuple(
        TeamTime(
            p.session_id,
            days[p.session_id],
            p.seconded_by_id,
            name or "",
            p.discipline or "",
            p.minutes_present,
        )
        for p, name in rows
        if p.minutes_present and p.seconded_by_id is not None
    )
    return TeamTimeReport(out, len(set(days) - confirmed))


async def ret_allocations_per_provider(
    db: AsyncSession, start: dt.date, end: dt.date
) -> list[tuple[str, int]]:
    """RET allocations (toewijzingen by the manager zorgbemiddeling) decided from ``start``
    up to, not including, ``end``: (provider name, count) per provider, counts only. A second
    provider counts too: it takes part in the case."""
    from keerpunt.triage.models import Allocation as RetAllocation

    begin = dt.datetime.combine(start, dt.time(), AMSTERDAM).astimezone(dt.UTC)
    after = dt.datetime.combine(end, dt.time(), AMSTERDAM).astimezone(dt.UTC)
    allocs = (
        await db.execute(
            select(RetAllocation.provider_id, RetAllocation.second_provider_id).where(
                RetAllocation.decided_at >= begin, RetAllocation.decided_at < after
            )
        )
    ).all()
    counts: dict[int, int] = {}
    for first, second in allocs:
        for org in {first, second} - {None}:
            assert org is not None
            counts[org] = counts.get(org, 0) + 1
    if not counts:
        return []
    names = dict(
        (
            await db.execute(
                select(Organisation.id, Organisation.name).where(Organisation.id.in_(counts))
            )
        ).all()
    )
    return sorted(
        ((names.get(i, f"#{i}"), n) for i, n in counts.items()), key=lambda r: r[0].casefold()
    )


@dataclass(frozen=True)
class Duty:
    """Something a professional still carries in a case (by its pseudonym): ``procesregisseur``
    of a case not closed, or a ``meeting`` planned or under way they are invited to (``when``)."""

    kind: str
    pseudonym: str
    when: dt.datetime | None = None


async def open_duties(db: AsyncSession, user_id: int) -> list[Duty]:
    """What someone who leaves (uit dienst) must hand over: the cases, not closed, whose
    current procesregisseur they are (the latest meeting that named one decides), then the
    meetings not yet closed they are invited to, by date. Pseudonyms only: it is read by the
    administrator, who sees no case."""
    named = (
        await db.execute(
            select(TriageSession.case_id, Case.pseudonym, Arrangement.procesregisseur_user_id)
            .join(Arrangement, Arrangement.session_id == TriageSession.id)
            .join(Case, Case.id == TriageSession.case_id)
            .where(
                Arrangement.procesregisseur_org_id.is_not(None),
                Case.status != lifecycle.Status.CLOSED,
                TriageSession.case_id.in_(
                    select(TriageSession.case_id)
                    .join(Arrangement, Arrangement.session_id == TriageSession.id)
                    .where(Arrangement.procesregisseur_user_id == user_id)
                ),
            )
            .order_by(TriageSession.case_id, TriageSession.scheduled_at, TriageSession.id)
        )
    ).all()
    current: dict[int, tuple[str, int | None]] = {}
    for case_id, pseudonym, person in named:  # later meetings overwrite earlier ones
        current[case_id] = (pseudonym, person)
    duties = [
        Duty("procesregisseur", pseudonym)
        for pseudonym, person in sorted(current.values())
        if person == user_id
    ]
    meetings = await db.execute(
        select(Case.pseudonym, TriageSession.scheduled_at)
        .join(Case, Case.id == TriageSession.case_id)
        .join(SessionParticipant, SessionParticipant.session_id == TriageSession.id)
        .join(CaseMember, CaseMember.id == SessionParticipant.member_id)
        .where(CaseMember.user_id == user_id, TriageSession.status != SessionStatus.CLOSED)
        .order_by(TriageSession.scheduled_at, TriageSession.id)
    )
    duties += [Duty("meeting", pseudonym, when) for pseudonym, when in meetings]
    return duties
