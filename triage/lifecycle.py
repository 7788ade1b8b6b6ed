"""The case lifecycle (levensloop van een casus) as a state machine, and recording a step.

The rules are plain data (:data:`RULES`): from which status to which, who may take the step,
whether a reason is needed, and whether only a flow of the platform takes it (planning,
starting or closing a session). :func:`check` decides one requested step from the case's
history alone, so it is tested without a database. :func:`transition` applies a step to a
case: it checks, writes a ``case_transition`` row (the reason encrypted with the case key,
because a reason may be personal) and an audit row, all in the caller's transaction.

Statuses: registered → consent pending → scheduled → in triage → arrangement agreed →
running → (extended | stepped down) → closed; a crisis pause can interrupt any open status
and resumes to the status it paused; a case that finds no place goes to the RET
(Regionaal Expertteam), which allocates it (toewijzing) and so agrees an arrangement.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from keerpunt.platform import audit
from keerpunt.platform.db import utcnow
from keerpunt.platform.errors import DomainError, InvalidInput, NotAllowed
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import Case, CaseMember
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage.models import CaseTransition

__all__ = [
    "FLOWS",
    "OPEN_STATUSES",
    "RULES",
    "STATUS_LABELS",
    "IllegalTransition",
    "Rule",
    "Status",
    "Step",
    "actor_roles",
    "check",
    "current",
    "history",
    "manual_steps",
    "paused_from",
    "replay",
    "transition",
]


class Status(enum.StrEnum):
    REGISTERED = "registered"  # aangemeld
    CONSENT_PENDING = "consent_pending"  # toestemming wordt gevraagd
    SCHEDULED = "scheduled"  # bespreking gepland
    IN_TRIAGE = "in_triage"  # in bespreking
    ARRANGEMENT_AGREED = "arrangement_agreed"  # arrangement afgesproken
    RUNNING = "running"  # hulp loopt
    EXTENDED = "extended"  # verlengd (langer dan 9 maanden, met de verwijzer)
    STEPPED_DOWN = "stepped_down"  # afgeschaald naar reguliere hulp
    CLOSED = "closed"  # afgesloten
    CRISIS_PAUSE = "crisis_pause"  # gepauzeerd door een crisis (crisisroute gaat voor)
    RET = "ret"  # opgeschaald naar het RET


STATUS_LABELS: dict[str, str] = {
    Status.REGISTERED: N_("Aangemeld"),
    Status.CONSENT_PENDING: N_("Wacht op toestemming"),
    Status.SCHEDULED: N_("Gepland"),
    Status.IN_TRIAGE: N_("In bespreking"),
    Status.ARRANGEMENT_AGREED: N_("Arrangement afgesproken"),
    Status.RUNNING: N_("Hulp loopt"),
    Status.EXTENDED: N_("Verlengd"),
    Status.STEPPED_DOWN: N_("Afgeschaald"),
    Status.CLOSED: N_("Afgesloten"),
    Status.CRISIS_PAUSE: N_("Gepauzeerd door crisis"),
    Status.RET: N_("Bij het RET"),
}

# Statuses a crisis can pause (everything that is open and not already paused).
OPEN_STATUSES = frozenset(Status) - {Status.CLOSED, Status.CRISIS_PAUSE}
_BEFORE_ARRANGEMENT = frozenset(
    {Status.REGISTERED, Status.CONSENT_PENDING, Status.SCHEDULED, Status.IN_TRIAGE}
)

# The flows of the platform that move a case by themselves (not by a button).
FLOWS = frozenset({"plan_session", "session_start", "session_close"})

_STAFF = frozenset({"coordinator", "registrar", "triage_member", "procesregisseur"})
_CARE = frozenset({"coordinator", "procesregisseur"})


@dataclass(frozen=True)
class Rule:
    """One legal step. ``roles``: staff or case roles that may take it by hand; ``flow``: the
    platform flow that takes it (then no button offers it)."""

    source: Status
    target: Status
    label: str  # the button text (Dutch message id)
    roles: frozenset[str] = frozenset()
    needs_reason: bool = False
    flow: str | None = None


def _rules() -> tuple[Rule, ...]:
    r: list[Rule] = [
        Rule(
            Status.REGISTERED,
            Status.CONSENT_PENDING,
            N_("Toestemming wordt gevraagd"),
            frozenset({"registrar", "coordinator"}),
        ),
        Rule(Status.REGISTERED, Status.SCHEDULED, N_("Bespreking plannen"), flow="plan_session"),
        Rule(
            Status.CONSENT_PENDING,
            Status.SCHEDULED,
            N_("Bespreking plannen"),
            flow="plan_session",
        ),
        Rule(Status.SCHEDULED, Status.IN_TRIAGE, N_("Bespreking begint"), flow="session_start"),
        Rule(
            Status.IN_TRIAGE,
            Status.ARRANGEMENT_AGREED,
            N_("Bespreking sluiten"),
            flow="session_close",
        ),
        Rule(
            Status.IN_TRIAGE,
            Status.SCHEDULED,
            N_("Nieuwe bespreking nodig"),
            frozenset({"coordinator"}),
            needs_reason=True,
        ),
        Rule(
            Status.ARRANGEMENT_AGREED,
            Status.RUNNING,
            N_("De hulp is begonnen"),
            _CARE | {"triage_member"},
        ),
        Rule(
            Status.RUNNING,
            Status.EXTENDED,
            N_("Verlengen (met de verwijzer)"),
            _CARE,
            needs_reason=True,
        ),
        Rule(
            Status.RUNNING,
            Status.STEPPED_DOWN,
            N_("Afschalen naar gewone hulp"),
            _CARE,
            needs_reason=True,
        ),
        Rule(
            Status.EXTENDED,
            Status.STEPPED_DOWN,
            N_("Afschalen naar gewone hulp"),
            _CARE,
            needs_reason=True,
        ),
        # The RET allocates a case that found no place: that is its arrangement.
        Rule(
            Status.RET,
            Status.ARRANGEMENT_AGREED,
            N_("Het RET heeft toegewezen"),
            frozenset({"allocation_manager"}),
            needs_reason=True,
        ),
    ]
    for source in _BEFORE_ARRANGEMENT | {Status.ARRANGEMENT_AGREED, Status.CRISIS_PAUSE}:
        r.append(
            Rule(
                source,
                Status.RET,
                N_("Opschalen naar het RET"),
                frozenset({"coordinator", "allocation_manager"}),
                needs_reason=True,
            )
        )
    for source in OPEN_STATUSES:
        r.append(
            Rule(
                source,
                Status.CRISIS_PAUSE,
                N_("Pauzeren: er is een crisis"),
                _STAFF,
                needs_reason=True,
            )
        )
        # Resuming returns to the status that was paused; check() enforces which one. A case
        # paused at the RET goes back there by the RET step (one rule per pair of statuses).
        if source is not Status.RET:
            r.append(
                Rule(
                    Status.CRISIS_PAUSE,
                    source,
                    N_("Verder na de crisis"),
                    _STAFF,
                    needs_reason=True,
                )
            )
    for source in OPEN_STATUSES | {Status.CRISIS_PAUSE}:
        r.append(
            Rule(
                source,
                Status.CLOSED,
                N_("Casus afsluiten"),
                frozenset({"coordinator"}),
                needs_reason=True,
            )
        )
    return tuple(r)


RULES: tuple[Rule, ...] = _rules()
_BY_PAIR: dict[tuple[Status, Status], Rule] = {(x.source, x.target): x for x in RULES}
assert len(_BY_PAIR) == len(RULES), "one rule per pair of statuses"


@dataclass(frozen=True)
class Step:
    """One recorded step of a case's history (from, to)."""

    source: Status
    target: Status


