"""Settlement services on the real database: contracts and the quarter overview."""

from __future__ import annotations

import datetime as dt
from dataclasses import fields

import pytest
from sqlalchemy import func, select

from keerpunt.platform.errors import InvalidInput, NotAllowed, NotFound
from keerpunt.platform.models import AuditEntry
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.models import Contract
from keerpunt.settlement.service import (
    ContractDraft,
    OverviewLine,
    ProblemKind,
    add_contract,
    end_contract,
    list_contracts,
    parse_quarter,
    provider_choices,
    quarter_overview,
)
from tests.settlement.factories import (
    Region,
    add_arrangement,
    add_tariff,
    build_region,
    principal,
)

pytestmark = pytest.mark.anyio

D = dt.date
Q3 = parse_quarter("2026Q3")


def draft(provider_id: int, **changes: object) -> ContractDraft:
    values: dict[str, object] = dict(
        provider_id=provider_id,
        product_category="45",
        product_code="45A52",
        description="Ambulante jeugdhulp",
        unit="04",
        tariff_cents=12_000,
        valid_from=D(2026, 1, 1),
        valid_to=D(2026, 12, 31),
    )
    values.update(changes)
    return ContractDraft(**values)  # type: ignore[arg-type]


async def contract_count(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(Contract)) or 0


