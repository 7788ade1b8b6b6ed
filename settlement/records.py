"""Allocations, sub-provider agreements and deliveries in the database (inside the caller's unit
of work; never commits). The rules are the pure ones of :mod:`keerpunt.settlement.declaration`;
this module loads what they need, checks who may act, writes, and audits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select

from keerpunt.platform import audit
from keerpunt.platform.errors import InvalidInput, NotAllowed
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import Case, Organisation, OrgKind
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_finance_access, check_settlement_access
from keerpunt.settlement.declaration import (
    VARIANT_LABELS,
    Allocation,
    Delivery,
    DeliveryDraft,
    Frequency,
    Margin,
    MarginKind,
    RejectReason,
    Settlement,
    SubProviderAgreement,
    Variant,
    accept_lines,
    check_allocation,
    check_delivery_draft,
    frequency_label,
    settle,
)
from keerpunt.settlement.models import Allocation as AllocationRow
from keerpunt.settlement.models import Contract
from keerpunt.settlement.models import Delivery as DeliveryRow
from keerpunt.settlement.models import SubProviderAgreement as AgreementRow
from keerpunt.settlement.rules import (
    UNITS,
    ContractDraft,
    ContractTerms,
    DateRange,
    ProviderInfo,
    Quarter,
)

__all__ = [
    "REJECTION_FIELD",
    "AllocationView",
    "AllocationsPage",
    "DeliveryDraft",
    "DeliveryRefused",
    "DeliveryView",
    "add_agreement",
    "add_allocation",
    "allocation_terms",
    "allocations_page",
    "check_quarter",
    "contract_terms",
    "delivery_terms",
    "load_agreements",
    "load_until",
    "record_delivery",
    "store_allocation",
    "store_contract",
    "sub_provider_terms",
    "visible_allocations",
    "visible_holders",
]


# ---- allocations ----


def allocation_terms(row: AllocationRow) -> Allocation:
    """The allocation row as the pure rules take it."""
    return Allocation(
        number=row.number,
        case_id=row.case_id,
        provider_id=row.provider_id,
        municipality_id=row.municipality_id,
        variant=Variant(row.variant),
        start=row.start_date,
        end=row.end_date,
        product_category=row.product_category,
        product_code=row.product_code,
        volume=row.volume,
        unit=row.unit,
        frequency=Frequency(row.frequency) if row.frequency else None,
        budget_cents=row.budget_cents,
    )


async def _org_of_kind(uow: UnitOfWork, org_id: int, kind: OrgKind) -> Organisation | None:
    org = await uow.db.get(Organisation, org_id)
    return org if org is not None and org.kind == kind else None


async def add_allocation(uow: UnitOfWork, allocation: Allocation) -> Allocation:
    """Record a toewijzing a municipality issued. Its fields must fit its variant (iJw), its
    number is unique, the holder is a provider and the issuer a municipality."""
    await check_finance_access(uow)
    return await store_allocation(uow, allocation)


async def store_allocation(
    uow: UnitOfWork, allocation: Allocation, *, arrangement_line_id: int | None = None
) -> Allocation:
    """:func:`add_allocation` once the caller has checked who may (a proposal from an
    arrangement line is also confirmed by its holder); ``arrangement_line_id`` links it."""
    errors = check_allocation(allocation)
    if await _org_of_kind(uow, allocation.provider_id, OrgKind.PROVIDER) is None:
        errors.setdefault("provider_id", N_("Kies een aanbieder."))
    if await _org_of_kind(uow, allocation.municipality_id, OrgKind.MUNICIPALITY) is None:
        errors.setdefault("municipality_id", N_("Kies een gemeente."))
    if await uow.db.get(Case, allocation.case_id) is None:
        errors.setdefault("case_id", N_("Kies een casus."))
    taken = await uow.db.scalar(
        select(AllocationRow.id).where(AllocationRow.number == allocation.number)
    )
    if taken is not None:
        errors.setdefault("number", N_("Er is al een toewijzing met dit nummer."))
    if errors:
        raise InvalidInput(errors)
    a = allocation
    row = AllocationRow(
        number=a.number,
        case_id=a.case_id,
        provider_id=a.provider_id,
        municipality_id=a.municipality_id,
        variant=a.variant.value,
        product_category=a.product_category,
        product_code=a.product_code,
        volume=a.volume,
        unit=a.unit,
        frequency=a.frequency.value if a.frequency else None,
        budget_cents=a.budget_cents,
        start_date=a.start,
        end_date=a.end,
        arrangement_line_id=arrangement_line_id,
        created_by_id=uow.who.user_id,
    )
    uow.db.add(row)
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.allocation.add",
        case_id=a.case_id,
        purpose="settlement",
        detail=(
            f"allocation={row.id} number={a.number} provider={a.provider_id} "
            f"municipality={a.municipality_id} variant={a.variant.value} "
            f"from={a.start} to={a.end}"
            + (f" arrangement_line={arrangement_line_id}" if arrangement_line_id else "")
        ),
    )
    return allocation_terms(row)


# ---- sub-provider agreements ----


def sub_provider_terms(row: AgreementRow) -> SubProviderAgreement:
    """The sub-provider agreement row as the pure rules take it, with its margin."""
    return SubProviderAgreement(
        kassier_id=row.kassier_id,
        provider_id=row.provider_id,
        margin=Margin(MarginKind(row.margin_kind), row.margin_value),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
    )


async def load_agreements(uow: UnitOfWork) -> list[SubProviderAgreement]:
    """Every sub-provider agreement (onderaannemersovereenkomst) with its margin."""
    return [sub_provider_terms(g) for g in await uow.db.scalars(select(AgreementRow))]


AGREEMENT_OVERLAP = N_(
    "Deze aanbieder is in (een deel van) deze periode al aangemeld bij deze kassier."
)


async def add_agreement(uow: UnitOfWork, agreement: SubProviderAgreement) -> SubProviderAgreement:
    """Register a provider as sub-provider (onderaannemer) of a kassier with the kassier's
    margin. Periods of one kassier and provider never overlap, so one margin applies."""
    await check_finance_access(uow)
    g = agreement
    errors: dict[str, str] = {}
    kassier = await _org_of_kind(uow, g.kassier_id, OrgKind.PROVIDER)
    if kassier is None:
        errors["kassier_id"] = N_("Kies een kassier.")
    if await _org_of_kind(uow, g.provider_id, OrgKind.PROVIDER) is None or (
        g.provider_id == g.kassier_id
    ):
        errors["provider_id"] = N_("Kies een andere aanbieder dan de kassier.")
    if g.margin.value < 0 or (g.margin.kind is MarginKind.PERCENT and g.margin.value > 10_000):
        errors["margin"] = N_("Vul een opslag in tussen 0 en 100 procent.")
    if g.valid_to is not None and g.valid_to < g.valid_from:
        errors["valid_to"] = N_("De einddatum ligt vóór de begindatum.")
    if errors:
        raise InvalidInput(errors)
    # Lock the kassier so two finance users cannot register overlapping periods at once.
    await uow.db.execute(
        select(Organisation.id).where(Organisation.id == g.kassier_id).with_for_update()
    )
    new = DateRange(g.valid_from, g.valid_to or dt.date.max)
    existing = await uow.db.scalars(
        select(AgreementRow).where(
            AgreementRow.kassier_id == g.kassier_id, AgreementRow.provider_id == g.provider_id
        )
    )
    for row in existing:
        if DateRange(row.valid_from, row.valid_to or dt.date.max).clip(new) is not None:
            raise InvalidInput({"valid_from": AGREEMENT_OVERLAP})
    row = AgreementRow(
        kassier_id=g.kassier_id,
        provider_id=g.provider_id,
        margin_kind=g.margin.kind.value,
        margin_value=g.margin.value,
        valid_from=g.valid_from,
        valid_to=g.valid_to,
        created_by_id=uow.who.user_id,
    )
    uow.db.add(row)
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.agreement.add",
        purpose="settlement",
        detail=(
            f"agreement={row.id} kassier={g.kassier_id} provider={g.provider_id} "
            f"margin={g.margin.kind.value}:{g.margin.value} from={g.valid_from} "
            f"to={g.valid_to or ''}"
        ),
    )
    return sub_provider_terms(row)


# ---- what a viewer may see ----


@dataclass(frozen=True)
class DeliveryView:
    id: int
    provider_name: str
    product_code: str
    start: dt.date
    end: dt.date
    volume: int


@dataclass(frozen=True)
class AllocationView:
    """An allocation as a viewer sees it: the case only by its pseudonym (no personal data)."""

    number: str
    case_pseudonym: str
    holder_name: str
    municipality_name: str
    variant_label: str  # message id
    product_category: str | None
    product_code: str | None
    volume: int | None
    unit_label: str | None  # message id
    frequency_label: str | None  # message id
    budget_cents: int | None
    start: dt.date
    end: dt.date
    deliveries: tuple[DeliveryView, ...]


async def visible_holders(uow: UnitOfWork, org: Organisation, day: dt.date) -> set[int]:
    """Holders whose allocations ``org`` may deliver under: itself, and each kassier it is
    registered with on ``day``."""
    kassiers = await uow.db.scalars(
        select(AgreementRow.kassier_id).where(
            AgreementRow.provider_id == org.id,
            AgreementRow.valid_from <= day,
            or_(AgreementRow.valid_to.is_(None), AgreementRow.valid_to >= day),
        )
    )
    return {org.id, *kassiers}


async def visible_allocations(uow: UnitOfWork, today: dt.date) -> list[AllocationView]:
    """The allocations the viewer may see, running or ended, newest first: all of them for the
    penvoerder's finance; for a provider those it holds or delivers under as a registered
    sub-provider, with only its own deliveries."""
    org, sees_all = await check_settlement_access(uow)
    query = select(AllocationRow)
    if not sees_all:
        query = query.where(AllocationRow.provider_id.in_(await visible_holders(uow, org, today)))
    rows = list(await uow.db.scalars(query.order_by(AllocationRow.start_date.desc())))
    if not rows:
        return []
    case_ids = {r.case_id for r in rows}
    org_ids = {r.provider_id for r in rows} | {r.municipality_id for r in rows}
    pseudonyms: dict[int, str] = {
        case_id: pseudonym
        for case_id, pseudonym in await uow.db.execute(
            select(Case.id, Case.pseudonym).where(Case.id.in_(case_ids))
        )
    }
    deliveries = select(DeliveryRow).where(DeliveryRow.allocation_id.in_([r.id for r in rows]))
    if not sees_all:
        deliveries = deliveries.where(DeliveryRow.provider_id == org.id)
    delivery_rows = list(await uow.db.scalars(deliveries.order_by(DeliveryRow.start_date)))
    org_ids |= {d.provider_id for d in delivery_rows}
    names: dict[int, str] = {
        org_id: name
        for org_id, name in await uow.db.execute(
            select(Organisation.id, Organisation.name).where(Organisation.id.in_(org_ids))
        )
    }
    per_allocation: dict[int, list[DeliveryView]] = {}
    for d in delivery_rows:
        per_allocation.setdefault(d.allocation_id, []).append(
            DeliveryView(
                d.id, names[d.provider_id], d.product_code, d.start_date, d.end_date, d.volume
            )
        )
    return [
        AllocationView(
            number=r.number,
            case_pseudonym=pseudonyms[r.case_id],
            holder_name=names[r.provider_id],
            municipality_name=names[r.municipality_id],
            variant_label=VARIANT_LABELS[Variant(r.variant)],
            product_category=r.product_category,
            product_code=r.product_code,
            volume=r.volume,
            unit_label=UNITS[r.unit].label if r.unit else None,
            frequency_label=frequency_label(Frequency(r.frequency)) if r.frequency else None,
            budget_cents=r.budget_cents,
            start=r.start_date,
            end=r.end_date,
            deliveries=tuple(per_allocation.get(r.id, ())),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class AllocationsPage:
    """What the allocations page shows: the visible allocations, and the providers finance may
    enter care for (empty for a provider, which enters only its own)."""

    allocations: list[AllocationView]
    providers: list[ProviderInfo]


async def allocations_page(uow: UnitOfWork, today: dt.date) -> AllocationsPage:
    """The allocations the viewer may see, and for whom it may enter delivered care."""
    _, sees_all = await check_settlement_access(uow)
    allocations = await visible_allocations(uow, today)
    providers: list[ProviderInfo] = []
    if sees_all:
        orgs = await uow.db.scalars(
            select(Organisation)
            .where(Organisation.kind == OrgKind.PROVIDER)
            .order_by(Organisation.name)
        )
        providers = [ProviderInfo(o.id, o.name, o.agb_code) for o in orgs]
    return AllocationsPage(allocations, providers)


# ---- deliveries ----


def delivery_terms(row: DeliveryRow, number: str) -> Delivery:
    """The delivery row as the pure rules take it, under its allocation's ``number``."""
    return Delivery(
        id=row.id,
        provider_id=row.provider_id,
        allocation_number=number,
        product_category=row.product_category,
        product_code=row.product_code,
        start=row.start_date,
        end=row.end_date,
        volume=row.volume,
    )


