"""Where people see the lifecycle: a case's status, next steps, deadlines and timeline, and
the coordinator's weekly agenda (weekagenda).

Every page here starts from :func:`keerpunt.triage.service.case_view`, which asks
``consent.disclosure`` (an audited read): the birth date, and so the consent-renewal
deadline, and the reasons of steps are shown only to those who may see the family's data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from keerpunt.consent import service as consent
from keerpunt.consent.service import Disclosure
from keerpunt.platform.errors import NotAllowed, NotFound
from keerpunt.platform.i18n import AMSTERDAM, N_
from keerpunt.platform.i18n import today as dutch_today
from keerpunt.platform.models import AuditEntry, Case, CaseMember, User
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage import deadlines as dl
from keerpunt.triage import lifecycle
from keerpunt.triage.lifecycle import STATUS_LABELS, Rule, Status
from keerpunt.triage.models import CaseTransition, SessionStatus
from keerpunt.triage.service import ROLE_LABELS, CaseView, list_cases

__all__ = [
    "AgendaView",
    "DeadlineView",
    "LifecycleView",
    "PlannedSession",
    "TimelineEntry",
    "case_deadlines",
    "lifecycle_view",
    "request_step",
    "week_agenda",
    "week_start",
]

_TEAM = frozenset({"coordinator", "triage_member"})


def _local(at: dt.datetime) -> dt.date:
    if at.tzinfo is None:  # SQLite returns naive UTC
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(AMSTERDAM).date()


def week_start(day: dt.date) -> dt.date:
    """The Monday of the week ``day`` falls in."""
    return day - dt.timedelta(days=day.weekday())


@dataclass(frozen=True)
class DeadlineView:
    case_id: int
    case_title: str
    kind: str
    label: str
    params: dict[str, object]
    due: dt.date
    overdue: bool
    days_left: int
    warning: bool  # inside the warning period (e.g. 3 of the 4 weeks at the tables)


@dataclass(frozen=True)
class TimelineEntry:
    at: dt.datetime
    label: str  # Dutch message id; may use %(source)s / %(target)s
    params: dict[str, str]
    who: str | None
    reason: str | None  # only for viewers who may see the family's data


@dataclass(frozen=True)
class LifecycleView:
    case_id: int
    status: str
    status_label: str
    steps: tuple[Rule, ...]  # what this viewer may do now
    deadlines: tuple[DeadlineView, ...]
    timeline: tuple[TimelineEntry, ...]
    show_timeline: bool

    @property
    def next_deadline(self) -> DeadlineView | None:
        return self.deadlines[0] if self.deadlines else None

    @property
    def overdue(self) -> tuple[DeadlineView, ...]:
        return tuple(d for d in self.deadlines if d.overdue)


async def _transitions(uow: UnitOfWork, case_id: int) -> list[CaseTransition]:
    return list(
        await uow.db.scalars(
            select(CaseTransition)
            .where(CaseTransition.case_id == case_id)
            .order_by(CaseTransition.id)
        )
    )


async def _facts(
    uow: UnitOfWork, case: Case, view: CaseView, rows: list[CaseTransition]
) -> dl.CaseFacts:
    consents_on: tuple[dt.date, ...] = ()
    if view.birth_date is not None:  # only a viewer who may see it gets the birthday deadline
        overview = await consent.consent_overview_for(uow, case.id, view.level)
        consents_on = tuple(
            _local(line.recorded_at)
            for line in overview.lines
            if line.decision == consent.Decision.CONSENT and line.withdrawn_at is None
        )
    return dl.CaseFacts(
        registered_on=_local(case.registered_at),
        status=Status(case.status),
        steps=tuple(
            dl.DatedStep(Status(r.from_status), Status(r.to_status), _local(r.at)) for r in rows
        ),
        birth_date=view.birth_date,
        sessions=tuple(
            _local(s.scheduled_at) for s in view.sessions if s.status != SessionStatus.CLOSED
        ),
        consents_on=consents_on,
    )


def _deadline_views(view: CaseView, facts: dl.CaseFacts, today: dt.date) -> list[DeadlineView]:
    return [
        DeadlineView(
            case_id=view.id,
            case_title=view.title,
            kind=d.kind,
            label=d.label,
            params=d.params,
            due=d.due,
            overdue=d.overdue(today),
            days_left=d.days_left(today),
            warning=d.warn_from is not None and today >= d.warn_from,
        )
        for d in dl.deadlines(facts, today)
    ]


async def _who_labels(
    uow: UnitOfWork, case: Case, level: Disclosure, actors: set[str]
) -> dict[str, str]:
    """Names of professionals; family members by their role (and name with full access)."""
    labels: dict[str, str] = {}
    user_ids = {int(a.split(":")[1]) for a in actors if a.startswith("user:")}
    if user_ids:
        for u in await uow.db.scalars(select(User).where(User.id.in_(user_ids))):
            labels[f"user:{u.id}"] = u.display_name
    member_ids = {int(a.split(":")[1]) for a in actors if a.startswith("member:")}
    if member_ids:
        cipher = await uow.vault.cipher(uow.db, case.id)
        for m in await uow.db.scalars(select(CaseMember).where(CaseMember.id.in_(member_ids))):
            role = ROLE_LABELS.get(m.role, m.role)
            name = (
                cipher.decrypt("member.name", m.name_enc)
                if level is Disclosure.FULL and not cipher.shredded
                else None
            )
            labels[f"member:{m.id}"] = f"{role}: {name}" if name else role
    return labels


# Events of the audit log shown on the timeline (the log holds no personal data).
_AUDIT_EVENTS = {
    "case.registered": N_("Aangemeld"),
    "session.planned": N_("Bespreking gepland"),
    "session.closed": N_("Bespreking gesloten"),
    "consent.consent": N_("Toestemming vastgelegd"),
    "consent.objection": N_("Bezwaar vastgelegd"),
    "consent.withdrawn": N_("Toestemming ingetrokken"),
}


async def _timeline(
    uow: UnitOfWork, case: Case, level: Disclosure, rows: list[CaseTransition]
) -> list[TimelineEntry]:
    audit_rows = (
        await uow.db.scalars(
            select(AuditEntry)
            .where(AuditEntry.case_id == case.id, AuditEntry.action.in_(_AUDIT_EVENTS))
            .order_by(AuditEntry.seq)
        )
    ).all()
    labels = await _who_labels(
        uow, case, level, {r.actor for r in rows} | {a.actor for a in audit_rows}
    )
    cipher = await uow.vault.cipher(uow.db, case.id)
    full = level is Disclosure.FULL and not cipher.shredded
    out = [
        TimelineEntry(a.at, _AUDIT_EVENTS[a.action], {}, labels.get(a.actor), None)
        for a in audit_rows
    ]
    out += [
        TimelineEntry(
            r.at,
            N_("Stand: van ‘%(source)s’ naar ‘%(target)s’"),
            {"source": STATUS_LABELS[r.from_status], "target": STATUS_LABELS[r.to_status]},
            labels.get(r.actor),
            cipher.decrypt("transition.reason", r.reason_enc) if full else None,
        )
        for r in rows
    ]
    return sorted(out, key=lambda e: _aware(e.at), reverse=True)


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


async def lifecycle_view(
    uow: UnitOfWork, view: CaseView, today: dt.date | None = None
) -> LifecycleView:
    """Status, next steps, deadlines and timeline of a case, for the viewer of ``view`` (a
    case view already decided by consent)."""
    case = await uow.db.get(Case, view.id)
    if case is None:
        raise NotFound()
    today = today or dutch_today()
    rows = await _transitions(uow, case.id)
    facts = await _facts(uow, case, view, rows)
    staff = uow.who.is_staff
    steps = lifecycle.manual_steps(
        await lifecycle.history(uow, case), await lifecycle.actor_roles(uow, case)
    )
    return LifecycleView(
        case_id=case.id,
        status=case.status,
        status_label=STATUS_LABELS.get(case.status, case.status),
        steps=tuple(steps) if staff else (),
        deadlines=tuple(_deadline_views(view, facts, today)) if staff else (),
        timeline=tuple(await _timeline(uow, case, view.level, rows)) if staff else (),
        show_timeline=staff,
    )


async def request_step(uow: UnitOfWork, case_id: int, target: str, reason: str) -> None:
    """A step asked for by hand on the case page (only by someone who may see the case)."""
    case = await uow.db.get(Case, case_id)
    if case is None:
        raise NotFound()
    if (await consent.disclosure(uow, case, audit_read=False)).level is Disclosure.NOTHING:
        raise NotFound()
    await lifecycle.transition(uow, case, target, reason)


@dataclass(frozen=True)
class PlannedSession:
    case_id: int
    case_title: str
    session_id: int
    scheduled_at: dt.datetime
    may_open: bool  # the viewer may open the meeting (see service.sessions_open_to)


@dataclass(frozen=True)
class AgendaView:
    week: dt.date  # Monday
    today: dt.date
    sessions: tuple[PlannedSession, ...]  # this week
    due: tuple[DeadlineView, ...]  # due this week, not yet overdue
    overdue: tuple[DeadlineView, ...]
    per_week: tuple[tuple[dt.date, int], ...]  # Monday, sessions planned (8 weeks from week)

    @property
    def previous(self) -> dt.date:
        return self.week - dt.timedelta(days=7)

    @property
    def next(self) -> dt.date:
        return self.week + dt.timedelta(days=7)

    @property
    def week_end(self) -> dt.date:
        return self.week + dt.timedelta(days=6)

    @property
    def week_number(self) -> int:
        return self.week.isocalendar().week


async def week_agenda(uow: UnitOfWork, day: dt.date, today: dt.date | None = None) -> AgendaView:
    """The coordinator's week: sessions planned (about one case a week), what falls due this
    week and what is overdue, over the cases this viewer may see (each read audited)."""
    if not (uow.who.staff_roles & _TEAM):
        raise NotAllowed(N_("De weekagenda is voor de coördinator en het triageteam."))
    today = today or dutch_today()
    monday = week_start(day)
    end = monday + dt.timedelta(days=7)
    horizon = [monday + dt.timedelta(weeks=i) for i in range(8)]
    counts = dict.fromkeys(horizon, 0)
    sessions: list[PlannedSession] = []
    due: list[DeadlineView] = []
    overdue: list[DeadlineView] = []
    for view in await list_cases(uow):
        for s in view.sessions:
            local = _local(s.scheduled_at)
            if week_start(local) in counts:
                counts[week_start(local)] += 1
            if monday <= local < end:
                sessions.append(
                    PlannedSession(view.id, view.title, s.id, s.scheduled_at, s.may_open)
                )
        case = await uow.db.get(Case, view.id)
        assert case is not None
        facts = await _facts(uow, case, view, await _transitions(uow, case.id))
        for d in _deadline_views(view, facts, today):
            if d.overdue:
                overdue.append(d)
            elif monday <= d.due < end:
                due.append(d)
    return AgendaView(
        week=monday,
        today=today,
        sessions=tuple(sorted(sessions, key=lambda s: _aware(s.scheduled_at))),
        due=tuple(sorted(due, key=lambda d: d.due)),
        overdue=tuple(sorted(overdue, key=lambda d: d.due)),
        per_week=tuple(counts.items()),
    )


async def case_deadlines(
    uow: UnitOfWork, view: CaseView, today: dt.date | None = None
) -> tuple[DeadlineView, ...]:
    """The open deadlines of one case for the case list."""
    case = await uow.db.get(Case, view.id)
    if case is None or not uow.who.is_staff:
        return ()
    facts = await _facts(uow, case, view, await _transitions(uow, case.id))
    return tuple(_deadline_views(view, facts, today or dutch_today()))
