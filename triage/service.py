"""Triage: registration with the entry check, planning a session, the shared work at the
table (factors, goals, arrangement lines), and closing the session.

Reads of personal data go through :func:`keerpunt.consent.service.disclosure`; view models
returned here are already redacted for the viewer.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
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
    Case,
    CaseMember,
    CaseRole,
    Organisation,
    OrgKind,
    User,
)
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage.models import (
    Arrangement,
    ArrangementLine,
    EntryCheck,
    Factor,
    FactorKind,
    Goal,
    LifeArea,
    SessionParticipant,
    SessionStatus,
    TriageSession,
)

__all__ = [
    "ENTRY_QUESTIONS",
    "CaseView",
    "EntryCheckFailed",
    "FixedArrangementLine",
    "ItemView",
    "LineView",
    "PersonLabel",
    "Registration",
    "SessionView",
    "TableChanges",
    "add_factor",
    "add_goal",
    "add_line",
    "case_view",
    "close_session",
    "fixed_arrangement_lines",
    "list_cases",
    "parse_hours",
    "plan_session",
    "register_case",
    "session_view",
    "table_changes",
    "update_factor",
    "update_goal",
]

_TextItem = TypeVar("_TextItem", Factor, Goal)

ARRANGEMENT_MONTHS = 9  # default duration of an arrangement (DOMAIN.md)

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
    if reg.municipality_id is not None:
        muni = await uow.db.get(Organisation, reg.municipality_id)
        if muni is None or muni.kind != OrgKind.MUNICIPALITY:
            errors["municipality_id"] = N_("Kies een gemeente.")
    if errors:
        raise InvalidInput(errors)
    assert reg.birth_date is not None
    case = Case(
        pseudonym=_new_pseudonym(),
        status="registered",
        municipality_id=reg.municipality_id,
        registered_by_id=who.user_id,
        age_band=_age_band(reg.birth_date, today),
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


_ROLE_LABELS = {
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


@dataclass(frozen=True)
class CaseView:
    id: int
    pseudonym: str
    level: Disclosure
    youth_name: str | None
    birth_date: dt.date | None
    age_band: str
    situation: str | None
    status: str
    members: tuple[MemberView, ...]
    sessions: tuple[SessionSummary, ...]
    may_plan: bool

    @property
    def title(self) -> str:
        return self.youth_name or self.pseudonym

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
        out.append(MemberView(m.id, m.role, _ROLE_LABELS.get(m.role, m.role), name, org, family))
    return tuple(out)


def _as_date(iso: str | None) -> dt.date | None:
    return dt.date.fromisoformat(iso) if iso else None


async def case_view(uow: UnitOfWork, case_id: int) -> CaseView:
    """A case as this viewer may see it (full, or under its pseudonym); NotFound otherwise."""
    case = await _load_case(uow, case_id)
    decision = await consent.disclosure(uow, case)
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
    return CaseView(
        id=case.id,
        pseudonym=case.pseudonym,
        level=level,
        youth_name=_reveal(cipher, level, "case.youth_name", case.youth_name_enc),
        birth_date=_as_date(_reveal(cipher, level, "case.birth_date", case.birth_date_enc)),
        age_band=case.age_band,
        situation=_reveal(cipher, level, "case.situation", case.situation_enc),
        status=case.status,
        members=await _members(uow, case, cipher, level),
        sessions=tuple(SessionSummary(s.id, s.scheduled_at, s.status) for s in sessions),
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
    if case.status == "registered":
        case.status = "scheduled"
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


@dataclass(frozen=True)
class ItemView:
    """A factor or a goal as this viewer may see it."""

    id: int
    kind: str  # "factor" | "goal"
    text: str | None  # None: hidden for this viewer (no consent)
    version: int
    author: PersonLabel
    life_area: str = ""
    factor_kind: str = ""
    anonymous: bool = False

    @property
    def dom_id(self) -> str:
        return f"{self.kind}-{self.id}"


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
class SessionView:
    id: int
    room: str
    case: CaseView
    status: str
    scheduled_at: dt.datetime
    factors: tuple[ItemView, ...]
    goals: tuple[ItemView, ...]
    lines: tuple[LineView, ...]
    providers: tuple[tuple[int, str], ...]
    invited: tuple[PersonLabel, ...]  # who was asked to the table, as this viewer may see them
    last_seq: int
    may_close: bool
    may_arrange: bool  # providers state their share: professionals at the table add lines

    @property
    def is_open(self) -> bool:
        return self.status != SessionStatus.CLOSED

    @property
    def anonymous_mode(self) -> bool:
        return not self.case.full


async def _session_for(uow: UnitOfWork, session_id: int) -> tuple[TriageSession, Case]:
    """The session, if the viewer is invited to it (or coordinates); NotFound otherwise."""
    session = await uow.db.get(TriageSession, session_id)
    if session is None:
        raise NotFound()
    case = await _load_case(uow, session.case_id)
    if uow.who.has("coordinator"):
        return session, case
    q = (
        select(SessionParticipant.id)
        .join(CaseMember, CaseMember.id == SessionParticipant.member_id)
        .where(SessionParticipant.session_id == session.id, CaseMember.removed_at.is_(None))
    )
    q = (
        q.where(CaseMember.id == uow.who.member_id)
        if uow.who.member_id is not None
        else q.where(CaseMember.user_id == uow.who.user_id)
    )
    if await uow.db.scalar(q) is None:
        raise NotFound()
    return session, case


@dataclass(frozen=True)
class PersonLabel:
    """Who someone is at the table, for this viewer: a role (a message id, translated in the
    template) and a name only where consent allows (family) or always (professionals)."""

    role: str | None
    name: str | None


async def _labels(
    uow: UnitOfWork, case_id: int, cipher: CaseCipher, level: Disclosure
) -> dict[str, PersonLabel]:
    """Labels by actor ("member:7", "user:3") for everyone who is or was at this case's table."""
    labels: dict[str, PersonLabel] = {}
    members = (await uow.db.scalars(select(CaseMember).where(CaseMember.case_id == case_id))).all()
    for m in members:
        if m.user is not None:
            staff = f"{m.user.display_name} ({m.user.organisation.name})"
            labels[f"user:{m.user_id}"] = PersonLabel(None, staff)
        else:
            family = _reveal(cipher, level, "member.name", m.name_enc)
            labels[f"member:{m.id}"] = PersonLabel(_ROLE_LABELS.get(m.role, m.role), family)
    return labels


