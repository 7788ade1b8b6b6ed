"""The RET Rijnmond allocation framework (afwegingskader, seed 000) as pure rules.

When the brokerage tables do not find a place in time (the mandate: *mandaatregeling*), the
manager zorgbemiddeling allocates the case (*toewijzing*) to a contracted system provider of
the contract lot (*perceel*). The rule: first by suitability (*passendheid*), otherwise by fair
share (*evenredigheid*), taking turns (*beurtelings*) within the domain where the problems weigh
most.

How turns work here (decided from seed 000, in one place):

- Each (lot, domain) has a rotation: a turn counter and, per provider, the turn number of the
  last allocation it received. The line (:func:`queue`) is ordered by that number, then by the
  provider's place in the rotation: whoever waited longest is first.
- The proposal goes to the first provider in line that is suitable. A provider that does not
  fit this case keeps its place at the front of the line for the next case (fair share is
  about numbers; not fitting is no reason to lose one's turn).
- Past good involvement with the family (continuity) beats the turn: it is suitability.
- Every allocation, proposed or overridden, gives exactly one turn: the counter goes up by one
  and the provider that received the case goes to the back of the line. An override therefore
  never costs the passed-over provider its place, and the provider that got the case counts
  it, as the six-monthly review counts allocations per provider.

Nothing here touches the database; :mod:`keerpunt.triage.allocation_service` loads the data,
locks the rotation and stores the outcome.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from keerpunt.platform.errors import DomainError, InvalidInput
from keerpunt.platform.i18n import N_

__all__ = [
    "DOMAIN_LABELS",
    "DOMAIN_SHORT",
    "LADDER",
    "LADDER_LABELS",
    "TRIGGER_RULES",
    "Basis",
    "CandidateCheck",
    "CaseNeeds",
    "Check",
    "Decision",
    "Domain",
    "HalfYear",
    "Involvement",
    "LadderStep",
    "OverrideWithoutReason",
    "Proposal",
    "ProviderOffer",
    "Rotation",
    "TopOfLadder",
    "TriggerKind",
    "TriggerNotDue",
    "TriggerRule",
    "check_trigger",
    "decide",
    "next_step",
    "propose",
    "queue",
    "trigger_date",
]


class Domain(enum.StrEnum):
    """The domain where the problems weigh most (het meest voorliggende domein)."""

    JO = "jo"  # Jeugd & Opvoeding
    GGZ = "ggz"  # geestelijke gezondheidszorg
    LVB = "lvb"  # licht verstandelijke beperking


DOMAIN_LABELS: dict[str, str] = {
    Domain.JO: N_("Jeugd en opvoeding (J&O)"),
    Domain.GGZ: N_("Geestelijke gezondheid (GGZ)"),
    Domain.LVB: N_("Licht verstandelijke beperking (LVB)"),
}


DOMAIN_SHORT: dict[str, str] = {Domain.JO: "J&O", Domain.GGZ: "GGZ", Domain.LVB: "LVB"}


class TriggerKind(enum.StrEnum):
    """What set the mandate going (mandaatregeling)."""

    TABLES_TIMEOUT = "tables_timeout"  # 3-4 weeks at the tables without a place
    CRISIS_28_DAYS = "crisis_28_days"  # not home 28 days after a crisis placement


@dataclass(frozen=True)
class TriggerRule:
    """From ``earliest_days`` after the start the case may be allocated; by ``latest_days``
    it should have been (the seed's "3-4 weeks")."""

    kind: TriggerKind
    earliest_days: int
    latest_days: int
    label: str
    since_label: str


TRIGGER_RULES: dict[TriggerKind, TriggerRule] = {
    TriggerKind.TABLES_TIMEOUT: TriggerRule(
        TriggerKind.TABLES_TIMEOUT,
        21,
        28,
        N_("3 tot 4 weken aan de zorgbemiddelingstafels zonder passende plek"),
        N_("Voor het eerst aan tafel op"),
    ),
    TriggerKind.CRISIS_28_DAYS: TriggerRule(
        TriggerKind.CRISIS_28_DAYS,
        28,
        28,
        N_("28 dagen na plaatsing in de crisisopvang nog niet thuis"),
        N_("Geplaatst in de crisisopvang op"),
    ),
}


class TriggerNotDue(DomainError):
    status_code = 422
    message = N_("De mandaatregeling geldt pas vanaf %(fires_on)s. Er is niets opgeslagen.")


def trigger_date(kind: TriggerKind, since: dt.date) -> dt.date:
    """The first day the mandate applies (toewijzen mag vanaf deze dag)."""
    return since + dt.timedelta(days=TRIGGER_RULES[kind].earliest_days)


def check_trigger(kind: TriggerKind, since: dt.date, today: dt.date) -> None:
    """Refuse an allocation request before the trigger has fired."""
    fires_on = trigger_date(kind, since)
    if today < fires_on:
        raise TriggerNotDue(fires_on=fires_on)


class Involvement(enum.StrEnum):
    """The provider's involvement with this family in past months or years."""

    CONTINUE = "continue"  # knows the family, it went well: continuity is a good fit
    NOT_AGAIN = "not_again"  # it did not work, or the family objects: not suitable now


@dataclass(frozen=True)
class ProviderOffer:
    """A contracted system provider in a lot: its domain, expertise and offer (data that the
    manager zorgbemiddeling keeps up to date)."""

    provider_id: int
    name: str
    lot: str
    domain: Domain
    position: int  # place in the rotation of its domain (beurtvolgorde)
    expertise: frozenset[str]
    min_age: int
    max_age: int
    locations: frozenset[str]
    milieus: frozenset[int]  # residential milieu 2 and/or 3
    contract_active: bool


@dataclass(frozen=True)
class CaseNeeds:
    """What the case asks for, as the manager zorgbemiddeling weighs it (no names)."""

    lot: str
    domain: Domain
    age: int
    location: str
    milieu: int | None  # 2 or 3; None: no residential milieu needed
    expertise: frozenset[str]
    past: Mapping[int, Involvement] = field(default_factory=dict)


@dataclass(frozen=True)
class Rotation:
    """The turn state of one domain in one lot."""

    lot: str
    domain: Domain
    turn: int  # turns given so far; the next allocation gets turn + 1
    last_turn: Mapping[int, int]  # provider id -> turn of its latest allocation (absent: never)


@dataclass(frozen=True)
class Check:
    """One factor for one candidate: passed or not, and why (a message id with params)."""

    factor: str
    ok: bool
    message: str
    params: Mapping[str, object] = field(default_factory=dict)


FACTOR_LABELS: dict[str, str] = {
    "contract": N_("Contract"),
    "domain": N_("Domein"),
    "expertise": N_("Expertise"),
    "age": N_("Leeftijd"),
    "location": N_("Locatie"),
    "milieu": N_("Milieu"),
    "past_involvement": N_("Eerdere betrokkenheid"),
}


@dataclass(frozen=True)
class CandidateCheck:
    offer: ProviderOffer
    checks: tuple[Check, ...]
    in_rotation: bool  # same domain: takes part in this rotation
    place: int | None  # place in line (1 = next), for providers in the rotation
    preferred: bool  # good past involvement with the family

    @property
    def name(self) -> str:
        return self.offer.name

    @property
    def suitable(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)


class Basis(enum.StrEnum):
    """Why the proposal names this provider."""

    TURN = "turn"  # several fit: the one whose turn it is
    ONLY_SUITABLE = "only_suitable"  # only this one fits
    CONTINUITY = "continuity"  # it knows the family and that went well
    NONE_SUITABLE = "none_suitable"  # nobody fits: the manager decides, with a reason


BASIS_TEXT: dict[str, str] = {
    Basis.TURN: N_(
        "Meer aanbieders passen. Daarom krijgt de aanbieder die het langst wacht deze "
        "toewijzing (beurtelings)."
    ),
    Basis.ONLY_SUITABLE: N_("Alleen deze aanbieder past bij wat de jongere nodig heeft."),
    Basis.CONTINUITY: N_(
        "Deze aanbieder kent het gezin en dat ging goed. Passendheid gaat voor de beurt."
    ),
    Basis.NONE_SUITABLE: N_(
        "Geen aanbieder past op alle punten. De manager zorgbemiddeling kiest zelf en "
        "schrijft op waarom."
    ),
}


@dataclass(frozen=True)
class Proposal:
    """Keerpunt's proposal with its explanation: every candidate, every factor, the turns."""

    needs: CaseNeeds
    candidates: tuple[CandidateCheck, ...]
    chosen: ProviderOffer | None
    basis: Basis
    turn_before: int
    turn_after: int
    next_before: str | None  # first in line before this allocation
    next_after: str | None  # first in line after it, if the proposal is accepted


@dataclass(frozen=True)
class Decision:
    provider_id: int
    overridden: bool
    turn: int  # the turn this allocation takes in the rotation
    rotation: Rotation  # the state after it
    next_after: str | None


class OverrideWithoutReason(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            {"reason": N_("U kiest een andere aanbieder dan het voorstel. Schrijf op waarom.")}
        )


def queue(rotation: Rotation, providers: Sequence[ProviderOffer]) -> list[ProviderOffer]:
    """The line of the rotation: longest waiting first, then the rotation's own order."""
    members = [o for o in providers if o.lot == rotation.lot and o.domain == rotation.domain]
    return sorted(
        members, key=lambda o: (rotation.last_turn.get(o.provider_id, 0), o.position, o.name)
    )


def _checks(needs: CaseNeeds, o: ProviderOffer) -> tuple[Check, ...]:
    missing = sorted(needs.expertise - o.expertise)
    involvement = needs.past.get(o.provider_id)
    checks = [
        Check("contract", True, N_("Gecontracteerd voor dit perceel."))
        if o.contract_active
        else Check("contract", False, N_("Heeft nu geen contract voor dit perceel.")),
        Check("domain", True, N_("Werkt in dit domein."))
        if o.domain == needs.domain
        else Check(
            "domain",
            False,
            N_("Werkt in een ander domein: %(domain)s."),
            {"domain": DOMAIN_SHORT[o.domain]},
        ),
        Check("expertise", True, N_("Heeft de expertise die nodig is."))
        if not missing
        else Check(
            "expertise",
            False,
            N_("Mist expertise: %(missing)s."),
            {"missing": ", ".join(missing)},
        ),
        Check(
            "age",
            o.min_age <= needs.age <= o.max_age,
            N_("Helpt jongeren van %(min)s tot en met %(max)s jaar.")
            if o.min_age <= needs.age <= o.max_age
            else N_("Helpt jongeren van %(min)s tot en met %(max)s jaar, niet van %(age)s."),
            {"min": o.min_age, "max": o.max_age, "age": needs.age},
        ),
        Check("location", True, N_("Heeft aanbod in %(location)s."), {"location": needs.location})
        if needs.location in o.locations
        else Check(
            "location",
            False,
            N_("Heeft geen aanbod in %(location)s."),
            {"location": needs.location},
        ),
        Check("milieu", True, N_("Geen verblijf in een milieu nodig."))
        if needs.milieu is None
        else Check("milieu", True, N_("Heeft plek in milieu %(milieu)s."), {"milieu": needs.milieu})
        if needs.milieu in o.milieus
        else Check(
            "milieu",
            False,
            N_("Heeft geen aanbod in milieu %(milieu)s."),
            {"milieu": needs.milieu},
        ),
        Check(
            "past_involvement",
            False,
            N_("Was eerder bij het gezin betrokken; dat werkte niet (opnieuw) goed."),
        )
        if involvement is Involvement.NOT_AGAIN
        else Check(
            "past_involvement", True, N_("Was eerder bij het gezin betrokken en dat ging goed.")
        )
        if involvement is Involvement.CONTINUE
        else Check("past_involvement", True, N_("Geen eerdere betrokkenheid bekend.")),
    ]
    return tuple(checks)


def _take_turn(rotation: Rotation, provider_id: int) -> Rotation:
    turn = rotation.turn + 1
    return Rotation(
        lot=rotation.lot,
        domain=rotation.domain,
        turn=turn,
        last_turn={**rotation.last_turn, provider_id: turn},
    )


def _head(rotation: Rotation, providers: Sequence[ProviderOffer]) -> str | None:
    line = queue(rotation, providers)
    return line[0].name if line else None


def propose(needs: CaseNeeds, providers: Sequence[ProviderOffer], rotation: Rotation) -> Proposal:
    """The proposal: suitability first (every factor, every provider of the lot), then the
    turn within the predominant domain; with the turn pointer before and after."""
    if rotation.lot != needs.lot or rotation.domain != needs.domain:
        raise ValueError("the rotation must be the lot and domain of the case")
    lot = [o for o in providers if o.lot == needs.lot]
    line = queue(rotation, lot)
    place = {o.provider_id: i + 1 for i, o in enumerate(line)}
    others = sorted(
        (o for o in lot if o.provider_id not in place), key=lambda o: (o.domain, o.position)
    )
    candidates = tuple(
        CandidateCheck(
            offer=o,
            checks=_checks(needs, o),
            in_rotation=o.provider_id in place,
            place=place.get(o.provider_id),
            preferred=needs.past.get(o.provider_id) is Involvement.CONTINUE,
        )
        for o in [*line, *others]
    )
    fitting = [c for c in candidates if c.suitable]
    preferred = [c for c in fitting if c.preferred]
    if preferred:
        chosen, basis = preferred[0].offer, Basis.CONTINUITY
    elif len(fitting) == 1:
        chosen, basis = fitting[0].offer, Basis.ONLY_SUITABLE
    elif fitting:
        chosen, basis = fitting[0].offer, Basis.TURN
    else:
        chosen, basis = None, Basis.NONE_SUITABLE
    after = _take_turn(rotation, chosen.provider_id) if chosen else rotation
    return Proposal(
        needs=needs,
        candidates=candidates,
        chosen=chosen,
        basis=basis,
        turn_before=rotation.turn,
        turn_after=after.turn,
        next_before=_head(rotation, lot),
        next_after=_head(after, lot),
    )


def decide(proposal: Proposal, rotation: Rotation, provider_id: int, reason: str) -> Decision:
    """Accept the proposal, or override it (another provider of the lot) with a reason.
    Either way the provider that receives the case takes the next turn."""
    by_id = {c.offer.provider_id: c.offer for c in proposal.candidates}
    if provider_id not in by_id:
        raise ValueError("the provider is not in this lot")
    overridden = proposal.chosen is None or proposal.chosen.provider_id != provider_id
    if overridden and not reason.strip():
        raise OverrideWithoutReason()
    after = _take_turn(rotation, provider_id)
    lot = list(by_id.values())
    return Decision(
        provider_id=provider_id,
        overridden=overridden,
        turn=after.turn,
        rotation=after,
        next_after=_head(after, lot),
    )


# -- the escalation ladder (escalatieladder) --------------------------------------------------


class LadderStep(enum.StrEnum):
    """The steps of a dispute, in order. The allocation stands on every step."""

    PROVIDER_MANAGER = "provider_manager"  # the provider's manager objects
    ALLOCATION_MANAGER = "allocation_manager"  # talks with the manager zorgbemiddeling
    CONTRACT_MANAGER = "contract_manager"  # meeting with the contract manager of the GRJR
    BOARDS = "boards"  # the provider's board with the GRJR's contract manager and/or board


LADDER: tuple[LadderStep, ...] = tuple(LadderStep)

LADDER_LABELS: dict[str, str] = {
    LadderStep.PROVIDER_MANAGER: N_("Manager van de aanbieder maakt bezwaar"),
    LadderStep.ALLOCATION_MANAGER: N_("Gesprek met de manager zorgbemiddeling"),
    LadderStep.CONTRACT_MANAGER: N_(
        "Gesprek met aanbieder, manager zorgbemiddeling en contractmanager GRJR"
    ),
    LadderStep.BOARDS: N_("Directie van de aanbieder met contractmanager en/of directie GRJR"),
}


class TopOfLadder(DomainError):
    status_code = 409
    message = N_("Dit geschil is al bij de hoogste stap: de directies.")


def next_step(step: LadderStep) -> LadderStep:
    """The next step up the ladder; the boards are the last."""
    i = LADDER.index(step)
    if i + 1 == len(LADDER):
        raise TopOfLadder()
    return LADDER[i + 1]


# -- monitoring: allocations per half year (evaluatie elke zes maanden) -----------------------


@dataclass(frozen=True, order=True)
class HalfYear:
    year: int
    half: int  # 1: January-June, 2: July-December

    @classmethod
    def of(cls, day: dt.date) -> HalfYear:
        return cls(day.year, 1 if day.month <= 6 else 2)

    @classmethod
    def parse(cls, raw: str) -> HalfYear:
        """``2026H1`` / ``2026H2``; ValueError otherwise."""
        year, sep, half = raw.upper().partition("H")
        if not sep or not year.isdigit() or half not in {"1", "2"}:
            raise ValueError(raw)
        return cls(int(year), int(half))

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, 1 if self.half == 1 else 7, 1)

    @property
    def end(self) -> dt.date:
        """The first day after this half year."""
        return dt.date(self.year, 7, 1) if self.half == 1 else dt.date(self.year + 1, 1, 1)

    @property
    def previous(self) -> HalfYear:
        return HalfYear(self.year, 1) if self.half == 2 else HalfYear(self.year - 1, 2)

    @property
    def next(self) -> HalfYear:
        return HalfYear(self.year, 2) if self.half == 1 else HalfYear(self.year + 1, 1)

    def __str__(self) -> str:
        return f"{self.year}H{self.half}"