def contract_terms(c: Contract) -> ContractTerms:
    """The contract row's tariff terms as the pure rules take them."""
    return ContractTerms(
        c.provider_id, c.product_code, c.unit, c.tariff_cents, c.valid_from, c.valid_to
    )


# Which form field (or import column) a rejection belongs to, so the message sits next to what
# must change.
REJECTION_FIELD = {
    RejectReason.BAD_PERIOD: "end",
    RejectReason.NOT_ONE_MONTH: "end",
    RejectReason.BAD_VOLUME: "volume",
    RejectReason.NO_ALLOCATION: "allocation_number",
    RejectReason.NOT_ALLOWED: "allocation_number",
    RejectReason.OUTSIDE_ALLOCATION: "start",
    RejectReason.OTHER_PRODUCT: "product_code",
    RejectReason.NO_TARIFF: "product_code",
    RejectReason.TARIFF_CHANGES: "end",
    RejectReason.OTHER_UNIT: "product_code",
    RejectReason.OVER_VOLUME: "volume",
    RejectReason.OVER_BUDGET: "volume",
}


UNKNOWN_ALLOCATION = N_("Er is geen toewijzing met dit nummer.")


async def _may_deliver_under(uow: UnitOfWork, org: Organisation, holder_id: int) -> bool:
    """Whether ``org`` may know of the holder's allocations: its own, or a kassier it was
    ever registered with (whether the agreement covers the period is a rule of acceptance)."""
    if holder_id == org.id:
        return True
    agreement = await uow.db.scalar(
        select(AgreementRow.id)
        .where(AgreementRow.kassier_id == holder_id, AgreementRow.provider_id == org.id)
        .limit(1)
    )
    return agreement is not None