_NOBODY = PersonLabel(None, None)


def _item(
    kind: str,
    row: Factor | Goal,
    cipher: CaseCipher,
    level: Disclosure,
    labels: dict[str, PersonLabel],
) -> ItemView:
    visible = row.anonymous or level is Disclosure.FULL
    text = cipher.decrypt(f"{kind}.text", row.text_enc) if visible and not cipher.shredded else None
    extra = {"life_area": row.life_area, "factor_kind": row.kind} if isinstance(row, Factor) else {}
    return ItemView(
        id=row.id,
        kind=kind,
        text=text,
        version=row.version,
        author=labels.get(row.author, _NOBODY),
        anonymous=row.anonymous,
        **extra,
    )


def _hours(minutes: int) -> str:
    return str((Decimal(minutes) / 60).quantize(Decimal("0.01")).normalize())


async def session_view(uow: UnitOfWork, session_id: int) -> SessionView:
    """The whole shared table for this viewer, redacted by consent."""
    session, case = await _session_for(uow, session_id)
    cv = await case_view(uow, case.id)
    cipher = await uow.vault.cipher(uow.db, case.id)
    labels = await _labels(uow, case.id, cipher, cv.level)
    factors = (
        await uow.db.scalars(
            select(Factor).where(Factor.session_id == session.id).order_by(Factor.id)
        )
    ).all()
    goals = (
        await uow.db.scalars(select(Goal).where(Goal.session_id == session.id).order_by(Goal.id))
    ).all()
    orgs = await _providers(uow)
    invited_ids = (
        await uow.db.scalars(
            select(CaseMember)
            .join(SessionParticipant, SessionParticipant.member_id == CaseMember.id)
            .where(SessionParticipant.session_id == session.id)
            .order_by(CaseMember.id)
        )
    ).all()
    lines = (
        await uow.db.scalars(
            select(ArrangementLine)
            .where(ArrangementLine.session_id == session.id)
            .order_by(ArrangementLine.id)
        )
    ).all()
    return SessionView(
        id=session.id,
        room=session.room,
        case=cv,
        status=session.status,
        scheduled_at=session.scheduled_at,
        factors=tuple(_item("factor", f, cipher, cv.level, labels) for f in factors),
        goals=tuple(_item("goal", g, cipher, cv.level, labels) for g in goals),
        lines=tuple(_line(ln, orgs, labels) for ln in lines),
        providers=tuple(orgs.items()),
        invited=tuple(
            labels.get(f"user:{m.user_id}" if m.user_id else f"member:{m.id}", _NOBODY)
            for m in invited_ids
        ),
        last_seq=await uow.last_seq(session.room),
        may_close=uow.who.has("coordinator") and session.status != SessionStatus.CLOSED,
        may_arrange=_may_arrange(uow),
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
    lines: dict[int, LineView]
    present: dict[str, PersonLabel]


async def _rows_of(
    uow: UnitOfWork, model: type[_TextItem], session_id: int, ids: set[int]
) -> Sequence[_TextItem]:
    if not ids:
        return ()
    q = select(model).where(model.session_id == session_id, model.id.in_(ids))
    return (await uow.db.scalars(q)).all()


async def table_changes(
    uow: UnitOfWork, session_id: int, refs: list[tuple[str, int]]
) -> TableChanges:
    """The factors, goals and lines named by ``refs`` ((kind, id) pairs) and the labels of
    the people at the table, for this viewer. One consent decision (audited), then only the
    named rows: what a live push needs, instead of the whole table."""
    session, case = await _session_for(uow, session_id)
    level = (await consent.disclosure(uow, case)).level
    if level is Disclosure.NOTHING:
        raise NotFound()
    cipher = await uow.vault.cipher(uow.db, case.id)
    labels = await _labels(uow, case.id, cipher, level)
    wanted: dict[str, set[int]] = {"factor": set(), "goal": set(), "line": set()}
    for kind, item_id in refs:
        wanted.setdefault(kind, set()).add(item_id)
    items: dict[tuple[str, int], ItemView] = {}
    for kind, text_rows in (
        ("factor", await _rows_of(uow, Factor, session.id, wanted["factor"])),
        ("goal", await _rows_of(uow, Goal, session.id, wanted["goal"])),
    ):
        for row in text_rows:
            items[(kind, row.id)] = _item(kind, row, cipher, level, labels)
    lines: dict[int, LineView] = {}
    if wanted["line"]:
        rows_l = (
            await uow.db.scalars(
                select(ArrangementLine).where(
                    ArrangementLine.session_id == session.id,
                    ArrangementLine.id.in_(wanted["line"]),
                )
            )
        ).all()
        orgs = await _providers(uow, {ln.provider_id for ln in rows_l})
        lines = {ln.id: _line(ln, orgs, labels) for ln in rows_l}
    return TableChanges(session.id, items, lines, labels)


async def _open_session(uow: UnitOfWork, session_id: int) -> tuple[TriageSession, Case, Disclosure]:
    session, case = await _session_for(uow, session_id)
    if session.status == SessionStatus.CLOSED:
        raise NotAllowed(N_("Deze bespreking is gesloten. Er kan niets meer bij."))
    level = (await consent.disclosure(uow, case, audit_read=False)).level
    if session.status == SessionStatus.PLANNED:
        session.status = SessionStatus.OPEN
        if case.status in {"registered", "scheduled"}:
            case.status = "in_triage"
    return session, case, level


def _clean_text(text: str, field: str = "text") -> str:
    text = text.strip()
    if not text:
        raise InvalidInput({field: N_("Schrijf iets op.")})
    if len(text) > 4000:
        raise InvalidInput({field: N_("Dit is te lang. Maak het korter dan 4000 tekens.")})
    return text


async def add_factor(
    uow: UnitOfWork, session_id: int, life_area: str, kind: str, text: str
) -> Factor:
    """Add a factor of the explanatory analysis (verklarende analyse)."""
    errors = {}
    if life_area not in LifeArea.__members__.values():
        errors["life_area"] = N_("Kies een leefgebied.")
    if kind not in FactorKind.__members__.values():
        errors["kind"] = N_("Kies wat voor factor het is.")
    if errors:
        raise InvalidInput(errors)
    session, case, level = await _open_session(uow, session_id)
    cipher = await uow.vault.cipher(uow.db, case.id)
    factor = Factor(
        session_id=session.id,
        life_area=life_area,
        kind=kind,
        text_enc=cipher.encrypt("factor.text", _clean_text(text)),
        anonymous=level is not Disclosure.FULL,
        author=uow.who.actor,
    )
    uow.db.add(factor)
    await uow.db.flush()
    await _record_change(uow, session, case, "factor.created", factor.id, f"factor={factor.id}")
    return factor


async def add_goal(uow: UnitOfWork, session_id: int, text: str) -> Goal:
    """Add a goal, in the youth's own words."""
    session, case, level = await _open_session(uow, session_id)
    cipher = await uow.vault.cipher(uow.db, case.id)
    goal = Goal(
        session_id=session.id,
        text_enc=cipher.encrypt("goal.text", _clean_text(text)),
        anonymous=level is not Disclosure.FULL,
        author=uow.who.actor,
    )
    uow.db.add(goal)
    await uow.db.flush()
    await _record_change(uow, session, case, "goal.created", goal.id, f"goal={goal.id}")
    return goal


async def _update_text(
    uow: UnitOfWork,
    kind: str,
    model: type[_TextItem],
    session_id: int,
    item_id: int,
    text: str,
    version: int,
) -> _TextItem:
    session, case, level = await _open_session(uow, session_id)
    row = await uow.db.get(model, item_id, with_for_update=True)
    if row is None or row.session_id != session.id:
        raise NotFound()
    if not (row.anonymous or level is Disclosure.FULL):
        raise NotAllowed()
    if row.version != version:
        raise StaleVersion()
    cipher = await uow.vault.cipher(uow.db, case.id)
    encrypted = cipher.encrypt(f"{kind}.text", _clean_text(text))
    assert encrypted is not None
    row.text_enc = encrypted
    row.version += 1
    row.updated_at = utcnow()
    await uow.db.flush()
    await _record_change(
        uow, session, case, f"{kind}.updated", row.id, f"{kind}={row.id} version={row.version}"
    )
    return row


async def update_factor(
    uow: UnitOfWork, session_id: int, factor_id: int, text: str, version: int
) -> Factor:
    """Change a factor's text; refused (StaleVersion) if someone changed it meanwhile."""
    return await _update_text(uow, "factor", Factor, session_id, factor_id, text, version)


async def update_goal(
    uow: UnitOfWork, session_id: int, goal_id: int, text: str, version: int
) -> Goal:
    """Change a goal's text; refused (StaleVersion) if someone changed it meanwhile."""
    return await _update_text(uow, "goal", Goal, session_id, goal_id, text, version)


async def item_view(uow: UnitOfWork, session_id: int, kind: str, item_id: int) -> ItemView:
    """One factor or goal as this viewer may see it."""
    changes = await table_changes(uow, session_id, [(kind, item_id)])
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
) -> ArrangementLine:
    """Add a line to the arrangement: the provider states its share and the intensity
    (``hours``: hours per week, or dagdelen / etmalen per week with ``intensity_unit``).
    Refused once the chair has agreed the split: then only a new version changes it."""
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
    case.status = "arrangement_agreed"
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
