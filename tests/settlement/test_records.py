"""Allocations, sub-provider agreements and deliveries on the real database (SQLite and
PostgreSQL): who may do what, the acceptance rules at entry, and checking a quarter."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from keerpunt.platform.errors import InvalidInput, NotAllowed
from keerpunt.platform.models import AuditEntry, Organisation, User
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.declaration import (
    Allocation,
    Direction,
    Frequency,
    Margin,
    MarginKind,
    RejectReason,
    SubProviderAgreement,
    Variant,
)
from keerpunt.settlement.models import Delivery as DeliveryRow
from keerpunt.settlement.service import (
    DeliveryDraft,
    DeliveryRefused,
    add_agreement,
    add_allocation,
    check_quarter,
    parse_quarter,
    record_delivery,
    visible_allocations,
)
from tests.helpers import make_org, make_user
from tests.settlement.factories import Region, add_case, add_tariff, build_region, principal

pytestmark = pytest.mark.anyio

D = dt.date
TODAY = D(2026, 8, 15)


@dataclass
class World:
    region: Region
    zwolle: Organisation
    horizon_staff: User
    altra_staff: User
    case_id: int


async def build(rt: Runtime) -> World:
    region = await build_region(rt)
    zwolle = await make_org(rt, "Gemeente Zwolle", kind="municipality", cbs_code="0193")
    case = await add_case(rt, region.finance)
    await add_tariff(rt, region.horizon, 12_000, D(2026, 1, 1), D(2026, 6, 30))
    await add_tariff(rt, region.horizon, 12_480, D(2026, 7, 1))
    return World(
        region=region,
        zwolle=zwolle,
        horizon_staff=await make_user(rt, region.horizon, "Hanna Horizon"),
        altra_staff=await make_user(rt, region.altra, "Ali Altra"),
        case_id=case.id,
    )


def allocation(w: World, **changes: object) -> Allocation:
    values: dict[str, object] = dict(
        number="T-100",
        case_id=w.case_id,
        provider_id=w.region.horizon.id,
        municipality_id=w.zwolle.id,
        variant=Variant.SPECIFIC,
        start=D(2026, 1, 1),
        end=D(2026, 9, 30),
        product_category="45",
        product_code="45A52",
        volume=20,
        unit="04",
        frequency=Frequency.MONTH,
    )
    values.update(changes)
    return Allocation(**values)  # type: ignore[arg-type]


def line(**changes: object) -> DeliveryDraft:
    values: dict[str, object] = dict(
        allocation_number="T-100",
        product_code="45A52",
        start=D(2026, 7, 1),
        end=D(2026, 7, 31),
        volume=10,
    )
    values.update(changes)
    return DeliveryDraft(**values)  # type: ignore[arg-type]


async def as_finance(rt: Runtime, w: World, coro_fn, *args):  # type: ignore[no-untyped-def]
    async with rt.unit_of_work(principal(w.region.finance)) as uow:
        return await coro_fn(uow, *args)


async def enter(rt: Runtime, who: User, draft: DeliveryDraft):  # type: ignore[no-untyped-def]
    async with rt.unit_of_work(principal(who)) as uow:
        return await record_delivery(uow, draft)


async def count(rt: Runtime, model: type) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(model)) or 0


async def test_finance_records_an_allocation_and_the_provider_sees_it(runtime: Runtime) -> None:
    w = await build(runtime)
    await as_finance(runtime, w, add_allocation, allocation(w))
    async with runtime.unit_of_work(principal(w.horizon_staff)) as uow:
        (seen,) = await visible_allocations(uow, TODAY)
    assert (seen.number, seen.holder_name, seen.municipality_name) == (
        "T-100",
        "Horizon",
        "Gemeente Zwolle",
    )
    assert seen.case_pseudonym.startswith("Casus-")
    async with runtime.unit_of_work(principal(w.altra_staff)) as uow:
        assert await visible_allocations(uow, TODAY) == []
    async with runtime.sessionmaker() as db:
        actions = list(await db.scalars(select(AuditEntry.action)))
    assert "settlement.allocation.add" in actions


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"number": ""}, "number"),
        ({"product_code": None}, "product_code"),
        ({"variant": Variant.GENERIC}, "product_category"),  # generic: no category
        ({"end": D(2025, 12, 31)}, "end"),
        ({"provider_id": -1}, "provider_id"),
    ],
)
async def test_allocation_fields_are_checked(
    runtime: Runtime, changes: dict[str, object], field: str
) -> None:
    w = await build(runtime)
    with pytest.raises(InvalidInput) as caught:
        await as_finance(runtime, w, add_allocation, allocation(w, **changes))
    assert field in caught.value.errors


async def test_allocation_number_is_unique(runtime: Runtime) -> None:
    w = await build(runtime)
    await as_finance(runtime, w, add_allocation, allocation(w))
    with pytest.raises(InvalidInput) as caught:
        await as_finance(runtime, w, add_allocation, allocation(w))
    assert caught.value.errors == {"number": "Er is al een toewijzing met dit nummer."}


async def test_only_finance_of_the_penvoerder_records_allocations(runtime: Runtime) -> None:
    w = await build(runtime)
    async with runtime.unit_of_work(principal(w.horizon_staff)) as uow:
        with pytest.raises(NotAllowed):
            await add_allocation(uow, allocation(w))


async def test_provider_enters_a_delivery_under_its_allocation(runtime: Runtime) -> None:
    w = await build(runtime)
    await as_finance(runtime, w, add_allocation, allocation(w))
    saved = await enter(runtime, w.horizon_staff, line())
    assert (saved.provider_id, saved.product_category, saved.volume) == (
        w.region.horizon.id,
        "45",
        10,
    )
    async with runtime.sessionmaker() as db:
        actions = list(await db.scalars(select(AuditEntry.action)))
    assert "settlement.delivery.add" in actions


@pytest.mark.parametrize(
    ("draft", "field", "starts"),
    [
        (line(allocation_number="T-404"), "allocation_number", "Er is geen toewijzing"),
        (line(start=D(2026, 10, 1), end=D(2026, 10, 31)), "start", "De periode valt"),
        (line(end=D(2026, 8, 2)), "end", "De periode loopt over meer dan één maand"),
        (line(product_code="45A99"), "product_code", "Dit product past niet"),
        (line(volume=21), "volume", "Hiermee gaat het aantal boven de toewijzing"),
        (line(volume=0), "volume", "Het aantal moet een heel getal"),
    ],
)
async def test_a_line_that_would_be_rejected_is_not_saved_and_says_why(
    runtime: Runtime, draft: DeliveryDraft, field: str, starts: str
) -> None:
    w = await build(runtime)
    await as_finance(runtime, w, add_allocation, allocation(w))
    with pytest.raises(InvalidInput) as caught:
        await enter(runtime, w.horizon_staff, draft)
    assert caught.value.errors[field].startswith(starts)
    assert await count(runtime, DeliveryRow) == 0


async def test_a_line_that_pushes_an_earlier_accepted_line_over_is_refused(
    runtime: Runtime,
) -> None:
    w = await build(runtime)
    await as_finance(
        runtime, w, add_allocation, allocation(w, volume=20, frequency=Frequency.TOTAL)
    )
    await enter(runtime, w.horizon_staff, line(start=D(2026, 8, 1), end=D(2026, 8, 31), volume=15))
    # July sorts first, so it would fit, but it would push August over the total.
    with pytest.raises(DeliveryRefused):
        await enter(runtime, w.horizon_staff, line(volume=10))
    assert await count(runtime, DeliveryRow) == 1


async def test_kassier_model_sub_provider_delivers_under_the_kassiers_allocation(
    runtime: Runtime,
) -> None:
    w = await build(runtime)
    horizon, altra = w.region.horizon.id, w.region.altra.id  # Horizon is the kassier here
    await as_finance(runtime, w, add_allocation, allocation(w))
    with pytest.raises(InvalidInput):  # not registered yet
        await enter(runtime, w.altra_staff, line())
    margin = Margin(MarginKind.PERCENT, 660)
    await as_finance(
        runtime, w, add_agreement, SubProviderAgreement(horizon, altra, margin, D(2026, 1, 1))
    )
    saved = await enter(runtime, w.altra_staff, line())
    assert saved.provider_id == altra
    async with runtime.unit_of_work(principal(w.altra_staff)) as uow:
        (seen,) = await visible_allocations(uow, TODAY)
    assert seen.holder_name == "Horizon" and [d.provider_name for d in seen.deliveries] == ["Altra"]


async def test_agreement_periods_of_one_pair_do_not_overlap(runtime: Runtime) -> None:
    w = await build(runtime)
    g = SubProviderAgreement(
        w.region.horizon.id, w.region.altra.id, Margin(MarginKind.FIXED, 250), D(2026, 1, 1)
    )
    await as_finance(runtime, w, add_agreement, g)
    with pytest.raises(InvalidInput) as caught:
        await as_finance(runtime, w, add_agreement, g)
    assert "valid_from" in caught.value.errors


async def test_a_provider_cannot_enter_for_another_provider(runtime: Runtime) -> None:
    w = await build(runtime)
    await as_finance(runtime, w, add_allocation, allocation(w))
    with pytest.raises(NotAllowed):
        await enter(runtime, w.altra_staff, line(provider_id=w.region.horizon.id))


async def test_check_quarter_prices_each_line_with_the_tariff_of_its_date(
    runtime: Runtime,
) -> None:
    w = await build(runtime)
    await as_finance(runtime, w, add_allocation, allocation(w))
    await enter(runtime, w.horizon_staff, line(start=D(2026, 6, 1), end=D(2026, 6, 30), volume=2))
    await enter(runtime, w.horizon_staff, line(volume=3))
    with pytest.raises(InvalidInput):  # after the allocation: refused at entry
        await enter(runtime, w.horizon_staff, line(start=D(2026, 10, 1), end=D(2026, 10, 31)))
    async with runtime.unit_of_work(principal(w.region.finance)) as uow:
        result = await check_quarter(uow, parse_quarter("2026Q3"))
    assert [(x.start, x.tariff_cents, x.amount_cents, x.direction) for x in result.lines] == [
        (D(2026, 6, 1), 12_000, 24_000, Direction.DEBIT),
        (D(2026, 7, 1), 12_480, 37_440, Direction.DEBIT),
    ]
    assert result.totals == {w.region.horizon.id: 61_440}
    assert result.rejected == ()


async def test_check_quarter_shows_lines_that_no_longer_fit(runtime: Runtime) -> None:
    w = await build(runtime)
    await as_finance(runtime, w, add_allocation, allocation(w))
    await enter(runtime, w.horizon_staff, line())
    async with runtime.sessionmaker() as db, db.begin():  # the tariff is withdrawn afterwards
        from keerpunt.settlement.models import Contract

        for c in await db.scalars(select(Contract)):
            await db.delete(c)
    async with runtime.unit_of_work(principal(w.region.finance)) as uow:
        result = await check_quarter(uow, parse_quarter("2026Q3"))
    assert [r.reason for r in result.rejected] == [RejectReason.NO_TARIFF]
    assert result.lines == ()


async def test_only_finance_checks_a_quarter(runtime: Runtime) -> None:
    w = await build(runtime)
    async with runtime.unit_of_work(principal(w.horizon_staff)) as uow:
        with pytest.raises(NotAllowed):
            await check_quarter(uow, parse_quarter("2026Q3"))
