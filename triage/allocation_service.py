"""Allocation by the manager zorgbemiddeling (RET Rijnmond, seed 000): the provider list as
data, the request when a trigger fired, the proposal with its explanation, the decision with
a fair turn under concurrency, the escalation ladder and the half-year overview.

The rules are pure (:mod:`keerpunt.triage.allocation`); this module loads, locks and stores.
Nothing here reads a family's personal data: cases appear under their pseudonym. Free-text
reasons are written under the pseudonym (no names, the forms say so) and are encrypted with
the case key all the same, so shredding the case removes them. Because they are read under
the pseudonym, identifying data in them is held for a second look before anything is saved
(:class:`IdentifyingText`), as everywhere else a case is discussed anonymously.

Concurrency: giving a turn locks the rotation row of the (lot, domain) with SELECT ... FOR
UPDATE (PostgreSQL; on SQLite every write transaction starts with BEGIN IMMEDIATE and holds
the database's write lock), then compares the turn the manager saw with the current one and
writes the next turn with an UPDATE ... WHERE turn = seen (compare-and-set). A unique
(lot, domain, turn) on the allocation is the last line of defence.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.consent import service as consent
from keerpunt.platform import audit
from keerpunt.platform.db import utcnow
from keerpunt.platform.errors import DomainError, InvalidInput, NotAllowed, NotFound, StaleVersion
from keerpunt.platform.i18n import AMSTERDAM, N_, today
from keerpunt.platform.models import Case, Organisation, OrgKind, User
from keerpunt.platform.principal import SYSTEM
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage.allocation import (
    BASIS_TEXT,
    DOMAIN_LABELS,
    FACTOR_LABELS,
    LADDER_LABELS,
    TRIGGER_RULES,
    Basis,
    CaseNeeds,
    Domain,
    HalfYear,
    Involvement,
    LadderStep,
    Proposal,
    ProviderOffer,
    Rotation,
    TriggerKind,
    check_trigger,
    decide,
    next_step,
    propose,
    trigger_date,
)
from keerpunt.triage.models import (
    Allocation,
    AllocationDispute,
    AllocationProvider,
    AllocationRequest,
    AllocationRotation,
    DisputeStep,
)

__all__ = [
    "DEFAULT_LOT",
    "MANAGER",
    "AllocationView",
    "Choice",
    "Explanation",
    "IdentifyingText",
    "NeedsIncomplete",
    "Overview",
    "ProposalChanged",
    "ProposalView",
    "ProviderDraft",
    "ProviderRow",
    "RequestDraft",
    "StaleVersion",
    "TurnMoved",
    "allocation_view",
    "case_for_pseudonym",
    "complete_request",
    "decide_allocation",
    "escalate_dispute",
    "lots",
    "open_dispute",
    "overview",
    "proposal_view",
    "provider_choices",
    "provider_list",
    "request_allocation",
    "request_draft",
    "resolve_dispute",
    "save_provider",
    "trigger_fired",
    "worklist",
]

MANAGER = "allocation_manager"  # StaffRole.ALLOCATION_MANAGER: manager zorgbemiddeling
DEFAULT_LOT = "Systeemaanbieders Rijnmond"
MILIEUS = (2, 3)
MAX_AGE = 23  # youth care can run to 23 (verlengde jeugdhulp)


class TurnMoved(StaleVersion):
    """Someone else gave a turn in this domain since the proposal was shown."""

    message = N_(
        "Intussen is er een andere toewijzing gedaan in dit domein. Het voorstel is opnieuw "
        "berekend. Kijk het na en kies opnieuw. Er is niets opgeslagen."
    )


class ProposalChanged(TurnMoved):
    """Same turn, but the proposal differs from the one shown (a provider's offer changed)."""

    message = N_(
        "Het voorstel is intussen veranderd, omdat het aanbod van een aanbieder is aangepast. "
        "Kijk het na en kies opnieuw. Er is niets opgeslagen."
    )


class IdentifyingText(InvalidInput):
    """Free text written under the pseudonym seems to hold identifying data (herleidbare
    gegevens): nothing is saved until the author has looked again and confirms.

    ``kinds`` maps each form field to the kinds found in it (message ids, "een
    telefoonnummer"…), so the warning on the field can name them."""

    def __init__(self, kinds: dict[str, tuple[str, ...]], errors: dict[str, str]) -> None:
        super().__init__(
            {
                **errors,
                **dict.fromkeys(kinds, consent.IdentifyingWarning.message),
                "confirm_identifying": CONFIRM_IDENTIFYING,
            }
        )
        self.kinds = kinds


CONFIRM_IDENTIFYING = N_("Vink aan als de tekst niemand herkenbaar maakt.")


def _identifying(texts: dict[str, str], confirmed: bool) -> dict[str, tuple[str, ...]]:
    """Per field, the kinds of identifying data in its text; empty when confirmed.

    Only patterns are checked (BSN, dates, phone, e-mail, postcode, address), not the names of
    the family: the manager sees the case under its pseudonym only, and a warning on a name
    would tell them that the name they typed belongs to this family (as
    :func:`keerpunt.consent.service.identifying_warning` does for such authors)."""
    if confirmed:
        return {}
    found = {field: consent.identifying_kinds(text) for field, text in texts.items()}
    return {field: kinds for field, kinds in found.items() if kinds}


def _require_manager(uow: UnitOfWork) -> None:
    if not uow.who.has(MANAGER):
        raise NotAllowed(N_("Alleen de manager zorgbemiddeling mag dit doen."))


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(sorted({p.strip() for p in raw.split(",") if p.strip()}))


def _ids(raw: str) -> frozenset[int]:
    return frozenset(int(p) for p in raw.split(",") if p.strip().isdigit())


def _int(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) < 6 else None


# -- the provider list (data) ----------------------------------------------------------------


@dataclass(frozen=True)
class ProviderDraft:
    """What the manager fills in for one provider in a lot (strings as typed)."""

    organisation_id: int
    lot: str
    domain: str
    position: str
    expertise: str  # comma-separated
    min_age: str
    max_age: str
    locations: str  # comma-separated
    milieus: tuple[str, ...]
    contract_active: bool
    version: int | None = None  # the version edited; None: a new entry


@dataclass(frozen=True)
class ProviderRow:
    id: int
    organisation_id: int
    name: str
    lot: str
    domain: str
    position: int
    expertise: tuple[str, ...]
    min_age: int
    max_age: int
    locations: tuple[str, ...]
    milieus: tuple[int, ...]
    contract_active: bool
    version: int


async def save_provider(uow: UnitOfWork, d: ProviderDraft) -> AllocationProvider:
    """Add or change a provider's entry in a lot (aanbieder in een perceel): its domain, place
    in the rotation, expertise and offer. Only the manager zorgbemiddeling; a stale edit is
    refused."""
    _require_manager(uow)
    errors: dict[str, str] = {}
    org = await uow.db.get(Organisation, d.organisation_id)
    if org is None or org.kind != OrgKind.PROVIDER:
        errors["organisation_id"] = N_("Kies een zorgaanbieder.")
    lot = d.lot.strip()
    if not lot or len(lot) > 100:
        errors["lot"] = N_("Vul het perceel in (hoogstens 100 tekens).")
    if d.domain not in set(Domain):
        errors["domain"] = N_("Kies een domein.")
    position = _int(d.position)
    if position is None or position < 1:
        errors["position"] = N_("Vul een plaats in de beurtvolgorde in: 1, 2, 3…")
    min_age, max_age = _int(d.min_age), _int(d.max_age)
    if min_age is None or min_age > MAX_AGE:
        errors["min_age"] = N_("Vul een leeftijd in van 0 tot en met 23.")
    if max_age is None or max_age > MAX_AGE or (min_age is not None and max_age < min_age):
        errors["max_age"] = N_(
            "Vul een leeftijd in van 0 tot en met 23, niet lager dan de jongste."
        )
    locations = _csv(d.locations)
    if not locations:
        errors["locations"] = N_("Vul minstens één plaats in.")
    if any(m not in {str(x) for x in MILIEUS} for m in d.milieus):
        errors["milieus"] = N_("Kies milieu 2, milieu 3 of geen van beide.")
    expertise = _csv(d.expertise)
    if len(",".join(expertise)) > 500 or len(",".join(locations)) > 500:
        errors["expertise"] = N_("Dit is te lang. Houd het kort.")
    if errors:
        raise InvalidInput(errors)
    assert position is not None and min_age is not None and max_age is not None
    row = await uow.db.scalar(
        select(AllocationProvider).where(
            AllocationProvider.lot == lot, AllocationProvider.organisation_id == d.organisation_id
        )
    )
    if row is not None and d.version != row.version:
        raise StaleVersion(
            N_(
                "Iemand anders heeft deze aanbieder intussen veranderd. "
                "Kijk het na en sla opnieuw op."
            )
        )
    if row is None:
        row = AllocationProvider(organisation_id=d.organisation_id, lot=lot, version=0)
        uow.db.add(row)
    row.domain = d.domain
    row.position = position
    row.expertise = ",".join(expertise)
    row.min_age, row.max_age = min_age, max_age
    row.locations = ",".join(locations)
    row.milieus = ",".join(sorted(set(d.milieus)))
    row.contract_active = d.contract_active
    row.version += 1
    row.updated_at = utcnow()
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "allocation.provider_saved",
        purpose="allocation",
        detail=f"provider={d.organisation_id} lot={lot} domain={d.domain} version={row.version}",
    )
    return row