class DeliveryRefused(InvalidInput):
    """The line would not be accepted; ``errors`` holds the reason in the viewer's language
    (already filled in, so the edge shows it as it is); ``reason`` names it for machines."""

    def __init__(
        self, errors: dict[str, str], reason: RejectReason = RejectReason.NO_ALLOCATION
    ) -> None:
        super().__init__(errors)
        self.reason = reason


async def record_delivery(uow: UnitOfWork, draft: DeliveryDraft) -> Delivery:
    """Enter delivered care (geleverde zorg). It is saved only when settlement would accept it
    now, and only when it pushes no line accepted before over the allocation's volume or
    budget; otherwise the clerk reads why, next to the field to change."""
    org, sees_all = await check_settlement_access(uow)
    errors = check_delivery_draft(draft.start, draft.end, draft.volume)
    if sees_all and draft.provider_id is None:
        errors["provider_id"] = N_("Kies een aanbieder.")
    if errors:
        raise InvalidInput(errors)
    provider_id = draft.provider_id if sees_all and draft.provider_id else org.id
    if not sees_all and draft.provider_id not in (None, org.id):
        raise NotAllowed()
    # Lock the allocation: two clerks entering lines at once must not both fit the budget.
    allocation_row = (
        await uow.db.execute(
            select(AllocationRow)
            .where(AllocationRow.number == draft.allocation_number)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if allocation_row is None or not (
        sees_all or await _may_deliver_under(uow, org, allocation_row.provider_id)
    ):
        # Another organisation's allocation reads as one that does not exist.
        raise DeliveryRefused({"allocation_number": UNKNOWN_ALLOCATION})
    allocation = allocation_terms(allocation_row)
    contracts = [
        contract_terms(c)
        for c in await uow.db.scalars(
            select(Contract).where(Contract.provider_id == allocation.provider_id)
        )
    ]
    category = next(
        (c.product_category for c in await uow.db.scalars(
            select(Contract).where(
                Contract.provider_id == allocation.provider_id,
                Contract.product_code == draft.product_code,
            )
        )),
        draft.product_code[:2],
    )  # fmt: skip
    agreements = [
        sub_provider_terms(g)
        for g in await uow.db.scalars(
            select(AgreementRow).where(AgreementRow.kassier_id == allocation.provider_id)
        )
    ]
    existing = [
        delivery_terms(d, allocation.number)
        for d in await uow.db.scalars(
            select(DeliveryRow).where(DeliveryRow.allocation_id == allocation_row.id)
        )
    ]
    new_id = max((d.id for d in existing), default=0) + 1  # ids grow: as it will sort once saved
    candidate = Delivery(
        id=new_id,
        provider_id=provider_id,
        allocation_number=allocation.number,
        product_category=category,
        product_code=draft.product_code,
        start=draft.start,
        end=draft.end,
        volume=draft.volume,
    )
    _, before = accept_lines(existing, [allocation], contracts, agreements)
    _, after = accept_lines([*existing, candidate], [allocation], contracts, agreements)
    was_rejected = {r.delivery.id for r in before}
    newly = [r for r in after if r.delivery.id not in was_rejected]
    if newly:
        mine = next((r for r in newly if r.delivery.id == new_id), newly[0])
        raise DeliveryRefused({REJECTION_FIELD[mine.reason]: mine.text()}, mine.reason)
    row = DeliveryRow(
        provider_id=provider_id,
        allocation_id=allocation_row.id,
        product_category=category,
        product_code=draft.product_code,
        start_date=draft.start,
        end_date=draft.end,
        volume=draft.volume,
        created_by_id=uow.who.user_id,
    )
    uow.db.add(row)
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.delivery.add",
        case_id=allocation.case_id,
        purpose="settlement",
        detail=(
            f"delivery={row.id} allocation={allocation.number} provider={provider_id} "
            f"product={draft.product_code} from={draft.start} to={draft.end} "
            f"volume={draft.volume}"
        ),
    )
    return delivery_terms(row, allocation.number)


# ---- checking a quarter before it is closed ----


async def load_until(
    uow: UnitOfWork, last_day: dt.date
) -> tuple[list[Delivery], list[Allocation], list[ContractTerms], list[SubProviderAgreement]]:
    """Every delivery starting on or before ``last_day``, with all allocations, tariffs and
    agreements: what settling up to that day needs."""
    rows = await uow.db.execute(
        select(DeliveryRow, AllocationRow.number)
        .join(AllocationRow, AllocationRow.id == DeliveryRow.allocation_id)
        .where(DeliveryRow.start_date <= last_day)
    )
    deliveries = [delivery_terms(d, number) for d, number in rows]
    allocations = [allocation_terms(a) for a in await uow.db.scalars(select(AllocationRow))]
    contracts = [contract_terms(c) for c in await uow.db.scalars(select(Contract))]
    agreements = [sub_provider_terms(g) for g in await uow.db.scalars(select(AgreementRow))]
    return deliveries, allocations, contracts, agreements


async def check_quarter(uow: UnitOfWork, quarter: Quarter) -> Settlement:
    """What closing ``quarter`` would declare and reject: every delivery that starts on or
    before its last day, checked against allocations, tariffs and agreements. Nothing is
    written (the quarterly run that closes a quarter builds on this)."""
    await check_finance_access(uow)
    deliveries, allocations, contracts, agreements = await load_until(uow, quarter.end)
    return settle(deliveries, allocations, contracts, agreements)


async def store_contract(uow: UnitOfWork, draft: ContractDraft, *, note: str = "") -> Contract:
    """Write one checked tariff (contract) and its audit row; the screen and the import both
    come here, after their own checks, so a contract is recorded the same way either way."""
    contract = Contract(
        provider_id=draft.provider_id,
        product_category=draft.product_category,
        product_code=draft.product_code,
        description=draft.description,
        unit=draft.unit,
        tariff_cents=draft.tariff_cents,
        valid_from=draft.valid_from,
        valid_to=draft.valid_to,
        created_by_id=uow.who.user_id,
    )
    uow.db.add(contract)
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.contract.add",
        purpose="settlement",
        detail=(
            f"contract={contract.id} provider={contract.provider_id} "
            f"product={contract.product_code} unit={contract.unit} "
            f"tariff_cents={contract.tariff_cents} from={contract.valid_from} "
            f"to={contract.valid_to or ''} {note}"
        ).rstrip(),
    )
    return contract
