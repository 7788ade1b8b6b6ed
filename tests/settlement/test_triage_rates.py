"""The penvoerder's finance staff keep the triage-team rates and budgets as data: the
triage-hours page and the monitor read them, a new rate applies from its date, a closed
quarter keeps its price, and the page is theirs alone (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from keerpunt.platform.errors import InvalidInput, NotFound
from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.migrate import upgrade
from keerpunt.platform.models import AuditEntry, Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.models import DisciplineRateRow, SettlementRun, TriageBudgetRow
from keerpunt.settlement.monitor_service import monitor_report, triage_hours_page
from keerpunt.settlement.rules import Quarter, quarter_of
from keerpunt.settlement.triage_hours import (
    PILOT_RATES,
    RATE_IN_CLOSED,
    BudgetDraft,
    DisciplineRate,
)
from keerpunt.settlement.triage_rates import (
    add_discipline_rate,
    budget_of,
    load_pilot_values,
    rates_of,
    remove_discipline_rate,
    set_triage_budget,
)
from keerpunt.triage.models import TriageSession
from tests.helpers import login, make_org, make_user
from tests.settlement.factories import Region, build_region
from tests.settlement.test_monitor_service import _closed_meeting, _finance
from tests.settlement.test_routes import text_of

pytestmark = pytest.mark.anyio

D = dt.date


async def _session_day(rt: Runtime) -> dt.date:
    async with rt.sessionmaker() as db:
        at = await db.scalar(select(TriageSession.scheduled_at))
    assert at is not None
    day: dt.date = at.astimezone(AMSTERDAM).date()
    return day


async def _hours(rt: Runtime, finance: User, quarter: Quarter) -> list[tuple[str, int | None, int]]:
    async with rt.unit_of_work(staff_principal(finance)) as uow:
        page = await triage_hours_page(uow, quarter)
    return [
        (d.discipline, d.cents_per_hour, d.amount_cents)
        for p in page.hours.providers
        for d in p.disciplines
    ]


async def _close(rt: Runtime, quarter: Quarter) -> None:
    async with rt.sessionmaker() as db, db.begin():
        db.add(
            SettlementRun(
                quarter=quarter.code,
                line_count=0,
                rejected_count=0,
                total_cents=0,
                digest="0" * 64,
            )
        )


# ---- the figures read the database ----


async def test_a_new_rate_prices_hours_from_its_date_on(runtime: Runtime) -> None:
    await _closed_meeting(runtime, {"Ruud Regie": "4", "Sanne Systeem": "2,5"})
    finance = await _finance(runtime)
    day = await _session_day(runtime)
    quarter = quarter_of(day)
    before = await _hours(runtime, finance, quarter)
    assert before == [("systeembehandelaar", 120_00, 300_00), ("regiebehandelaar", 140_00, 560_00)]

    # from the day after the meeting: the meeting keeps the old rate
    async with runtime.unit_of_work(staff_principal(finance)) as uow:
        await add_discipline_rate(
            uow, DisciplineRate("regiebehandelaar", 150_00, day + dt.timedelta(days=1))
        )
    assert await _hours(runtime, finance, quarter) == before

    # the systeembehandelaar's new rate from the meeting's own day applies to it
    async with runtime.unit_of_work(staff_principal(finance)) as uow:
        await add_discipline_rate(uow, DisciplineRate("systeembehandelaar", 130_00, day))
        rates = await rates_of(uow.db, "IJsselland")
    assert await _hours(runtime, finance, quarter) == [
        ("systeembehandelaar", 130_00, 325_00),
        ("regiebehandelaar", 140_00, 560_00),
    ]
    regie = [
        (r.cents_per_hour, r.valid_from, r.valid_to)
        for r in rates
        if r.discipline == "regiebehandelaar"
    ]
    assert regie == [
        (140_00, D(2023, 1, 1), day),  # the running rate ended the day before
        (150_00, day + dt.timedelta(days=1), None),
    ]


async def test_a_closed_quarter_keeps_its_figures(runtime: Runtime) -> None:
    await _closed_meeting(runtime, {"Ruud Regie": "4", "Sanne Systeem": "2,5"})
    finance = await _finance(runtime)
    quarter = quarter_of(await _session_day(runtime))
    await _close(runtime, quarter)
    before = await _hours(runtime, finance, quarter)

    with pytest.raises(InvalidInput) as exc:
        async with runtime.unit_of_work(staff_principal(finance)) as uow:
            await add_discipline_rate(
                uow, DisciplineRate("regiebehandelaar", 150_00, quarter.start)
            )
    assert exc.value.errors == {"valid_from": RATE_IN_CLOSED}
    # from the first day after the closed quarter it may, and the closed quarter stays
    async with runtime.unit_of_work(staff_principal(finance)) as uow:
        await add_discipline_rate(
            uow, DisciplineRate("regiebehandelaar", 150_00, quarter.next.start)
        )
    assert await _hours(runtime, finance, quarter) == before


async def test_the_budget_of_a_new_year_and_region(runtime: Runtime) -> None:
    """A penvoerder outside IJsselland, and a year after the pilot, without a developer."""
    region = await build_region(runtime)
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(
            update(Organisation)
            .where(Organisation.id == region.penvoerder.id)
            .values(region="Rijnmond")
        )
        await load_pilot_values(db, "IJsselland")
    gemeente = await make_org(
        runtime, "Gemeente Rotterdam", kind="municipality", cbs_code="0599", region="Rijnmond"
    )
    funder = await make_user(runtime, gemeente, "Gert Gemeente", "funder")
    q = Quarter.of(2028, 1)
    async with runtime.unit_of_work(staff_principal(region.finance)) as uow:
        assert (await triage_hours_page(uow, q)).budget.budget_cents is None
        await set_triage_budget(uow, BudgetDraft(2028, 95_000_00))
    async with runtime.unit_of_work(staff_principal(region.finance)) as uow:
        await set_triage_budget(uow, BudgetDraft(2028, 97_500_00))  # changed
        assert (await triage_hours_page(uow, q)).budget.budget_cents == 97_500_00
        assert (await budget_of(uow.db, "IJsselland", 2028)) is None  # IJsselland's untouched
    async with runtime.unit_of_work(staff_principal(funder)) as uow:
        assert (await monitor_report(uow, q)).budget.budget_cents == 97_500_00
    async with runtime.sessionmaker() as db:
        rows = (await db.scalars(select(TriageBudgetRow).order_by(TriageBudgetRow.id))).all()
        audit = (
            await db.scalars(
                select(AuditEntry.detail)
                .where(AuditEntry.action == "settlement.triage_budget.set")
                .order_by(AuditEntry.id)
            )
        ).all()
    assert [(r.region, r.year, r.cents) for r in rows if r.region == "Rijnmond"] == [
        ("Rijnmond", 2028, 97_500_00)
    ]
    assert audit == ["year=2028 cents=9500000 was=", "year=2028 cents=9750000 was=9500000"]


async def test_a_wholly_closed_years_budget_stands(runtime: Runtime) -> None:
    region = await build_region(runtime)
    await _close(runtime, Quarter.of(2026, 4))
    with pytest.raises(InvalidInput):
        async with runtime.unit_of_work(staff_principal(region.finance)) as uow:
            await set_triage_budget(uow, BudgetDraft(2026, 1_00))
    async with runtime.unit_of_work(staff_principal(region.finance)) as uow:
        await set_triage_budget(uow, BudgetDraft(2027, 1_00))


# ---- the page ----

FORM = {"discipline": "regiebehandelaar", "rate": "145,50", "valid_from": "2027-01-01"}


async def _as_finance(client: httpx.AsyncClient, rt: Runtime) -> tuple[Region, str]:
    region = await build_region(rt)
    async with rt.sessionmaker() as db, db.begin():
        await db.execute(
            update(Organisation)
            .where(Organisation.id == region.penvoerder.id)
            .values(region="IJsselland")
        )
        await load_pilot_values(db, "IJsselland")
    return region, await login(client, rt, user_id=region.finance.id)


async def _rows(rt: Runtime) -> list[tuple[str, int, dt.date, dt.date | None]]:
    async with rt.sessionmaker() as db:
        rows = await db.scalars(select(DisciplineRateRow).order_by(DisciplineRateRow.id))
        return [(r.discipline, r.cents_per_hour, r.valid_from, r.valid_to) for r in rows]


async def _audit(rt: Runtime, action: str) -> list[str]:
    async with rt.sessionmaker() as db:
        return list(
            (
                await db.scalars(
                    select(AuditEntry.detail)
                    .where(AuditEntry.action == action)
                    .order_by(AuditEntry.id)
                )
            ).all()
        )


async def test_finance_lists_and_adds_a_rate(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _region, csrf = await _as_finance(client, runtime)
    home = await client.get("/settlement/triage-hours")
    assert 'href="http://testserver/settlement/triage-rates"' in home.text  # menu and link
    r = await client.get("/settlement/triage-rates")
    assert r.status_code == 200
    page = text_of(r.text)
    assert "Regio: IJsselland." in page
    assert "regiebehandelaar € 140,00 1 januari 2023 geen einddatum" in page
    assert "2027 € 110.000,00" in page

    r = await client.post(
        "/settlement/triage-rates/rate", data=FORM, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 303
    r = await client.get(r.headers["location"])
    page = text_of(r.text)
    assert "Het nieuwe tarief is opgeslagen." in page
    assert "regiebehandelaar € 140,00 1 januari 2023 31 december 2026" in page
    assert "regiebehandelaar € 145,50 1 januari 2027 geen einddatum" in page
    rows = await _rows(runtime)
    assert ("regiebehandelaar", 145_50, D(2027, 1, 1), None) in rows
    [detail] = await _audit(runtime, "settlement.triage_rate.add")
    assert "discipline=regiebehandelaar cents=14550 from=2027-01-01 to=" in detail
    assert "ended=" in detail


async def test_htmx_gets_the_fragment_and_a_budget_is_set(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _region, csrf = await _as_finance(client, runtime)
    r = await client.post(
        "/settlement/triage-rates/budget",
        data={"year": "2028", "budget": "112.500,00"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 200
    assert '<div id="kp-triage-rates">' in r.text and "<html" not in r.text
    page = text_of(r.text)
    assert "Het budget is opgeslagen." in page and "2028 € 112.500,00" in page
    assert await _audit(runtime, "settlement.triage_budget.set") == [
        "year=2028 cents=11250000 was="
    ]


async def test_bad_input_is_explained_and_nothing_is_saved(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _region, csrf = await _as_finance(client, runtime)
    before = await _rows(runtime)
    r = await client.post(
        "/settlement/triage-rates/rate",
        data={"discipline": "regiebehandelaar", "rate": "-10", "valid_from": "31-02-2027"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422
    assert "Een bedrag kan niet negatief zijn." in r.text
    assert "Vul een datum in, bijvoorbeeld 1-1-2026." in r.text
    assert 'value="-10"' in r.text  # what was typed stays
    assert 'aria-describedby="kp-rate-hint kp-rate-error"' in r.text
    # overlapping: a rate that starts the same day as the running one
    r = await client.post(
        "/settlement/triage-rates/rate",
        data={**FORM, "valid_from": "2023-01-01"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422
    assert "Er is al een tarief voor deze discipline in deze periode." in r.text
    r = await client.post(
        "/settlement/triage-rates/budget",
        data={"year": "volgend jaar", "budget": "veel"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422
    assert "Vul een jaartal in, bijvoorbeeld 2028." in r.text
    assert await _rows(runtime) == before
    assert await _audit(runtime, "settlement.triage_rate.add") == []


async def test_posts_need_the_csrf_token(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _region, _csrf = await _as_finance(client, runtime)
    before = await _rows(runtime)
    for url, data in (
        ("/settlement/triage-rates/rate", FORM),
        ("/settlement/triage-rates/budget", {"year": "2028", "budget": "1"}),
    ):
        assert (await client.post(url, data=data)).status_code == 403
        r = await client.post(url, data=data, headers={"X-CSRF-Token": "not-the-token"})
        assert r.status_code == 403
    assert await _rows(runtime) == before
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(TriageBudgetRow).where(TriageBudgetRow.year == 2028)) is None


async def test_only_finance_of_the_penvoerder(client: httpx.AsyncClient, runtime: Runtime) -> None:
    region, _csrf = await _as_finance(client, runtime)
    client.cookies.clear()
    assert (await client.get("/settlement/triage-rates")).status_code == 303  # to log in
    before = await _rows(runtime)
    for user in (region.coordinator, region.other_finance):
        csrf = await login(client, runtime, user_id=user.id)
        r = await client.get("/settlement/triage-rates")
        assert r.status_code == 403 and "€ 140,00" not in r.text
        for url, data in (
            ("/settlement/triage-rates/rate", FORM),
            ("/settlement/triage-rates/budget", {"year": "2028", "budget": "1"}),
        ):
            r = await client.post(url, data=data, headers={"X-CSRF-Token": csrf})
            assert r.status_code == 403
    assert await _rows(runtime) == before
    assert await _audit(runtime, "settlement.triage_budget.set") == []


# ---- the migration seeds what the constants were ----


def test_the_migration_seeds_the_pilot_values_for_existing_penvoerders(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'seed.db'}"
    upgrade(url, "faa57f59db60")

    def run(statements: list[str]) -> list[tuple[object, ...]]:
        import asyncio

        async def go() -> list[tuple[object, ...]]:
            engine = create_async_engine(url)
            out: list[tuple[object, ...]] = []
            async with engine.begin() as conn:
                for s in statements:
                    result = await conn.execute(sa.text(s))
                    if result.returns_rows:
                        out += [tuple(r) for r in result]
            await engine.dispose()
            return out

        return asyncio.run(go())

    run(
        [
            "INSERT INTO organisation (name, kind, is_penvoerder, region) "
            "VALUES ('Pactum', 'provider', 1, 'ijsselland ')",
            "INSERT INTO organisation (name, kind, is_penvoerder, region) "
            "VALUES ('Elders', 'provider', 1, NULL)",
            "INSERT INTO organisation (name, kind, is_penvoerder, region) "
            "VALUES ('Horizon', 'provider', 0, 'Twente')",
        ]
    )
    upgrade(url)
    rates = run(
        ["SELECT region, discipline, cents_per_hour, valid_from, valid_to FROM discipline_rate"]
    )
    budgets = run(["SELECT region, year, cents FROM triage_budget"])
    pilot = {(r.discipline, r.cents_per_hour, str(r.valid_from), None) for r in PILOT_RATES}
    by_region: dict[object, set[tuple[object, ...]]] = {}
    for region, *rest in rates:
        by_region.setdefault(region, set()).add(tuple(rest))
    # every penvoerder keeps its prices (the constant priced them all), Twente is no penvoerder
    assert by_region == {"": pilot, "IJsselland": pilot, "ijsselland": pilot}
    assert sorted(budgets) == sorted(
        (region, year, 110_000_00)
        for region in ("IJsselland", "ijsselland")
        for year in range(2023, 2028)
    )


async def test_a_wrong_rate_is_removed_until_its_quarter_is_closed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    region, csrf = await _as_finance(client, runtime)
    headers = {"X-CSRF-Token": csrf}
    await client.post(
        "/settlement/triage-rates/rate", data={**FORM, "rate": "1455,00"}, headers=headers
    )
    async with runtime.sessionmaker() as db:
        typo = await db.scalar(
            select(DisciplineRateRow).where(DisciplineRateRow.cents_per_hour == 1455_00)
        )
        first = await db.scalar(
            select(DisciplineRateRow).where(
                DisciplineRateRow.valid_from == D(2023, 1, 1),
                DisciplineRateRow.discipline == "regiebehandelaar",
            )
        )
    assert typo is not None and first is not None
    page = (await client.get("/settlement/triage-rates")).text
    assert f'action="http://testserver/settlement/triage-rates/{typo.id}/remove"' in page
    assert "Tarief van regiebehandelaar vanaf 1 januari 2027 weghalen" in page

    # without the CSRF token, or as someone else: nothing happens
    url = f"/settlement/triage-rates/{typo.id}/remove"
    assert (await client.post(url)).status_code == 403
    other = await login(client, runtime, user_id=region.other_finance.id)
    assert (await client.post(url, headers={"X-CSRF-Token": other})).status_code == 403
    csrf = await login(client, runtime, user_id=region.finance.id)
    headers = {"X-CSRF-Token": csrf}
    assert (
        await client.post("/settlement/triage-rates/99999/remove", headers=headers)
    ).status_code == 404

    r = await client.post(url, headers={**headers, "HX-Request": "true"})
    assert r.status_code == 200
    page = text_of(r.text)
    assert "Het tarief is weggehaald." in page
    assert "regiebehandelaar € 140,00 1 januari 2023 geen einddatum" in page  # runs on
    assert "€ 1.455,00" not in page
    [detail] = await _audit(runtime, "settlement.triage_rate.remove")
    assert detail == (
        f"rate={typo.id} discipline=regiebehandelaar cents=145500 from=2027-01-01 to= "
        f"runs_on={first.id}"
    )

    # a rate that holds in a closed quarter stays
    await _close(runtime, Quarter.of(2026, 3))
    r = await client.post(f"/settlement/triage-rates/{first.id}/remove", headers=headers)
    assert r.status_code == 422
    assert "Dit tarief geldt in een kwartaal dat al is afgesloten. Het kan niet meer weg." in r.text
    assert f'action="http://testserver/settlement/triage-rates/{first.id}/remove"' not in r.text
    assert ("regiebehandelaar", 140_00, D(2023, 1, 1), None) in await _rows(runtime)


async def test_a_rate_of_another_region_is_not_found(runtime: Runtime) -> None:
    region = await build_region(runtime)  # the penvoerder has no region
    async with runtime.sessionmaker() as db, db.begin():
        await load_pilot_values(db, "IJsselland")
    ijsselland = (await _rows(runtime))[0]
    async with runtime.sessionmaker() as db:
        rate_id = await db.scalar(select(DisciplineRateRow.id).order_by(DisciplineRateRow.id))
    assert rate_id is not None
    with pytest.raises(NotFound):
        async with runtime.unit_of_work(staff_principal(region.finance)) as uow:
            await remove_discipline_rate(uow, rate_id)
    assert (await _rows(runtime))[0] == ijsselland