async def _provider_rows(db: AsyncSession, lot: str | None = None) -> list[ProviderRow]:
    q = select(AllocationProvider, Organisation.name).join(
        Organisation, Organisation.id == AllocationProvider.organisation_id
    )
    if lot is not None:
        q = q.where(AllocationProvider.lot == lot)
    order: dict[str, int] = {d.value: i for i, d in enumerate(Domain)}
    rows = [
        ProviderRow(
            id=p.id,
            organisation_id=p.organisation_id,
            name=name,
            lot=p.lot,
            domain=p.domain,
            position=p.position,
            expertise=_csv(p.expertise),
            min_age=p.min_age,
            max_age=p.max_age,
            locations=_csv(p.locations),
            milieus=tuple(sorted(int(m) for m in _csv(p.milieus))),
            contract_active=p.contract_active,
            version=p.version,
        )
        for p, name in (await db.execute(q)).all()
    ]
    return sorted(rows, key=lambda r: (r.lot, order.get(r.domain, 9), r.position, r.name))


async def provider_list(uow: UnitOfWork) -> list[ProviderRow]:
    """The providers per lot and domain, in rotation order."""
    _require_manager(uow)
    return await _provider_rows(uow.db)


async def provider_choices(uow: UnitOfWork) -> list[tuple[int, str]]:
    """Providers (organisations) that can be added to a lot."""
    _require_manager(uow)
    rows = await uow.db.execute(
        select(Organisation.id, Organisation.name)
        .where(Organisation.kind == OrgKind.PROVIDER)
        .order_by(Organisation.name)
    )
    return [(i, n) for i, n in rows.all()]


