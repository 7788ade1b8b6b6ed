"""What a provider's own system exchanges with Keerpunt over the API (no HTTP here): its
allocations, a batch of delivered care (all lines or none), and its delivered care of a period
as settlement would price it now.

Every line goes through :class:`keerpunt.settlement.records.DeliveryBatch`, the same check as
the form in the browser (which enters a batch of one line), so the API has no rules of its
own. Only the allocation number identifies a case: a provider's system has no need for
anything personal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select

from keerpunt.platform.errors import DomainError, InvalidInput, NotFound
from keerpunt.platform.i18n import N_, gettext
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_settlement_access
from keerpunt.settlement.declaration import (
    Delivery,
    DeliveryDraft,
    accept_lines,
    read_delivery_form,
    reason_of,
)
from keerpunt.settlement.models import Allocation as AllocationRow
from keerpunt.settlement.models import Contract, DeliveryReference
from keerpunt.settlement.models import Delivery as DeliveryRow
from keerpunt.settlement.models import SubProviderAgreement as AgreementRow
from keerpunt.settlement.records import (
    DeliveryBatch,
    DeliveryRefused,
    allocation_terms,
    contract_terms,
    delivery_terms,
    sub_provider_terms,
    visible_holders,
)
from keerpunt.settlement.rules import DateRange, InvalidQuarter, parse_quarter

__all__ = [
    "ApiAllocation",
    "ApiDelivery",
    "BatchRefused",
    "LineIn",
    "LineOutcome",
    "LineProblem",
    "api_allocation",
    "api_allocations",
    "api_deliveries",
    "parse_period",
    "record_deliveries",
]


@dataclass(frozen=True)
class ApiAllocation:
    """An allocation as the provider's system sees it: no case, no person, only the number."""

    number: str
    variant: str
    product_category: str | None
    product_code: str | None
    volume: int | None
    unit: str | None
    frequency: str | None
    budget_cents: int | None
    start: dt.date
    end: dt.date


def _api_allocation(row: AllocationRow) -> ApiAllocation:
    return ApiAllocation(
        number=row.number,
        variant=row.variant,
        product_category=row.product_category,
        product_code=row.product_code,
        volume=row.volume,
        unit=row.unit,
        frequency=row.frequency,
        budget_cents=row.budget_cents,
        start=row.start_date,
        end=row.end_date,
    )


async def _holders(uow: UnitOfWork, today: dt.date) -> set[int] | None:
    """Whose allocations the caller sees (None: all of them, the penvoerder's finance)."""
    org, sees_all = await check_settlement_access(uow)
    return None if sees_all else await visible_holders(uow, org, today)


async def api_allocations(uow: UnitOfWork, today: dt.date) -> list[ApiAllocation]:
    """The allocations the caller may deliver under (its own, and those of a kassier it is
    registered with today), by number: the same ones the allocations page shows."""
    holders = await _holders(uow, today)
    query = select(AllocationRow).order_by(AllocationRow.number)
    if holders is not None:
        query = query.where(AllocationRow.provider_id.in_(holders))
    return [_api_allocation(r) for r in await uow.db.scalars(query)]


async def api_allocation(uow: UnitOfWork, number: str, today: dt.date) -> ApiAllocation:
    """One allocation; another organisation's reads as one that does not exist."""
    holders = await _holders(uow, today)
    row = await uow.db.scalar(select(AllocationRow).where(AllocationRow.number == number))
    if row is None or (holders is not None and row.provider_id not in holders):
        raise NotFound()
    return _api_allocation(row)


# ---- posting delivered care ----


@dataclass(frozen=True)
class LineIn:
    """One line as the provider's system sent it (types checked, values not yet)."""

    reference: str
    allocation_number: str
    product_code: str
    start: str
    end: str
    volume: int

    @property
    def fingerprint(self) -> str:
        content = "|".join(
            (self.allocation_number, self.product_code.upper(), self.start, self.end)
        )
        return hashlib.sha256(f"{content}|{self.volume}".encode()).hexdigest()


@dataclass(frozen=True)
class LineProblem:
    """Why a line is refused: a stable ``code`` for the machine, ``message`` for people
    (the same words the form in the browser shows, in the caller's language)."""

    index: int
    reference: str
    field: str
    code: str
    message: str


@dataclass(frozen=True)
class LineOutcome:
    index: int
    reference: str
    delivery_id: int
    created: bool  # False: the reference was seen before, the line was not added again
    allocation_number: str
    product_code: str
    start: dt.date
    end: dt.date
    volume: int