class IllegalTransition(DomainError):
    status_code = 409
    message = N_("Deze stap kan nu niet.")


def current(history: Sequence[Step]) -> Status:
    """The status a history leads to (a new case is registered)."""
    return history[-1].target if history else Status.REGISTERED


def paused_from(history: Sequence[Step]) -> Status | None:
    """The status a crisis paused (the source of the last step into the pause)."""
    for step in reversed(history):
        if step.target is Status.CRISIS_PAUSE:
            return step.source
    return None


def _allowed_rules(history: Sequence[Step]) -> list[Rule]:
    now = current(history)
    rules = [x for x in RULES if x.source is now]
    if now is Status.CRISIS_PAUSE:
        back = paused_from(history)
        rules = [x for x in rules if x.target in {Status.CLOSED, Status.RET} or x.target is back]
    return rules


def manual_steps(history: Sequence[Step], roles: Iterable[str]) -> list[Rule]:
    """The steps these roles may take by hand now (what the case page offers as buttons)."""
    held = frozenset(roles)
    return [x for x in _allowed_rules(history) if x.flow is None and x.roles & held]


def check(
    history: Sequence[Step],
    target: Status | str,
    roles: Iterable[str],
    reason: str = "",
    *,
    flow: str | None = None,
) -> Rule:
    """The rule that allows this step, or a Dutch refusal: an unknown or illegal step
    (IllegalTransition), a step only a flow takes, a role that may not take it (NotAllowed),
    or a missing reason (InvalidInput)."""
    try:
        wanted = Status(target)
    except ValueError:
        raise IllegalTransition(N_("Deze stand bestaat niet.")) from None
    now = current(history)
    rule = _BY_PAIR.get((now, wanted))
    if rule is None or rule not in _allowed_rules(history):
        if now is Status.CLOSED:
            raise IllegalTransition(N_("Deze casus is afgesloten. Er kan niets meer veranderen."))
        if now is Status.CRISIS_PAUSE and rule is not None:
            raise IllegalTransition(N_("Na een crisis gaat de casus verder waar hij was gebleven."))
        if now is wanted:
            raise IllegalTransition(N_("De casus staat al op deze stand."))
        raise IllegalTransition(
            N_("Van de stand ‘%(source)s’ kan de casus niet naar ‘%(target)s’."),
            source=STATUS_LABELS[now],
            target=STATUS_LABELS[wanted],
        )
    if rule.flow is not None:
        if flow != rule.flow:
            raise IllegalTransition(
                N_(
                    "Deze stap gebeurt vanzelf, bij het plannen, beginnen of sluiten van een "
                    "bespreking."
                )
            )
    elif not (rule.roles & frozenset(roles)):
        raise NotAllowed(N_("U mag deze stap niet zetten."))
    if rule.needs_reason and not reason.strip():
        raise InvalidInput({"reason": N_("Schrijf kort op waarom.")})
    if len(reason) > 2000:
        raise InvalidInput({"reason": N_("Dit is te lang. Maak het korter dan 2000 tekens.")})
    return rule