def _offer(r: ProviderRow) -> ProviderOffer:
    return ProviderOffer(
        provider_id=r.organisation_id,
        name=r.name,
        lot=r.lot,
        domain=Domain(r.domain),
        position=r.position,
        expertise=frozenset(r.expertise),
        min_age=r.min_age,
        max_age=r.max_age,
        locations=frozenset(r.locations),
        milieus=frozenset(r.milieus),
        contract_active=r.contract_active,
    )


# -- the request: a trigger fired ------------------------------------------------------------


@dataclass(frozen=True)
class RequestDraft:
    """The narrow interface for the case lifecycle: which trigger fired since when, the
    predominant domain, and what the case needs (strings as typed in the form)."""

    lot: str
    trigger: str
    since: dt.date | None
    domain: str
    age: str
    location: str
    milieu: str  # "", "2" or "3"
    expertise: frozenset[str]
    continue_ids: frozenset[int]  # providers whose past involvement went well
    not_again_ids: frozenset[int]  # providers whose past involvement did not work


def _may_request(uow: UnitOfWork) -> None:
    who = uow.who
    if not (who.has(MANAGER) or who.has("coordinator") or who is SYSTEM):
        raise NotAllowed(
            N_("Alleen de manager zorgbemiddeling of de coördinator vraagt een toewijzing aan.")
        )


async def _open_case(uow: UnitOfWork, case_id: int) -> Case:
    case = await uow.db.get(Case, case_id)
    if case is None or case.shredded_at is not None:
        raise NotFound()
    return case


async def _no_open_request(uow: UnitOfWork, case_id: int, errors: dict[str, str]) -> None:
    open_request = await uow.db.scalar(
        select(AllocationRequest.id).where(
            AllocationRequest.case_id == case_id, AllocationRequest.status == "open"
        )
    )
    if open_request is not None:
        errors["case"] = N_("Voor deze casus loopt al een toewijzing.")


async def _apply(
    uow: UnitOfWork, req: AllocationRequest, d: RequestDraft, errors: dict[str, str]
) -> None:
    """Validate the whole draft (every field at once) and write it into the request."""
    if d.trigger not in set(TriggerKind):
        errors["trigger"] = N_("Kies waarom de casus nu wordt toegewezen.")
    if d.since is None:
        errors["since"] = N_("Vul de datum in.")
    elif d.since > today():
        errors["since"] = N_("Deze datum ligt in de toekomst.")
    if d.domain not in set(Domain):
        errors["domain"] = N_("Kies het domein waar de problemen het zwaarst wegen.")
    age = _int(d.age)
    if age is None or age > MAX_AGE:
        errors["age"] = N_("Vul de leeftijd in jaren in (0 tot en met 23).")
    location = d.location.strip()
    if not location or len(location) > 100:
        errors["location"] = N_("Vul de woonplaats in.")
    milieu = _int(d.milieu) if d.milieu.strip() else None
    if d.milieu.strip() and milieu not in MILIEUS:
        errors["milieu"] = N_("Kies milieu 2, milieu 3 of geen verblijf.")
    lot_rows = await _provider_rows(uow.db, d.lot)
    if not lot_rows:
        errors["lot"] = N_("Dit perceel heeft nog geen aanbieders.")
    known = {r.organisation_id for r in lot_rows}
    if not (d.continue_ids | d.not_again_ids) <= known or d.continue_ids & d.not_again_ids:
        errors["past"] = N_("Kies per aanbieder één keuze uit dit perceel.")
    if errors:
        raise InvalidInput(errors)
    assert d.since is not None
    check_trigger(TriggerKind(d.trigger), d.since, today())
    req.lot = d.lot
    req.trigger_kind = d.trigger
    req.trigger_since = d.since
    req.domain = d.domain
    req.age = age
    req.location = location
    req.milieu = milieu
    req.expertise = ",".join(sorted({e.strip() for e in d.expertise if e.strip()}))
    req.continue_ids = ",".join(str(i) for i in sorted(d.continue_ids))
    req.not_again_ids = ",".join(str(i) for i in sorted(d.not_again_ids))


async def request_allocation(uow: UnitOfWork, case_id: int, d: RequestDraft) -> AllocationRequest:
    """Hand a case to the manager zorgbemiddeling because a trigger fired (mandaatregeling):
    3-4 weeks at the tables without a place, or 28 days after a crisis placement, with what
    the case needs. Refused before the trigger date; one open request per case."""
    _may_request(uow)
    case = await _open_case(uow, case_id)
    errors: dict[str, str] = {}
    await _no_open_request(uow, case.id, errors)
    req = AllocationRequest(case_id=case.id, requested_by_id=uow.who.user_id)
    await _apply(uow, req, d, errors)
    uow.db.add(req)
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "allocation.requested",
        case_id=case.id,
        purpose="allocation",
        detail=f"request={req.id} trigger={d.trigger} domain={d.domain}",
    )
    return req


async def trigger_fired(
    uow: UnitOfWork,
    case_id: int,
    trigger: TriggerKind,
    since: dt.date,
    domain: Domain,
    lot: str = DEFAULT_LOT,
) -> AllocationRequest:
    """The narrow interface for the case lifecycle: a trigger fired for this case (since
    ``since``, problems weighing most in ``domain``). The request waits on the manager
    zorgbemiddeling's work list until the needs are filled in (:func:`complete_request`)."""
    _may_request(uow)
    case = await _open_case(uow, case_id)
    errors: dict[str, str] = {}
    await _no_open_request(uow, case.id, errors)
    if errors:
        raise InvalidInput(errors)
    check_trigger(trigger, since, today())
    req = AllocationRequest(
        case_id=case.id,
        lot=lot,
        trigger_kind=trigger.value,
        trigger_since=since,
        domain=domain.value,
        age=None,
        location="",
        requested_by_id=uow.who.user_id,
    )
    uow.db.add(req)
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "allocation.requested",
        case_id=case.id,
        purpose="allocation",
        detail=f"request={req.id} trigger={trigger.value} domain={domain.value} needs=open",
    )
    return req