async def test_finance_of_the_penvoerder_adds_and_lists_contracts(runtime: Runtime) -> None:
    region = await build_region(runtime)
    async with runtime.unit_of_work(principal(region.finance)) as uow:
        row = await add_contract(uow, draft(region.horizon.id))
        # indexation: a new row starting the day after the old one ends
        await add_contract(
            uow,
            draft(region.horizon.id, tariff_cents=12_600, valid_from=D(2027, 1, 1), valid_to=None),
        )
    assert (row.provider_name, row.tariff_cents) == ("Horizon", 12_000)

    async with runtime.unit_of_work(principal(region.finance)) as uow:
        rows = await list_contracts(uow)
        providers = await provider_choices(uow)
    assert [(r.tariff_cents, r.valid_from, r.valid_to) for r in rows] == [
        (12_000, D(2026, 1, 1), D(2026, 12, 31)),
        (12_600, D(2027, 1, 1), None),
    ]
    assert [p.name for p in providers] == ["Altra", "Horizon", "Pactum"]

    async with runtime.sessionmaker() as db:
        entries = (await db.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    assert [e.action for e in entries] == ["settlement.contract.add"] * 2
    assert entries[0].actor == f"user:{region.finance.id}"
    assert "tariff_cents=12000" in entries[0].detail


@pytest.mark.parametrize(
    ("valid_from", "valid_to"),
    [
        (D(2026, 12, 31), None),  # shares the last day
        (D(2025, 1, 1), D(2026, 1, 1)),  # shares the first day
        (D(2026, 5, 1), D(2026, 5, 31)),  # inside
        (D(2020, 1, 1), None),  # around it
    ],
)
async def test_overlapping_tariff_is_refused_and_nothing_saved(
    runtime: Runtime, valid_from: dt.date, valid_to: dt.date | None
) -> None:
    region = await build_region(runtime)
    async with runtime.unit_of_work(principal(region.finance)) as uow:
        await add_contract(uow, draft(region.horizon.id))
    with pytest.raises(InvalidInput) as info:
        async with runtime.unit_of_work(principal(region.finance)) as uow:
            await add_contract(
                uow, draft(region.horizon.id, valid_from=valid_from, valid_to=valid_to)
            )
    assert set(info.value.errors) == {"valid_from"}
    assert await contract_count(runtime) == 1


async def test_same_period_for_another_product_or_provider_is_fine(runtime: Runtime) -> None:
    region = await build_region(runtime)
    async with runtime.unit_of_work(principal(region.finance)) as uow:
        await add_contract(uow, draft(region.horizon.id))
        await add_contract(uow, draft(region.horizon.id, product_code="45A53"))
        await add_contract(uow, draft(region.altra.id))
    assert await contract_count(runtime) == 3


async def test_contract_only_for_a_provider(runtime: Runtime) -> None:
    region = await build_region(runtime)
    with pytest.raises(InvalidInput) as info:
        async with runtime.unit_of_work(principal(region.finance)) as uow:
            await add_contract(uow, draft(region.wijkteam.id))
    assert set(info.value.errors) == {"provider_id"}
    with pytest.raises(InvalidInput):
        async with runtime.unit_of_work(principal(region.finance)) as uow:
            await add_contract(uow, draft(999_999))
    assert await contract_count(runtime) == 0


async def test_service_checks_the_draft_itself(runtime: Runtime) -> None:
    region = await build_region(runtime)
    with pytest.raises(InvalidInput) as info:
        async with runtime.unit_of_work(principal(region.finance)) as uow:
            await add_contract(uow, draft(region.horizon.id, unit="99", tariff_cents=-1))
    assert set(info.value.errors) == {"unit", "tariff"}


@pytest.mark.parametrize("who", ["coordinator", "other_finance"])
async def test_only_finance_of_the_penvoerder(runtime: Runtime, who: str) -> None:
    region = await build_region(runtime)
    viewer = principal(getattr(region, who))
    for call in (
        lambda uow: add_contract(uow, draft(region.horizon.id)),
        list_contracts,
        provider_choices,
        lambda uow: quarter_overview(uow, Q3),
        lambda uow: end_contract(uow, 1, D(2026, 1, 1)),
    ):
        with pytest.raises(NotAllowed):
            async with runtime.unit_of_work(viewer) as uow:
                await call(uow)
    assert await contract_count(runtime) == 0


async def make_quarter(runtime: Runtime, region: Region) -> dict[str, str]:
    """Q3 2026: Horizon's tariff is indexed on 16 August; Altra has no tariff for July."""
    await add_tariff(runtime, region.horizon, 10_000, D(2025, 1, 1), D(2026, 8, 15))
    await add_tariff(runtime, region.horizon, 10_500, D(2026, 8, 16))
    await add_tariff(runtime, region.altra, 9_000, D(2026, 8, 1))
    await add_tariff(runtime, region.altra, 25_000, D(2026, 1, 1), product_code="43A01", unit="14")
    reg = region.coordinator
    return {
        "a": await add_arrangement(
            runtime, reg, [(region.horizon, "45A52", 120, D(2026, 5, 1), D(2027, 1, 31))]
        ),
        "b": await add_arrangement(
            runtime,
            reg,
            [
                (region.altra, "45A52", 60, D(2026, 7, 1), D(2026, 9, 30)),
                (region.altra, "43A01", 60, D(2026, 9, 1), D(2026, 9, 30)),
            ],
        ),
        "open": await add_arrangement(
            runtime,
            reg,
            [(region.horizon, "45A52", 600, D(2026, 7, 1), D(2026, 9, 30))],
            status="open",
        ),
        "before": await add_arrangement(
            runtime, reg, [(region.horizon, "45A52", 600, D(2026, 1, 1), D(2026, 6, 30))]
        ),
    }


async def test_quarter_overview_prices_closed_arrangements(runtime: Runtime) -> None:
    region = await build_region(runtime)
    cases = await make_quarter(runtime, region)
    async with runtime.unit_of_work(principal(region.finance)) as uow:
        overview = await quarter_overview(uow, Q3)

    altra, horizon = overview.providers
    assert (horizon.provider.name, horizon.provider.agb_code) == ("Horizon", "98000011")
    # only the closed session's line inside the quarter; the open one is not fixed yet
    assert [line.case_pseudonym for line in horizon.lines] == [cases["a"]]
    a = horizon.lines[0]
    assert a.days == 92
    assert [(p.tariff_cents, p.days) for p in a.parts] == [(10_000, 46), (10_500, 46)]
    # 2 hours a week: 92/7 × (€ 100 + € 105) = 269428.57 cents, rounded once
    assert a.amount_cents == 269_429
    assert horizon.total_cents == 269_429

    # 1 hour a week, only August and September priced: 61/7 × € 90 = 78428.57 cents
    assert [(line.product_code, line.amount_cents) for line in altra.lines] == [
        ("43A01", 0),
        ("45A52", 78_429),
    ]
    assert altra.total_cents == 78_429
    assert overview.total_cents == 269_429 + 78_429

    problems = [
        (p.kind, p.case_pseudonym, p.product_code, p.start, p.end) for p in overview.problems
    ]
    assert sorted(problems) == [
        (ProblemKind.NO_CONTRACT, cases["b"], "45A52", D(2026, 7, 1), D(2026, 7, 31)),
        (ProblemKind.UNIT, cases["b"], "43A01", D(2026, 9, 1), D(2026, 9, 30)),
    ]


async def test_overview_lines_hold_no_personal_data() -> None:
    names = {f.name for f in fields(OverviewLine)}
    assert "case_pseudonym" in names
    assert not names & {"case_id", "youth_name", "birth_date", "bsn", "situation"}


async def test_empty_quarter(runtime: Runtime) -> None:
    region = await build_region(runtime)
    async with runtime.unit_of_work(principal(region.finance)) as uow:
        overview = await quarter_overview(uow, parse_quarter("2030Q1"))
    assert (overview.providers, overview.problems, overview.total_cents) == ((), (), 0)


async def test_end_an_open_tariff_then_index_it(runtime: Runtime) -> None:
    region = await build_region(runtime)
    who = principal(region.finance)
    async with runtime.unit_of_work(who) as uow:
        old = await add_contract(uow, draft(region.horizon.id, valid_to=None))
    async with runtime.unit_of_work(who) as uow:
        ended = await end_contract(uow, old.id, D(2026, 12, 31))
        await add_contract(uow, draft(region.horizon.id, valid_from=D(2027, 1, 1), valid_to=None))
    assert ended.valid_to == D(2026, 12, 31)
    async with runtime.sessionmaker() as db:
        actions = (await db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))).all()
    assert actions == [
        "settlement.contract.add",
        "settlement.contract.end",
        "settlement.contract.add",
    ]


@pytest.mark.parametrize(
    ("valid_to", "field"),
    [(D(2025, 12, 31), "valid_to"), (D(2027, 1, 1), "valid_to")],
)
async def test_end_date_is_checked(runtime: Runtime, valid_to: dt.date, field: str) -> None:
    region = await build_region(runtime)
    who = principal(region.finance)
    async with runtime.unit_of_work(who) as uow:
        first = await add_contract(uow, draft(region.horizon.id))
        await add_contract(uow, draft(region.horizon.id, valid_from=D(2027, 1, 1), valid_to=None))
    with pytest.raises(InvalidInput) as info:
        async with runtime.unit_of_work(who) as uow:
            await end_contract(uow, first.id, valid_to)  # before its start / into the next
    assert set(info.value.errors) == {field}


async def test_end_unknown_contract(runtime: Runtime) -> None:
    region = await build_region(runtime)
    with pytest.raises(NotFound):
        async with runtime.unit_of_work(principal(region.finance)) as uow:
            await end_contract(uow, 424242, D(2026, 1, 1))