class BatchRefused(DomainError):
    """At least one line was refused, so none was saved."""

    status_code = 422
    message = N_("Niet alle regels zijn goedgekeurd. Er is niets opgeslagen.")

    def __init__(self, problems: list[LineProblem]) -> None:
        super().__init__()
        self.problems = problems


REFERENCE = re.compile(r"[A-Za-z0-9._:/-]{1,64}", re.ASCII)
REFERENCE_TWICE = N_("Deze referentie staat twee keer in dezelfde zending.")
REFERENCE_REUSED = N_(
    "Deze referentie is al gebruikt voor een andere regel. Geef elke regel een eigen referentie."
)


def _problems(index: int, line: LineIn, exc: InvalidInput) -> list[LineProblem]:
    out = []
    for name, message in exc.errors.items():
        if isinstance(exc, DeliveryRefused):  # filled in and translated already
            code, text = exc.reason.value, message
        else:
            reason = reason_of(message)
            code, text = (reason.value if reason else f"invalid_{name}"), gettext(message)
        out.append(LineProblem(index, line.reference, name, code, text))
    return out


async def record_deliveries(uow: UnitOfWork, lines: Sequence[LineIn]) -> list[LineOutcome]:
    """Record a batch of delivered care: every line, or (when one is refused) none. A line
    whose reference was recorded before with the same content is not added again, so a post
    that is retried declares nothing twice. Each line is judged as if the lines before it had
    been entered one by one in the browser; each allocation's earlier lines are read once."""
    org, _ = await check_settlement_access(uow)
    seen: set[str] = set()
    # What a retry sent before, in one query (a retried batch of 500 is 500 known lines).
    known_lines: dict[str, tuple[str, Delivery]] = {
        ref.reference: (ref.fingerprint, delivery_terms(row, number))
        for ref, row, number in await uow.db.execute(
            select(DeliveryReference, DeliveryRow, AllocationRow.number)
            .join(DeliveryRow, DeliveryRow.id == DeliveryReference.delivery_id)
            .join(AllocationRow, AllocationRow.id == DeliveryRow.allocation_id)
            .where(
                DeliveryReference.provider_id == org.id,
                DeliveryReference.reference.in_({line.reference for line in lines}),
            )
        )
    }
    # Each line is refused for its reference or its form, known from before, or a draft.
    refused: dict[int, list[LineProblem]] = {}
    known: dict[int, Delivery] = {}
    drafts: dict[int, DeliveryDraft] = {}
    for index, line in enumerate(lines):
        if line.reference in seen:
            refused[index] = [
                LineProblem(
                    index, line.reference, "reference", "reference_twice", gettext(REFERENCE_TWICE)
                )
            ]
            continue
        seen.add(line.reference)
        if (before := known_lines.get(line.reference)) is not None:
            fingerprint, delivery = before
            if fingerprint != line.fingerprint:
                refused[index] = [
                    LineProblem(
                        index,
                        line.reference,
                        "reference",
                        "reference_reused",
                        gettext(REFERENCE_REUSED),
                    )
                ]
            else:
                known[index] = delivery
            continue
        try:
            drafts[index] = read_delivery_form(
                {
                    "allocation_number": line.allocation_number,
                    "product_code": line.product_code,
                    "start": line.start,
                    "end": line.end,
                    "volume": str(line.volume) if line.volume > 0 else "",
                }
            )
        except InvalidInput as exc:
            refused[index] = _problems(index, line, exc)
    batch = await DeliveryBatch.open(uow, {d.allocation_number for d in drafts.values()})
    for index, outcome in zip(drafts, batch.check(list(drafts.values())), strict=True):
        if isinstance(outcome, InvalidInput):
            refused[index] = _problems(index, lines[index], outcome)
    if refused:
        # Nothing was written: the whole batch is refused, every problem in line order.
        raise BatchRefused([p for index in sorted(refused) for p in refused[index]])
    saved = dict(zip(drafts, await batch.save(), strict=True))
    if saved:
        await uow.db.execute(
            insert(DeliveryReference),
            [
                {
                    "provider_id": org.id,
                    "reference": lines[index].reference,
                    "delivery_id": d.id,
                    "fingerprint": lines[index].fingerprint,
                }
                for index, d in saved.items()
            ],
        )
    return [
        _outcome(index, line, d.id, False, d)
        if (d := known.get(index)) is not None
        else _outcome(index, line, saved[index].id, True, saved[index])
        for index, line in enumerate(lines)
    ]