async def complete_request(uow: UnitOfWork, request_id: int, d: RequestDraft) -> None:
    """The manager fills in or corrects what the case needs, before allocating."""
    _require_manager(uow)
    req = await uow.db.get(AllocationRequest, request_id)
    if req is None:
        raise NotFound()
    if req.status != "open":
        raise InvalidInput({"case": N_("Deze casus is al toegewezen.")})
    await _apply(uow, req, d, {})
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "allocation.needs_saved",
        case_id=req.case_id,
        purpose="allocation",
        detail=f"request={req.id} domain={d.domain}",
    )


async def request_draft(uow: UnitOfWork, request_id: int) -> tuple[str, dict[str, Any]]:
    """The request as form values (to complete or correct it), with the case's pseudonym."""
    _require_manager(uow)
    req, case = await _request(uow, request_id)
    values: dict[str, Any] = {
        "lot": req.lot,
        "trigger": req.trigger_kind,
        "since": req.trigger_since.isoformat(),
        "domain": req.domain,
        "age": "" if req.age is None else str(req.age),
        "location": req.location,
        "milieu": "" if req.milieu is None else str(req.milieu),
        "expertise": list(_csv(req.expertise)),
    }
    for i in _ids(req.continue_ids):
        values[f"past-{i}"] = "continue"
    for i in _ids(req.not_again_ids):
        values[f"past-{i}"] = "not_again"
    return case.pseudonym, values


class NeedsIncomplete(DomainError):
    status_code = 409
    message = N_("Vul eerst in wat de jongere nodig heeft.")


async def case_for_pseudonym(uow: UnitOfWork, pseudonym: str) -> int:
    """The case behind a pseudonym as read out at the table (the manager zorgbemiddeling
    does not see names)."""
    _require_manager(uow)
    wanted = pseudonym.strip().upper()
    case_id = await uow.db.scalar(
        select(Case.id).where(Case.pseudonym == wanted, Case.shredded_at.is_(None))
    )
    if case_id is None:
        raise InvalidInput({"pseudonym": N_("Er is geen casus met dit pseudoniem.")})
    return case_id


async def lots(uow: UnitOfWork) -> list[str]:
    """The contract lots that have providers."""
    rows = await uow.db.scalars(select(AllocationProvider.lot).distinct())
    return sorted(rows.all()) or [DEFAULT_LOT]


def _needs(req: AllocationRequest) -> CaseNeeds:
    assert req.age is not None
    past = {i: Involvement.CONTINUE for i in _ids(req.continue_ids)}
    past.update({i: Involvement.NOT_AGAIN for i in _ids(req.not_again_ids)})
    return CaseNeeds(
        lot=req.lot,
        domain=Domain(req.domain),
        age=req.age,
        location=req.location,
        milieu=req.milieu,
        expertise=frozenset(_csv(req.expertise)),
        past=past,
    )


# -- the explanation (stored with the decision as it was shown) -------------------------------


@dataclass(frozen=True)
class CheckView:
    factor: str
    label: str  # message id
    ok: bool
    message: str  # message id
    params: dict[str, Any]


@dataclass(frozen=True)
class CandidateView:
    id: int
    name: str
    suitable: bool
    in_rotation: bool
    place: int | None
    preferred: bool
    checks: tuple[CheckView, ...]


@dataclass(frozen=True)
class Explanation:
    """Why: every factor for every candidate, the basis of the proposal, the turn pointer."""

    basis: str
    basis_text: str  # message id
    proposed_id: int | None
    proposed: str | None
    turn_before: int
    turn_after: int
    next_before: str | None
    next_after: str | None
    candidates: tuple[CandidateView, ...]

    @classmethod
    def of(cls, p: Proposal) -> Explanation:
        return cls(
            basis=p.basis.value,
            basis_text=BASIS_TEXT[p.basis],
            proposed_id=p.chosen.provider_id if p.chosen else None,
            proposed=p.chosen.name if p.chosen else None,
            turn_before=p.turn_before,
            turn_after=p.turn_after,
            next_before=p.next_before,
            next_after=p.next_after,
            candidates=tuple(
                CandidateView(
                    id=c.offer.provider_id,
                    name=c.name,
                    suitable=c.suitable,
                    in_rotation=c.in_rotation,
                    place=c.place,
                    preferred=c.preferred,
                    checks=tuple(
                        CheckView(
                            k.factor, FACTOR_LABELS[k.factor], k.ok, k.message, dict(k.params)
                        )
                        for k in c.checks
                    ),
                )
                for c in p.candidates
            ),
        )

    def to_json(self) -> str:
        data = {
            "basis": self.basis,
            "proposed_id": self.proposed_id,
            "proposed": self.proposed,
            "turn_before": self.turn_before,
            "turn_after": self.turn_after,
            "next_before": self.next_before,
            "next_after": self.next_after,
            "candidates": [
                {
                    "id": c.id,
                    "name": c.name,
                    "in_rotation": c.in_rotation,
                    "place": c.place,
                    "preferred": c.preferred,
                    "checks": [[k.factor, k.ok, k.message, k.params] for k in c.checks],
                }
                for c in self.candidates
            ],
        }
        return json.dumps(data, ensure_ascii=False, default=str)

    @classmethod
    def from_json(cls, raw: str, *, next_after: str | None = None) -> Explanation:
        data = json.loads(raw)
        candidates = []
        for c in data["candidates"]:
            checks = tuple(
                CheckView(f, FACTOR_LABELS.get(f, f), bool(ok), msg, dict(params))
                for f, ok, msg, params in c["checks"]
            )
            candidates.append(
                CandidateView(
                    id=c["id"],
                    name=c["name"],
                    suitable=all(k.ok for k in checks),
                    in_rotation=c["in_rotation"],
                    place=c["place"],
                    preferred=c["preferred"],
                    checks=checks,
                )
            )
        return cls(
            basis=data["basis"],
            basis_text=BASIS_TEXT[Basis(data["basis"])],
            proposed_id=data["proposed_id"],
            proposed=data["proposed"],
            turn_before=data["turn_before"],
            turn_after=data["turn_after"],
            next_before=data["next_before"],
            next_after=next_after if next_after is not None else data["next_after"],
            candidates=tuple(candidates),
        )