def replay(steps: Iterable[Step]) -> Status:
    """Replay a recorded history from registration; raises if a step does not follow on."""
    history: list[Step] = []
    for step in steps:
        if step.source is not current(history):
            raise IllegalTransition(N_("De geschiedenis van de casus klopt niet."))
        rule = _BY_PAIR.get((step.source, step.target))
        if rule is None or rule not in _allowed_rules(history):
            raise IllegalTransition(N_("De geschiedenis van de casus klopt niet."))
        history.append(step)
    return current(history)


# -- recording a step (database) ------------------------------------------------------------


async def history(uow: UnitOfWork, case: Case) -> list[Step]:
    """The recorded steps of a case, oldest first. A case whose status was set before steps
    were recorded gets one catch-up step, so the machine starts from its real status."""
    rows = (
        await uow.db.execute(
            select(CaseTransition.from_status, CaseTransition.to_status)
            .where(CaseTransition.case_id == case.id)
            .order_by(CaseTransition.id)
        )
    ).all()
    steps = [Step(Status(a), Status(b)) for a, b in rows]
    if current(steps) != case.status:
        steps.append(Step(current(steps), Status(case.status)))
    return steps


async def actor_roles(uow: UnitOfWork, case: Case) -> frozenset[str]:
    """The acting person's staff roles plus their roles at this case's table."""
    who = uow.who
    if not who.is_staff:
        return frozenset()
    rows = await uow.db.scalars(
        select(CaseMember.role).where(
            CaseMember.case_id == case.id,
            CaseMember.user_id == who.user_id,
            CaseMember.removed_at.is_(None),
        )
    )
    return who.staff_roles | frozenset(rows.all())


async def transition(
    uow: UnitOfWork,
    case: Case,
    target: Status | str,
    reason: str = "",
    *,
    flow: str | None = None,
) -> CaseTransition:
    """Take one step of the lifecycle: checked by :func:`check`, recorded with who and why
    (the reason encrypted with the case key) and audited, in the caller's transaction."""
    await uow.db.flush()  # keep the caller's pending changes through the refresh below
    await uow.db.refresh(case, with_for_update=True)  # two steps at once: one waits
    steps = await history(uow, case)
    rule = check(steps, target, await actor_roles(uow, case), reason, flow=flow)
    cipher = await uow.vault.cipher(uow.db, case.id)
    row = CaseTransition(
        case_id=case.id,
        from_status=rule.source.value,
        to_status=rule.target.value,
        actor=uow.who.actor,
        flow=flow,
        reason_enc=cipher.encrypt("transition.reason", reason.strip() or None),
    )
    uow.db.add(row)
    case.status = rule.target.value
    if rule.target is Status.CLOSED:
        case.closed_at = row.at = utcnow()  # the retention term counts from here
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "case.transition",
        case_id=case.id,
        purpose="lifecycle",
        detail=f"from={rule.source.value} to={rule.target.value}"
        + (f" flow={flow}" if flow else ""),
    )
    return row
