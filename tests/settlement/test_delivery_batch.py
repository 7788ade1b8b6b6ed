"""A batch of delivered care from a provider's own system, on SQLite and PostgreSQL: it ends
exactly as entering its lines one after another would (each accepted line counts for the
next), and it reads each allocation's earlier lines once, however many lines it brings."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform.models import AuditEntry
from keerpunt.platform.principal import Principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.settings import Settings
from keerpunt.settlement.declaration import (
    Frequency,
    Margin,
    MarginKind,
    SubProviderAgreement,
    Variant,
)
from keerpunt.settlement.exchange import (
    BatchRefused,
    LineIn,
    LineOutcome,
    LineProblem,
    record_deliveries,
)
from keerpunt.settlement.models import Delivery as DeliveryRow
from keerpunt.settlement.service import add_agreement, add_allocation
from tests.settlement.factories import add_tariff, principal
from tests.settlement.test_records import World, allocation, build

D = dt.date


# ---- the same as one line after another ----


@dataclass(frozen=True)
class Scene:
    world: World
    finance: Principal  # the penvoerder's finance: records allocations
    horizon: Principal  # Horizon's finance, as its API token: posts the lines


async def _scene(rt: Runtime) -> Scene:
    w = await build(rt)
    # Altra is a kassier too: Horizon delivers under Altra's allocations in July and August.
    await add_tariff(rt, w.region.altra, 13_000, D(2026, 1, 1))
    finance = principal(w.region.finance)
    async with rt.unit_of_work(finance) as uow:
        await add_agreement(
            uow,
            SubProviderAgreement(
                w.region.altra.id,
                w.region.horizon.id,
                Margin(MarginKind.PERCENT, 500),
                D(2026, 7, 1),
                D(2026, 8, 31),
            ),
        )
    return Scene(w, finance, principal(w.region.other_finance))


_numbers = itertools.count(1)


async def _allocations(rt: Runtime, s: Scene) -> str:
    """Fresh allocations near whose limits the lines land; returns their prefix."""
    prefix = f"B{next(_numbers)}"
    w, altra = s.world, s.world.region.altra.id
    async with rt.unit_of_work(s.finance) as uow:
        # 20 hours a month.
        await add_allocation(uow, allocation(w, number=f"{prefix}-M"))
        # 3 hours a week (pro rata per month) and € 2.500 in all: both limits at once.
        await add_allocation(
            uow,
            allocation(
                w, number=f"{prefix}-W", volume=3, frequency=Frequency.WEEK, budget_cents=250_000
            ),
        )
        # Only a budget: € 3.000 for category 45.
        await add_allocation(
            uow,
            allocation(
                w,
                number=f"{prefix}-G",
                variant=Variant.ASPECIFIC,
                product_code=None,
                volume=None,
                unit=None,
                frequency=None,
                budget_cents=300_000,
            ),
        )
        # Altra's, 25 hours in total: Horizon may deliver under it in July and August only.
        await add_allocation(
            uow,
            allocation(w, number=f"{prefix}-K", provider_id=altra, volume=25,
                       frequency=Frequency.TOTAL),
        )  # fmt: skip
    return prefix


Line = dict[str, Any]
Lines = tuple[list[Line], list[tuple[Line, tuple[int, bool] | None]]]


@st.composite
def _line(draw: st.DrawFn, tidy: bool) -> Line:
    """A line; ``tidy``: one that only the limits (volume, budget) can refuse."""
    month = draw(st.integers(7, 9) if tidy else st.integers(6, 10))  # allocations end 30-9
    start = D(2026, month, draw(st.integers(1, 28)))
    days = draw(st.integers(0, 9))  # may run into the next month
    end = start + dt.timedelta(days=days)
    if tidy:
        end = min(end, D(2026, month, 28))
    numbers = ["M", "M", "M", "W", "W", "G"] if tidy else ["M", "M", "W", "G", "K", "NONE"]
    codes = ["45A52"] if tidy else ["45A52", "45A52", "45A52", "45A53"]
    return {
        "allocation": draw(st.sampled_from(numbers)),
        "product_code": draw(st.sampled_from(codes)),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "volume": draw(st.integers(1, 12) if tidy else st.integers(0, 12) | st.integers(1, 4)),
    }


_again = st.tuples(st.integers(0, 5), st.booleans())


@st.composite
def _lines(draw: st.DrawFn) -> Lines:
    """Lines posted before, and a batch: of new lines, or of the reference of a line posted
    before (with that line's own content, a retry; or with other content, a mistake)."""
    tidy = draw(st.booleans())
    before = draw(st.lists(_line(tidy), max_size=6))
    batch = draw(
        st.lists(
            st.tuples(_line(tidy), st.sampled_from([None, None, None]) | _again),
            min_size=6 if tidy else 1,
            max_size=16,
        )
    )
    return before, batch


def _line_in(prefix: str, reference: str, x: Line) -> LineIn:
    number = "NOPE-1" if x["allocation"] == "NONE" else f"{prefix}-{x['allocation']}"
    return LineIn(reference, number, x["product_code"], x["start"], x["end"], x["volume"])


class _Undo(Exception):
    pass


Result = tuple[list[tuple[Any, ...]], list[LineProblem], list[str]]


def _comparable(outcomes: list[LineOutcome]) -> list[tuple[Any, ...]]:
    # A new line's id is the database's; a known one keeps the id it had.
    return [
        (o.index, o.reference, o.created, None if o.created else o.delivery_id,
         o.allocation_number, o.product_code, o.start, o.end, o.volume)
        for o in outcomes
    ]  # fmt: skip


async def _audited(db: AsyncSession, since: int) -> list[str]:
    """The audit rows of new lines since ``since``, without the database's ids."""
    details = await db.scalars(
        select(AuditEntry.detail)
        .where(AuditEntry.action == "settlement.delivery.add", AuditEntry.seq > since)
        .order_by(AuditEntry.seq)
    )
    return [re.sub(r"delivery=\d+ ", "", d) for d in details]


async def _last_seq(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.max(AuditEntry.seq))) or 0