# -- proposal and decision -------------------------------------------------------------------


@dataclass(frozen=True)
class ProposalView:
    request_id: int
    case_id: int
    pseudonym: str
    age_band: str
    status: str
    lot: str
    trigger: str
    trigger_label: str  # message id
    since_label: str  # message id
    since: dt.date
    fires_on: dt.date
    domain: str
    domain_label: str  # message id
    age: int
    location: str
    milieu: int | None
    expertise: tuple[str, ...]
    continue_names: tuple[str, ...]
    not_again_names: tuple[str, ...]
    explanation: Explanation
    allocation_id: int | None


async def _rotation(db: AsyncSession, lot: str, domain: str, turn: int) -> Rotation:
    rows = await db.execute(
        select(Allocation.provider_id, func.max(Allocation.turn))
        .where(Allocation.lot == lot, Allocation.domain == domain)
        .group_by(Allocation.provider_id)
    )
    return Rotation(
        lot=lot, domain=Domain(domain), turn=turn, last_turn={k: v for k, v in rows.all()}
    )


async def _current_turn(db: AsyncSession, lot: str, domain: str) -> int:
    turn = await db.scalar(
        select(AllocationRotation.turn).where(
            AllocationRotation.lot == lot, AllocationRotation.domain == domain
        )
    )
    return turn or 0


async def _request(uow: UnitOfWork, request_id: int) -> tuple[AllocationRequest, Case]:
    req = await uow.db.get(AllocationRequest, request_id)
    if req is None:
        raise NotFound()
    case = await uow.db.get(Case, req.case_id)
    if case is None:
        raise NotFound()
    return req, case


async def proposal_view(uow: UnitOfWork, request_id: int) -> ProposalView:
    """The request with Keerpunt's proposal and its explanation, as of now."""
    _require_manager(uow)
    req, case = await _request(uow, request_id)
    if req.age is None:
        raise NeedsIncomplete()
    rows = await _provider_rows(uow.db, req.lot)
    rotation = await _rotation(
        uow.db, req.lot, req.domain, await _current_turn(uow.db, req.lot, req.domain)
    )
    proposal = propose(_needs(req), [_offer(r) for r in rows], rotation)
    names = {r.organisation_id: r.name for r in rows}
    allocation_id = await uow.db.scalar(
        select(Allocation.id).where(Allocation.request_id == req.id)
    )
    rule = TRIGGER_RULES[TriggerKind(req.trigger_kind)]
    return ProposalView(
        request_id=req.id,
        case_id=case.id,
        pseudonym=case.pseudonym,
        age_band=case.age_band,
        status=req.status,
        lot=req.lot,
        trigger=req.trigger_kind,
        trigger_label=rule.label,
        since_label=rule.since_label,
        since=req.trigger_since,
        fires_on=trigger_date(rule.kind, req.trigger_since),
        domain=req.domain,
        domain_label=DOMAIN_LABELS[req.domain],
        age=req.age,
        location=req.location,
        milieu=req.milieu,
        expertise=_csv(req.expertise),
        continue_names=tuple(names.get(i, "?") for i in sorted(_ids(req.continue_ids))),
        not_again_names=tuple(names.get(i, "?") for i in sorted(_ids(req.not_again_ids))),
        explanation=Explanation.of(proposal),
        allocation_id=allocation_id,
    )


@dataclass(frozen=True)
class Choice:
    """The manager's decision: the provider (the proposal or another), a reason when it is
    another, the turn they saw, and optionally a second provider with the binding split."""

    provider_id: int
    reason: str
    expected_turn: int
    second_provider_id: int | None = None
    share_percent: str = ""  # the first provider's share when there are two
    seen_proposal_id: int | None = None  # the proposal shown (0: none); None: not checked
    confirmed: bool = False  # looked again at a reason the identifying-data check flagged