def _outcome(index: int, line: LineIn, delivery_id: int, created: bool, d: Delivery) -> LineOutcome:
    return LineOutcome(
        index=index,
        reference=line.reference,
        delivery_id=delivery_id,
        created=created,
        allocation_number=d.allocation_number,
        product_code=d.product_code,
        start=d.start,
        end=d.end,
        volume=d.volume,
    )


# ---- reading delivered care back, priced ----

BAD_PERIOD = N_("Vul een maand in zoals 2026-07, of een kwartaal zoals 2026Q3.")
_MONTH = re.compile(r"([12]\d{3})-(0[1-9]|1[0-2])", re.ASCII)


def parse_period(raw: str) -> DateRange:
    """A month (``2026-07``) or a quarter (``2026Q3``)."""
    if m := _MONTH.fullmatch(raw):
        year, month = int(m[1]), int(m[2])
        first = dt.date(year, month, 1)
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        return DateRange(first, following - dt.timedelta(days=1))
    else:
        try:
            quarter = parse_quarter(raw)
        except InvalidQuarter:
            pass
        else:
            return DateRange(quarter.start, quarter.end)
    raise InvalidInput({"period": BAD_PERIOD})


@dataclass(frozen=True)
class ApiDelivery:
    """A delivery line of the caller, with what settlement would make of it now: accepted
    with its tariff and amount in cents, or rejected with the reason."""

    id: int
    reference: str | None
    allocation_number: str
    product_code: str
    start: dt.date
    end: dt.date
    volume: int
    status: str  # "accepted" | "rejected"
    unit: str | None
    tariff_cents: int | None
    amount_cents: int | None
    reason_code: str | None
    reason: str | None


async def api_deliveries(uow: UnitOfWork, period: DateRange) -> list[ApiDelivery]:
    """The caller's delivery lines that start in ``period``, priced as the quarterly run
    would price them now (same :func:`accept_lines`, over every line of those allocations up
    to the period's end, so volume and budget limits count other lines too)."""
    org, _ = await check_settlement_access(uow)
    mine = list(
        await uow.db.execute(
            select(DeliveryRow, AllocationRow.number, DeliveryReference.reference)
            .join(AllocationRow, AllocationRow.id == DeliveryRow.allocation_id)
            .outerjoin(DeliveryReference, DeliveryReference.delivery_id == DeliveryRow.id)
            .where(
                DeliveryRow.provider_id == org.id,
                DeliveryRow.start_date >= period.start,
                DeliveryRow.start_date <= period.end,
            )
            .order_by(DeliveryRow.start_date, DeliveryRow.id)
        )
    )
    if not mine:
        return []
    allocation_ids = {d.allocation_id for d, _, _ in mine}
    allocation_rows = list(
        await uow.db.scalars(select(AllocationRow).where(AllocationRow.id.in_(allocation_ids)))
    )
    holders = {a.provider_id for a in allocation_rows}
    numbers = {a.id: a.number for a in allocation_rows}
    every_line = [
        delivery_terms(d, numbers[d.allocation_id])
        for d in await uow.db.scalars(
            select(DeliveryRow).where(
                DeliveryRow.allocation_id.in_(allocation_ids),
                DeliveryRow.start_date <= period.end,
            )
        )
    ]
    contracts = [
        contract_terms(c)
        for c in await uow.db.scalars(select(Contract).where(Contract.provider_id.in_(holders)))
    ]
    agreements = [
        sub_provider_terms(g)
        for g in await uow.db.scalars(
            select(AgreementRow).where(AgreementRow.kassier_id.in_(holders))
        )
    ]
    accepted, rejected = accept_lines(
        every_line, [allocation_terms(a) for a in allocation_rows], contracts, agreements
    )
    priced = {x.delivery.id: x for x in accepted}
    refused = {r.delivery.id: r for r in rejected}
    out = []
    for d, number, reference in mine:
        x, r = priced.get(d.id), refused.get(d.id)
        out.append(
            ApiDelivery(
                id=d.id,
                reference=reference,
                allocation_number=number,
                product_code=d.product_code,
                start=d.start_date,
                end=d.end_date,
                volume=d.volume,
                status="accepted" if x else "rejected",
                unit=x.unit if x else None,
                tariff_cents=x.tariff_cents if x else None,
                amount_cents=x.amount_cents if x else None,
                reason_code=r.reason.value if r else None,
                reason=r.text() if r else None,
            )
        )
    return out