async def _one_by_one(rt: Runtime, who: Principal, lines: list[LineIn]) -> Result:
    """Each line posted on its own, in order, in one transaction that is then undone."""
    since = await _last_seq(rt)
    outcomes: list[LineOutcome] = []
    problems: list[LineProblem] = []
    audited: list[str] = []
    with pytest.raises(_Undo):
        async with rt.unit_of_work(who) as uow:
            for index, line in enumerate(lines):
                try:
                    (out,) = await record_deliveries(uow, [line])
                    outcomes.append(replace(out, index=index))
                except BatchRefused as refused:
                    problems.extend(replace(p, index=index) for p in refused.problems)
            audited = await _audited(uow.db, since)
            raise _Undo
    if problems:  # the whole batch is refused: nothing of it stays
        return [], problems, []
    return _comparable(outcomes), problems, audited


async def _as_batch(rt: Runtime, who: Principal, lines: list[LineIn]) -> Result:
    since = await _last_seq(rt)
    try:
        async with rt.unit_of_work(who) as uow:
            outcomes = await record_deliveries(uow, lines)
    except BatchRefused as refused:
        outcomes, problems = [], refused.problems
    else:
        problems = []
    async with rt.sessionmaker() as db:
        return _comparable(outcomes), problems, await _audited(db, since)


async def _deliveries(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(DeliveryRow)) or 0


async def _example(
    settings: Settings,
    s: Scene,
    before: list[Line],
    batch: list[tuple[Line, tuple[int, bool] | None]],
) -> None:
    rt = Runtime.build(settings, pool=False)
    try:
        prefix = await _allocations(rt, s)
        # Lines posted earlier, each on its own (those accepted stay).
        earlier = [_line_in(prefix, f"{prefix}.p{i}", x) for i, x in enumerate(before)]
        for line in earlier:
            try:
                async with rt.unit_of_work(s.horizon) as uow:
                    await record_deliveries(uow, [line])
            except BatchRefused:
                pass
        lines: list[LineIn] = []
        for i, (x, again) in enumerate(batch):
            # (The same reference twice in one batch is refused before any rule is looked at.)
            if again is not None and again[0] < len(earlier):
                old = earlier[again[0]]
                if all(line.reference != old.reference for line in lines):
                    lines.append(old if again[1] else _line_in(prefix, old.reference, x))
                    continue
            lines.append(_line_in(prefix, f"{prefix}.m{i}", x))
        expected = await _one_by_one(rt, s.horizon, lines)
        count = await _deliveries(rt)
        got = await _as_batch(rt, s.horizon, lines)
        assert got == expected
        created = sum(1 for o in expected[0] if o[2])
        assert await _deliveries(rt) == count + (0 if expected[1] else created)
    finally:
        await rt.engine.dispose()


def test_a_batch_ends_as_its_lines_one_after_another(settings: Settings) -> None:
    async def setup() -> Scene:
        rt = Runtime.build(settings, pool=False)
        try:
            return await _scene(rt)
        finally:
            await rt.engine.dispose()

    scene = asyncio.run(setup())

    @given(_lines())
    @hypothesis_settings(
        max_examples=40,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    def check(lines: Lines) -> None:
        asyncio.run(_example(settings, scene, *lines))

    check()


# ---- each allocation's lines read once ----


@contextmanager
def _statements(rt: Runtime) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(rt.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", count)


def _days(number: str, n: int, first: int = 0) -> list[LineIn]:
    """``n`` one-hour lines on days of July to September, one reference each."""
    out = []
    for i in range(first, first + n):
        day = (D(2026, 7, 1) + dt.timedelta(days=i % 92)).isoformat()
        out.append(LineIn(f"{number}.{i}", number, "45A52", day, day, 1))
    return out


@pytest.mark.anyio
@pytest.mark.parametrize("spread", [False, True], ids=["one-allocation", "five-allocations"])
async def test_a_batch_reads_each_allocation_once_however_many_lines(
    runtime: Runtime, spread: bool
) -> None:
    w = await build(runtime)
    numbers = [f"T-{i}" for i in range(5)]
    async with runtime.unit_of_work(principal(w.region.finance)) as uow:
        for number in numbers:
            await add_allocation(uow, allocation(w, number=number, volume=1_000))
    who = principal(w.region.other_finance)  # Horizon's finance, as its API token

    async def statements(lines: list[LineIn]) -> int:
        with _statements(runtime) as seen:
            async with runtime.unit_of_work(who) as uow:
                await record_deliveries(uow, lines)
        # Not counted: the audit log's own rows (platform.audit), which SQLAlchemy writes one
        # statement each on SQLite, whose driver cannot hand back new ids in row order.
        return sum(1 for sql in seen if not sql.startswith("INSERT INTO audit_entry"))

    def batch(n: int, first: int) -> list[LineIn]:
        if not spread:
            return _days(numbers[0], n, first)
        return [x for number in numbers for x in _days(number, n // 5, first)]

    # Earlier lines under the allocations, then a small batch and a ten times larger one.
    await statements(batch(20, 0))
    small = await statements(batch(5, 100))
    large = await statements(batch(50, 200))
    assert large == small
    assert await _deliveries(runtime) == 75