async def _lock_rotation(db: AsyncSession, lot: str, domain: str) -> AllocationRotation:
    stmt = (
        select(AllocationRotation)
        .where(AllocationRotation.lot == lot, AllocationRotation.domain == domain)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = await db.scalar(stmt)
    if row is None:  # the first turn in this domain: create the row race-free, then lock it
        values = {"lot": lot, "domain": domain, "turn": 0}
        insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
        await db.execute(insert(AllocationRotation).values(**values).on_conflict_do_nothing())
        row = await db.scalar(stmt)
    assert row is not None
    return row


async def decide_allocation(uow: UnitOfWork, request_id: int, c: Choice) -> Allocation:
    """Allocate (toewijzen): accept the proposal, or choose another provider of the lot with a
    reason. The provider that receives the case takes the next turn of the predominant domain;
    if another allocation took a turn since the proposal was shown, nothing is saved."""
    _require_manager(uow)
    req = await uow.db.scalar(
        select(AllocationRequest)
        .where(AllocationRequest.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if req is None:
        raise NotFound()
    if req.status != "open":
        raise InvalidInput({"provider_id": N_("Deze casus is al toegewezen.")})
    if req.age is None:
        raise NeedsIncomplete()
    rows = await _provider_rows(uow.db, req.lot)
    by_id = {r.organisation_id: r for r in rows}
    errors: dict[str, str] = {}
    if c.provider_id not in by_id:
        errors["provider_id"] = N_("Kies een aanbieder uit dit perceel.")
    share = 100
    if c.second_provider_id is not None:
        if c.second_provider_id not in by_id or c.second_provider_id == c.provider_id:
            errors["second_provider_id"] = N_("Kies een tweede, andere aanbieder uit dit perceel.")
        parsed = _int(c.share_percent)
        if parsed is None or not 1 <= parsed <= 99:
            errors["share_percent"] = N_(
                "Vul het deel van de eerste aanbieder in procenten in (1 tot en met 99)."
            )
        else:
            share = parsed
    flagged = _identifying({"reason": c.reason}, c.confirmed)
    if flagged:
        raise IdentifyingText(flagged, errors)
    if errors:
        raise InvalidInput(errors)
    rotation_row = await _lock_rotation(uow.db, req.lot, req.domain)
    if rotation_row.turn != c.expected_turn:
        raise TurnMoved()
    rotation = await _rotation(uow.db, req.lot, req.domain, rotation_row.turn)
    proposal = propose(_needs(req), [_offer(r) for r in rows], rotation)
    now_proposed = proposal.chosen.provider_id if proposal.chosen else 0
    if c.seen_proposal_id is not None and c.seen_proposal_id != now_proposed:
        raise ProposalChanged()
    decision = decide(proposal, rotation, c.provider_id, c.reason)  # OverrideWithoutReason
    moved = await uow.db.execute(
        update(AllocationRotation)
        .where(AllocationRotation.id == rotation_row.id, AllocationRotation.turn == c.expected_turn)
        .values(turn=decision.turn)
        .returning(AllocationRotation.turn)
    )
    if moved.scalar_one_or_none() is None:  # cannot happen under the lock; never guess
        raise TurnMoved()
    cipher = await uow.vault.cipher(uow.db, req.case_id)
    reason = c.reason.strip() or None
    allocation = Allocation(
        request_id=req.id,
        case_id=req.case_id,
        lot=req.lot,
        domain=req.domain,
        turn=decision.turn,
        provider_id=c.provider_id,
        proposed_provider_id=proposal.chosen.provider_id if proposal.chosen else None,
        overridden=decision.overridden,
        reason_enc=cipher.encrypt("allocation.reason", reason) if reason else None,
        second_provider_id=c.second_provider_id,
        share_percent=share,
        explanation=_with_decision(Explanation.of(proposal), decision.turn, decision.next_after),
        decided_by_id=uow.who.user_id,
    )
    uow.db.add(allocation)
    req.status = "allocated"
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "allocation.decided",
        case_id=req.case_id,
        purpose="allocation",
        detail=f"allocation={allocation.id} provider={c.provider_id} turn={decision.turn} "
        f"overridden={decision.overridden} second={c.second_provider_id} share={share}",
    )
    return allocation


def _with_decision(e: Explanation, turn: int, next_after: str | None) -> str:
    """The explanation as shown, with the turn the decision actually took (an override when
    nobody fitted takes a turn the proposal could not name)."""
    data = json.loads(e.to_json())
    data["turn_after"] = turn
    data["decided_next_after"] = next_after
    return json.dumps(data, ensure_ascii=False)


# -- reading an allocation, disputes -------------------------------------------------------


@dataclass(frozen=True)
class StepView:
    level: str
    level_label: str  # message id
    action: str
    by: str
    spoke_with: str
    note: str | None
    at: dt.datetime


@dataclass(frozen=True)
class DisputeView:
    id: int
    provider: str
    level: str
    level_label: str
    status: str
    steps: tuple[StepView, ...]

    @property
    def at_top(self) -> bool:
        return self.level == LadderStep.BOARDS


@dataclass(frozen=True)
class AllocationView:
    id: int
    case_id: int
    pseudonym: str
    request_id: int
    lot: str
    domain: str
    domain_label: str
    turn: int
    provider_id: int
    provider: str
    proposed: str | None
    overridden: bool
    reason: str | None
    second_provider: str | None
    share_percent: int
    decided_by: str
    decided_at: dt.datetime
    explanation: Explanation
    disputes: tuple[DisputeView, ...]
    providers: tuple[tuple[int, str], ...]  # of the lot, to name who disputes

    @property
    def second_share_percent(self) -> int:
        return 100 - self.share_percent

    @property
    def open_dispute(self) -> DisputeView | None:
        return next((d for d in self.disputes if d.status == "open"), None)


async def _names(db: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await db.execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(wanted))
    )
    return {k: v for k, v in rows.all()}


async def _user_names(db: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await db.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {k: v for k, v in rows.all()}


async def allocation_view(uow: UnitOfWork, allocation_id: int) -> AllocationView:
    """An allocation with the explanation as it was shown, the reason and any dispute."""
    _require_manager(uow)
    a = await uow.db.get(Allocation, allocation_id)
    if a is None:
        raise NotFound()
    case = await uow.db.get(Case, a.case_id)
    assert case is not None
    cipher = await uow.vault.cipher(uow.db, a.case_id)

    def reveal(field: str, blob: bytes | None) -> str | None:
        return None if cipher.shredded or blob is None else cipher.decrypt(field, blob)

    disputes = (
        await uow.db.scalars(
            select(AllocationDispute)
            .where(AllocationDispute.allocation_id == a.id)
            .order_by(AllocationDispute.id)
        )
    ).all()
    steps = (
        await uow.db.scalars(
            select(DisputeStep)
            .where(DisputeStep.dispute_id.in_([d.id for d in disputes]))
            .order_by(DisputeStep.id)
        )
    ).all()
    lot_rows = await _provider_rows(uow.db, a.lot)
    orgs = await _names(
        uow.db,
        [a.provider_id, a.proposed_provider_id, a.second_provider_id]
        + [d.provider_id for d in disputes],
    )
    users = await _user_names(uow.db, [a.decided_by_id] + [s.by_id for s in steps])
    data = json.loads(a.explanation)
    return AllocationView(
        id=a.id,
        case_id=a.case_id,
        pseudonym=case.pseudonym,
        request_id=a.request_id,
        lot=a.lot,
        domain=a.domain,
        domain_label=DOMAIN_LABELS[a.domain],
        turn=a.turn,
        provider_id=a.provider_id,
        provider=orgs.get(a.provider_id, "?"),
        proposed=orgs.get(a.proposed_provider_id) if a.proposed_provider_id else None,
        overridden=a.overridden,
        reason=reveal("allocation.reason", a.reason_enc),
        second_provider=orgs.get(a.second_provider_id) if a.second_provider_id else None,
        share_percent=a.share_percent,
        decided_by=users.get(a.decided_by_id, "?"),
        decided_at=a.decided_at,
        explanation=Explanation.from_json(a.explanation, next_after=data.get("decided_next_after")),
        disputes=tuple(
            DisputeView(
                id=d.id,
                provider=orgs.get(d.provider_id, "?"),
                level=d.level,
                level_label=LADDER_LABELS[d.level],
                status=d.status,
                steps=tuple(
                    StepView(
                        level=s.level,
                        level_label=LADDER_LABELS[s.level],
                        action=s.action,
                        by=users.get(s.by_id, "?"),
                        spoke_with=_spoke_with(s, reveal),
                        note=reveal("dispute.note", s.note_enc),
                        at=s.at,
                    )
                    for s in steps
                    if s.dispute_id == d.id
                ),
            )
            for d in disputes
        ),
        providers=tuple((r.organisation_id, r.name) for r in lot_rows),
    )


def _spoke_with(step: DisputeStep, reveal: Callable[[str, bytes | None], str | None]) -> str:
    """With whom a step was discussed: encrypted since revision faa57f59db60; a step written
    before keeps its text in the old plain column (blanked when the case is shredded)."""
    if step.spoke_with_enc:
        return reveal("dispute.spoke_with", step.spoke_with_enc) or ""
    return step.spoke_with


def _step_input(spoke_with: str, note: str, confirmed: bool) -> tuple[str, str]:
    errors: dict[str, str] = {}
    if not note.strip():
        errors["note"] = N_("Schrijf op wat er is besproken en waarom.")
    if len(spoke_with.strip()) > 300:
        errors["spoke_with"] = N_("Dit is te lang. Houd het kort.")
    flagged = _identifying({"spoke_with": spoke_with, "note": note}, confirmed)
    if flagged:
        raise IdentifyingText(flagged, errors)
    if errors:
        raise InvalidInput(errors)
    return spoke_with.strip(), note.strip()


async def _add_step(
    uow: UnitOfWork, dispute: AllocationDispute, case_id: int, action: str, spoke: str, note: str
) -> None:
    cipher = await uow.vault.cipher(uow.db, case_id)
    assert uow.who.user_id is not None
    uow.db.add(
        DisputeStep(
            dispute_id=dispute.id,
            level=dispute.level,
            action=action,
            spoke_with="",
            spoke_with_enc=cipher.encrypt("dispute.spoke_with", spoke) if spoke else None,
            note_enc=cipher.encrypt("dispute.note", note),
            by_id=uow.who.user_id,
        )
    )
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        f"allocation.dispute_{action}",
        case_id=case_id,
        purpose="allocation",
        detail=f"dispute={dispute.id} level={dispute.level}",
    )


async def open_dispute(
    uow: UnitOfWork,
    allocation_id: int,
    provider_id: int,
    spoke_with: str,
    note: str,
    *,
    confirmed: bool = False,
) -> AllocationDispute:
    """A provider disagrees (escalatieladder, first step: its manager objects). Recorded by
    the manager zorgbemiddeling; the allocation stands meanwhile. ``confirmed``: the author
    looked again at text the identifying-data check flagged."""
    _require_manager(uow)
    a = await uow.db.get(Allocation, allocation_id)
    if a is None:
        raise NotFound()
    spoke, why = _step_input(spoke_with, note, confirmed)
    if provider_id not in {a.provider_id, a.second_provider_id}:
        raise InvalidInput({"provider_id": N_("Kies de aanbieder die het niet eens is.")})
    running = await uow.db.scalar(
        select(AllocationDispute.id).where(
            AllocationDispute.allocation_id == a.id, AllocationDispute.status == "open"
        )
    )
    if running is not None:
        raise InvalidInput({"note": N_("Er loopt al een geschil over deze toewijzing.")})
    dispute = AllocationDispute(
        allocation_id=a.id, provider_id=provider_id, level=LadderStep.PROVIDER_MANAGER.value
    )
    uow.db.add(dispute)
    await uow.db.flush()
    await _add_step(uow, dispute, a.case_id, "opened", spoke, why)
    return dispute


async def _open(uow: UnitOfWork, dispute_id: int) -> tuple[AllocationDispute, Allocation]:
    _require_manager(uow)
    d = await uow.db.get(AllocationDispute, dispute_id)
    if d is None:
        raise NotFound()
    a = await uow.db.get(Allocation, d.allocation_id)
    assert a is not None
    if d.status != "open":
        raise InvalidInput({"note": N_("Dit geschil is al afgerond.")})
    return d, a


async def escalate_dispute(
    uow: UnitOfWork, dispute_id: int, spoke_with: str, note: str, *, confirmed: bool = False
) -> AllocationDispute:
    """No consensus: one step up the ladder, with who, why and when."""
    d, a = await _open(uow, dispute_id)
    spoke, why = _step_input(spoke_with, note, confirmed)
    d.level = next_step(LadderStep(d.level)).value  # TopOfLadder at the boards
    await _add_step(uow, d, a.case_id, "escalated", spoke, why)
    return d


async def resolve_dispute(
    uow: UnitOfWork, dispute_id: int, spoke_with: str, note: str, *, confirmed: bool = False
) -> AllocationDispute:
    """Consensus reached on this step: the dispute ends; the allocation is unchanged."""
    d, a = await _open(uow, dispute_id)
    spoke, why = _step_input(spoke_with, note, confirmed)
    d.status = "resolved"
    d.resolved_at = utcnow()
    await _add_step(uow, d, a.case_id, "resolved", spoke, why)
    return d


# -- work list and the half-year overview ------------------------------------------------------


@dataclass(frozen=True)
class RequestLine:
    request_id: int
    pseudonym: str
    domain_label: str
    trigger_label: str
    requested_at: dt.datetime
    complete: bool  # the needs are filled in: a proposal can be made


@dataclass(frozen=True)
class AllocationLine:
    id: int
    pseudonym: str
    provider: str
    domain_label: str
    turn: int
    overridden: bool
    disputed: bool
    decided_at: dt.datetime


@dataclass(frozen=True)
class Worklist:
    open_requests: tuple[RequestLine, ...]
    recent: tuple[AllocationLine, ...]


async def worklist(uow: UnitOfWork, limit: int = 50) -> Worklist:
    """Open requests (oldest first) and the latest allocations, under pseudonym."""
    _require_manager(uow)
    reqs = (
        await uow.db.execute(
            select(AllocationRequest, Case.pseudonym)
            .join(Case, Case.id == AllocationRequest.case_id)
            .where(AllocationRequest.status == "open")
            .order_by(AllocationRequest.requested_at)
        )
    ).all()
    allocs = (
        await uow.db.execute(
            select(Allocation, Case.pseudonym)
            .join(Case, Case.id == Allocation.case_id)
            .order_by(Allocation.decided_at.desc())
            .limit(limit)
        )
    ).all()
    disputed = set(
        (
            await uow.db.scalars(
                select(AllocationDispute.allocation_id).where(AllocationDispute.status == "open")
            )
        ).all()
    )
    names = await _names(uow.db, [a.provider_id for a, _ in allocs])
    return Worklist(
        open_requests=tuple(
            RequestLine(
                r.id,
                p,
                DOMAIN_LABELS[r.domain],
                TRIGGER_RULES[TriggerKind(r.trigger_kind)].label,
                r.requested_at,
                r.age is not None,
            )
            for r, p in reqs
        ),
        recent=tuple(
            AllocationLine(
                a.id,
                p,
                names.get(a.provider_id, "?"),
                DOMAIN_LABELS[a.domain],
                a.turn,
                a.overridden,
                a.id in disputed,
                a.decided_at,
            )
            for a, p in allocs
        ),
    )


@dataclass(frozen=True)
class OverviewRow:
    name: str
    lot: str
    domain: str
    domain_label: str
    allocated: int  # as the (first) provider
    second: int  # as the second provider
    overridden: int  # received by an override of the proposal
    disputes: int


@dataclass(frozen=True)
class Overview:
    half: HalfYear
    rows: tuple[OverviewRow, ...]

    @property
    def total(self) -> int:
        return sum(r.allocated for r in self.rows)

    @property
    def overridden(self) -> int:
        return sum(r.overridden for r in self.rows)


def _amsterdam_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), AMSTERDAM).astimezone(dt.UTC)


