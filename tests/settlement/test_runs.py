"""The quarterly run on the real database (SQLite and PostgreSQL): a closed quarter is one
immutable run, its statement never changes, and later corrections go into the next run."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from keerpunt.platform.errors import NotAllowed, NotFound
from keerpunt.platform.models import AuditEntry
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.models import Delivery, SettlementRun, SettlementRunLine
from keerpunt.settlement.service import (
    LaterQuarterClosed,
    QuarterNotOver,
    close_quarter,
    parse_quarter,
    record_delivery,
    run_statement,
)
from tests.settlement.factories import principal
from tests.settlement.test_delivery_routes import with_allocation
from tests.settlement.test_records import World, line

pytestmark = pytest.mark.anyio

D = dt.date
Q2, Q3, Q4 = parse_quarter("2026Q2"), parse_quarter("2026Q3"), parse_quarter("2026Q4")
AFTER_Q3 = D(2026, 10, 5)


async def close(rt: Runtime, w: World, quarter=Q3, today: dt.date = AFTER_Q3):  # type: ignore[no-untyped-def]
    async with rt.unit_of_work(principal(w.region.finance)) as uow:
        return await close_quarter(uow, quarter, today)


async def statement(rt: Runtime, w: World, quarter=Q3, provider_id: int | None = None) -> bytes:  # type: ignore[no-untyped-def]
    async with rt.unit_of_work(principal(w.region.finance)) as uow:
        return await run_statement(uow, quarter, provider_id)


async def deliver(rt: Runtime, w: World, **changes: object) -> None:
    async with rt.unit_of_work(principal(w.horizon_staff)) as uow:
        await record_delivery(uow, line(**changes))


async def count(rt: Runtime, model: type) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(model)) or 0


async def test_closing_a_quarter_makes_one_run_with_a_statement(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    await deliver(runtime, w, volume=3)
    summary = await close(runtime, w)
    assert (summary.created, summary.line_count, summary.total_cents) == (True, 1, 37_440)
    csv = (await statement(runtime, w)).decode()
    rows = csv.strip().split("\r\n")
    assert rows[0].startswith("kwartaal,declarant,leverancier,toewijzing,referentie")
    async with runtime.sessionmaker() as db:
        delivery_id = await db.scalar(select(Delivery.id))
    assert rows[1] == (
        f"2026Q3,Horizon,Horizon,T-100,{delivery_id}-1,,45,45A52,"
        "2026-07-01,2026-07-31,3,04,12480,37440,D"
    )
    assert rows[2] == "2026Q3,totaal,,,,,,,,,,,,37440,D"
    async with runtime.sessionmaker() as db:
        actions = list(await db.scalars(select(AuditEntry.action)))
    assert "settlement.run.close" in actions


async def test_closing_again_returns_the_same_run_and_the_same_bytes(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    await deliver(runtime, w)
    first = await close(runtime, w)
    before = await statement(runtime, w)
    again = await close(runtime, w)
    assert again.created is False and again.digest == first.digest
    assert await statement(runtime, w) == before
    assert await count(runtime, SettlementRun) == 1


async def test_two_people_pressing_at_once_make_one_run(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    await deliver(runtime, w)
    one, two = await asyncio.gather(close(runtime, w), close(runtime, w))
    assert sorted([one.created, two.created]) == [False, True]
    assert one.digest == two.digest
    assert await count(runtime, SettlementRun) == 1
    assert await count(runtime, SettlementRunLine) == 1


async def test_a_closed_quarter_is_never_rewritten_corrections_go_to_the_next_run(
    runtime: Runtime,
) -> None:
    w = await with_allocation(runtime)
    await deliver(runtime, w, volume=10)
    await close(runtime, w)
    q3 = await statement(runtime, w)
    async with runtime.sessionmaker() as db, db.begin():  # the provider corrects July later
        await db.execute(update(Delivery).values(volume=8))
    await deliver(runtime, w, start=D(2026, 9, 1), end=D(2026, 9, 30), volume=1)  # late line
    # Q4 is not there yet; Q3 stays closed and reads the same.
    assert await statement(runtime, w) == q3
    summary = await close(runtime, w, Q4, D(2027, 1, 4))
    rows = [r.split(",") for r in (await statement(runtime, w, Q4)).decode().split("\r\n")[1:-1]]
    async with runtime.sessionmaker() as db:
        july, september = await db.scalars(select(Delivery.id).order_by(Delivery.id))
    # The July line is credited in full first, then declared anew; September is new.
    assert [(r[4], r[5], r[8], r[13], r[14]) for r in rows] == [
        (f"{july}-1C", f"{july}-1", "2026-07-01", "124800", "C"),
        (f"{july}-2", "", "2026-07-01", "99840", "D"),
        (f"{september}-1", "", "2026-09-01", "12480", "D"),
        ("", "", "", "12480", "C"),
    ]
    assert summary.total_cents == -124_800 + 99_840 + 12_480


async def test_a_quarter_closes_only_after_its_last_day(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    with pytest.raises(QuarterNotOver):
        await close(runtime, w, Q3, D(2026, 9, 30))
    assert await count(runtime, SettlementRun) == 0


async def test_an_earlier_quarter_cannot_close_after_a_later_one(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    await close(runtime, w)
    with pytest.raises(LaterQuarterClosed):
        await close(runtime, w, Q2)


async def test_statement_of_one_provider_and_of_an_open_quarter(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    await deliver(runtime, w)
    await close(runtime, w)
    mine = (await statement(runtime, w, provider_id=w.region.horizon.id)).decode()
    other = (await statement(runtime, w, provider_id=w.region.altra.id)).decode()
    assert "T-100" in mine and "T-100" not in other
    with pytest.raises(NotFound):
        await statement(runtime, w, Q4)


async def test_only_finance_of_the_penvoerder_closes(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    async with runtime.unit_of_work(principal(w.horizon_staff)) as uow:
        with pytest.raises(NotAllowed):
            await close_quarter(uow, Q3, AFTER_Q3)
