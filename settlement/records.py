"""Allocations, sub-provider agreements and deliveries in the database (inside the caller's unit
of work; never commits). The rules are the pure ones of :mod:`keerpunt.settlement.declaration`;
this module loads what they need, checks who may act, writes, and audits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from sqlalchemy import Table, insert, or_, select

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
    Rejection,
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
    "DeliveryBatch",
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
    "insert_deliveries",
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

# Rejections that depend on the lines before (the allocation's volume or budget used up); every
# other reason depends only on the line itself, its allocation, the tariffs and the agreements.
_LIMITS = frozenset({RejectReason.OVER_VOLUME, RejectReason.OVER_BUDGET})


class DeliveryRefused(InvalidInput):
    """The line would not be accepted; ``errors`` holds the reason in the viewer's language
    (already filled in, so the edge shows it as it is); ``reason`` names it for machines."""

    def __init__(
        self, errors: dict[str, str], reason: RejectReason = RejectReason.NO_ALLOCATION
    ) -> None:
        super().__init__(errors)
        self.reason = reason


@dataclass
class _Ledger:
    """One allocation while a batch is checked: what the rules need, its lines (saved before,
    and accepted in this batch) and which of those the rules reject (None: not yet known)."""

    row: AllocationRow
    allocation: Allocation
    contracts: list[ContractTerms]
    agreements: list[SubProviderAgreement]
    lines: list[Delivery]
    rejected: set[int] | None = None

    def judge(self, lines: list[Delivery]) -> set[int]:
        return {r.delivery.id for r in self.rejections(lines)}

    def rejections(self, lines: list[Delivery]) -> tuple[Rejection, ...]:
        _, rejected = accept_lines(lines, [self.allocation], self.contracts, self.agreements)
        return rejected


class DeliveryBatch:
    """Delivered care entered in one go, in the caller's unit of work: a batch from the API,
    or the single line of the screen (:func:`record_delivery`).

    :meth:`open` locks the allocations the lines name and reads their earlier lines, tariffs
    and agreements once; :meth:`check` judges each line as if the lines accepted before it had
    been saved one by one; :meth:`save` writes the accepted lines with an audit row each."""

    def __init__(
        self,
        uow: UnitOfWork,
        org: Organisation,
        sees_all: bool,
        ledgers: dict[str, _Ledger],
        categories: dict[tuple[int, str], str],
        kassiers: set[int],
        last_id: int,
    ) -> None:
        self._uow, self._org, self._sees_all = uow, org, sees_all
        self._ledgers, self._categories, self._kassiers = ledgers, categories, kassiers
        # Ids for lines not yet saved: above every saved one and growing, so they sort among
        # an allocation's lines as the database's ids will.
        self._last_id = last_id
        self._kept: list[tuple[_Ledger, Delivery]] = []

    @classmethod
    async def open(cls, uow: UnitOfWork, numbers: Iterable[str]) -> DeliveryBatch:
        """Lock the allocations with these numbers (in one order: two batches, or a clerk at
        the screen, must not both fit the same volume or budget) and read what checking
        lines under them needs."""
        org, sees_all = await check_settlement_access(uow)
        rows = list(
            await uow.db.scalars(
                select(AllocationRow)
                .where(AllocationRow.number.in_(sorted(set(numbers))))
                .order_by(AllocationRow.number)
                .with_for_update()
            )
        )
        holders = {r.provider_id for r in rows}
        contract_rows = list(
            await uow.db.scalars(
                select(Contract).where(Contract.provider_id.in_(holders)).order_by(Contract.id)
            )
        )
        agreement_rows = list(
            await uow.db.scalars(
                select(AgreementRow)
                .where(AgreementRow.kassier_id.in_(holders))
                .order_by(AgreementRow.id)
            )
        )
        number_of = {r.id: r.number for r in rows}
        lines: dict[int, list[Delivery]] = {r.id: [] for r in rows}
        last_id = 0
        for d in await uow.db.scalars(
            select(DeliveryRow).where(DeliveryRow.allocation_id.in_(number_of))
        ):
            lines[d.allocation_id].append(delivery_terms(d, number_of[d.allocation_id]))
            last_id = max(last_id, d.id)
        ledgers = {
            r.number: _Ledger(
                row=r,
                allocation=allocation_terms(r),
                contracts=[
                    contract_terms(c) for c in contract_rows if c.provider_id == r.provider_id
                ],
                agreements=[
                    sub_provider_terms(g) for g in agreement_rows if g.kassier_id == r.provider_id
                ],
                lines=lines[r.id],
            )
            for r in rows
        }
        categories: dict[tuple[int, str], str] = {}
        for c in contract_rows:
            categories.setdefault((c.provider_id, c.product_code), c.product_category)
        # The kassiers ``org`` was ever registered with: it may know of their allocations
        # (whether an agreement covers the period is a rule of acceptance).
        kassiers = {g.kassier_id for g in agreement_rows if g.provider_id == org.id}
        return cls(uow, org, sees_all, ledgers, categories, kassiers, last_id)

    def _candidate(self, draft: DeliveryDraft) -> tuple[_Ledger, Delivery]:
        """The line as the rules take it, under its allocation; refused here when it is
        wrong whatever else was entered."""
        errors = check_delivery_draft(draft.start, draft.end, draft.volume)
        if self._sees_all and draft.provider_id is None:
            errors["provider_id"] = N_("Kies een aanbieder.")
        if errors:
            raise InvalidInput(errors)
        org = self._org
        provider_id = draft.provider_id if self._sees_all and draft.provider_id else org.id
        if not self._sees_all and draft.provider_id not in (None, org.id):
            raise NotAllowed()
        ledger = self._ledgers.get(draft.allocation_number)
        if ledger is None or not (
            self._sees_all or ledger.row.provider_id in (org.id, *self._kassiers)
        ):
            # Another organisation's allocation reads as one that does not exist.
            raise DeliveryRefused({"allocation_number": UNKNOWN_ALLOCATION})
        holder = ledger.allocation.provider_id
        self._last_id += 1
        return ledger, Delivery(
            id=self._last_id,
            provider_id=provider_id,
            allocation_number=ledger.allocation.number,
            product_category=self._categories.get(
                (holder, draft.product_code), draft.product_code[:2]
            ),
            product_code=draft.product_code,
            start=draft.start,
            end=draft.end,
            volume=draft.volume,
        )

    def check(self, drafts: Sequence[DeliveryDraft]) -> list[Delivery | InvalidInput]:
        """For each draft, in order: the line, kept for :meth:`save`; or why it is refused (a
        :class:`DeliveryRefused` when settlement would not accept it now, or when it would
        push a line accepted before over the allocation's volume or budget). Each draft sees
        the ones kept before it. A draft for another provider than a provider's own raises
        :class:`NotAllowed`."""
        outcomes: list[Delivery | InvalidInput | None] = [None] * len(drafts)
        waiting: dict[str, list[tuple[int, Delivery]]] = {}
        for i, draft in enumerate(drafts):
            try:
                ledger, candidate = self._candidate(draft)
            except InvalidInput as exc:
                outcomes[i] = exc
                continue
            waiting.setdefault(ledger.allocation.number, []).append((i, candidate))
        # Allocations never share a limit, so each is judged on its own.
        for number, candidates in waiting.items():
            ledger = self._ledgers[number]
            for i, outcome in self._judge(ledger, candidates):
                outcomes[i] = outcome
                if isinstance(outcome, Delivery):
                    self._kept.append((ledger, outcome))
        self._kept.sort(key=lambda kept: kept[1].id)  # saved in the order they came
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    @staticmethod
    def _judge(
        ledger: _Ledger, candidates: list[tuple[int, Delivery]]
    ) -> list[tuple[int, Delivery | DeliveryRefused]]:
        if ledger.rejected is None:
            ledger.rejected = ledger.judge(ledger.lines)
        # All at once first. When that refuses no new line and no line reaches a limit, each
        # is accepted one after another too: every other reason depends on the line alone,
        # and fewer lines use less of the volume and budget at every step.
        new = [c for _, c in candidates]
        new_ids = {c.id for c in new}
        every = [*ledger.lines, *new]
        rejections = ledger.rejections(every)
        if not any(r.delivery.id in new_ids or r.reason in _LIMITS for r in rejections):
            ledger.lines = every
            ledger.rejected = {r.delivery.id for r in rejections}
            return [(i, c) for i, c in candidates]
        # Otherwise one after another, exactly as entering them one by one would.
        out: list[tuple[int, Delivery | DeliveryRefused]] = []
        for i, candidate in candidates:
            after = ledger.rejections([*ledger.lines, candidate])
            newly = [r for r in after if r.delivery.id not in ledger.rejected]
            if newly:
                mine = next((r for r in newly if r.delivery.id == candidate.id), newly[0])
                refused = DeliveryRefused({REJECTION_FIELD[mine.reason]: mine.text()}, mine.reason)
                out.append((i, refused))
                continue
            ledger.lines.append(candidate)
            ledger.rejected = {r.delivery.id for r in after}
            out.append((i, candidate))
        return out

    async def save(self) -> list[Delivery]:
        """Write the lines kept so far, in the order they came, with an audit row each;
        returns them with the ids the database gave them."""
        uow, kept, self._kept = self._uow, self._kept, []
        if not kept:
            return []
        new_ids = await insert_deliveries(uow, [(ledger.row.id, d) for ledger, d in kept])
        saved = [replace(d, id=i) for (_, d), i in zip(kept, new_ids, strict=True)]
        await audit.record_many(
            uow.db,
            [
                audit.Entry(
                    uow.who,
                    "settlement.delivery.add",
                    case_id=ledger.allocation.case_id,
                    purpose="settlement",
                    detail=(
                        f"delivery={d.id} allocation={d.allocation_number} "
                        f"provider={d.provider_id} product={d.product_code} from={d.start} "
                        f"to={d.end} volume={d.volume}"
                    ),
                )
                for (ledger, _), d in zip(kept, saved, strict=True)
            ],
        )
        return saved


async def insert_deliveries(uow: UnitOfWork, lines: Sequence[tuple[int, Delivery]]) -> list[int]:
    """Write delivery lines, each with its allocation's row id, in one statement (the ORM
    would insert them one by one on SQLite); the ids the database gave them, in the order
    given. Which id went to which line is read from the row itself, since SQLite does not
    promise RETURNING in the order of the rows; lines alike in everything are alike to
    settlement too. The caller checks and audits."""
    if not lines:
        return []
    table = cast(Table, DeliveryRow.__table__)
    inserted = await uow.db.execute(
        insert(table).returning(
            table.c.id,
            table.c.allocation_id,
            table.c.provider_id,
            table.c.product_code,
            table.c.start_date,
            table.c.end_date,
            table.c.volume,
        ),
        [
            {
                "provider_id": d.provider_id,
                "allocation_id": allocation_id,
                "product_category": d.product_category,
                "product_code": d.product_code,
                "start_date": d.start,
                "end_date": d.end,
                "volume": d.volume,
                "created_by_id": uow.who.user_id,
            }
            for allocation_id, d in lines
        ],
    )
    ids: dict[tuple[object, ...], list[int]] = {}
    for row_id, *same in sorted(inserted, key=lambda r: int(r[0])):
        ids.setdefault(tuple(same), []).append(row_id)
    return [
        ids[(allocation_id, d.provider_id, d.product_code, d.start, d.end, d.volume)].pop(0)
        for allocation_id, d in lines
    ]


async def record_delivery(uow: UnitOfWork, draft: DeliveryDraft) -> Delivery:
    """Enter delivered care (geleverde zorg). It is saved only when settlement would accept it
    now, and only when it pushes no line accepted before over the allocation's volume or
    budget; otherwise the clerk reads why, next to the field to change."""
    batch = await DeliveryBatch.open(uow, [draft.allocation_number])
    (outcome,) = batch.check([draft])
    if isinstance(outcome, InvalidInput):
        raise outcome
    (saved,) = await batch.save()
    return saved


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