async def overview(uow: UnitOfWork, half: HalfYear) -> Overview:
    """Allocations per provider in a half year (monitoring for the six-monthly review in the
    RER). Counts only, no cases."""
    if not (uow.who.has(MANAGER) or uow.who.has("coordinator")):
        raise NotAllowed(N_("Alleen de manager zorgbemiddeling en de coördinator zien dit."))
    start, end = _amsterdam_midnight(half.first_day), _amsterdam_midnight(half.end)
    allocs: Sequence[Allocation] = (
        await uow.db.scalars(
            select(Allocation).where(Allocation.decided_at >= start, Allocation.decided_at < end)
        )
    ).all()
    disputes = Counter(
        (
            await uow.db.scalars(
                select(AllocationDispute.provider_id)
                .join(Allocation, Allocation.id == AllocationDispute.allocation_id)
                .where(Allocation.decided_at >= start, Allocation.decided_at < end)
            )
        ).all()
    )
    first = Counter(a.provider_id for a in allocs)
    second = Counter(a.second_provider_id for a in allocs if a.second_provider_id)
    overridden = Counter(a.provider_id for a in allocs if a.overridden)
    rows = await _provider_rows(uow.db)
    listed = {r.organisation_id for r in rows}
    extra = await _names(
        uow.db, [a.provider_id for a in allocs if a.provider_id not in listed]
    )  # a provider allocated then, since removed from the list, still counts
    out = [
        OverviewRow(
            r.name,
            r.lot,
            r.domain,
            DOMAIN_LABELS[r.domain],
            first[r.organisation_id],
            second[r.organisation_id],
            overridden[r.organisation_id],
            disputes[r.organisation_id],
        )
        for r in rows
    ]
    out += [
        OverviewRow(name, "", "", "", first[i], second[i], overridden[i], disputes[i])
        for i, name in extra.items()
    ]
    return Overview(half, tuple(out))
