"""A closed quarter is never rewritten, also not by the kassier's agreements: the margin of
every line is worked out once when the quarter closes and stored with the run. Changing or
ending an agreement afterwards changes nothing of that quarter: not the statement (page, PDF,
CSV), not the kassier page, not the payment batch."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import delete, select, update

from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.declaration import Margin, MarginKind, SubProviderAgreement
from keerpunt.settlement.kassier_run import kassier_page, kassier_quarters
from keerpunt.settlement.models import Delivery, SettlementRun, SettlementRunLine
from keerpunt.settlement.models import SubProviderAgreement as AgreementRow
from keerpunt.settlement.service import add_agreement, close_quarter, parse_quarter
from tests.helpers import login
from tests.settlement.factories import principal
from tests.settlement.test_delivery_routes import with_allocation
from tests.settlement.test_kassier_run import build_kassier, close
from tests.settlement.test_records import enter, line
from tests.settlement.test_routes import text_of

pytestmark = pytest.mark.anyio

D = dt.date
Q3, Q4 = parse_quarter("2026Q3"), parse_quarter("2026Q4")


async def snapshot(client: httpx.AsyncClient, horizon: int, altra: int) -> dict[str, object]:
    """Everything a closed quarter shows of the kassier's margins, as a user gets it."""
    got: dict[str, object] = {}
    for who in (horizon, altra):
        base = f"/settlement/run/2026Q3/statement/{who}"
        page = await client.get(base)
        pdf = await client.get(f"{base}.pdf")
        csv = await client.get(f"{base}.csv")
        assert page.status_code == pdf.status_code == csv.status_code == 200
        got[f"page {who}"] = text_of(page.text)
        got[f"pdf {who}"] = pdf.content
        got[f"csv {who}"] = csv.content
    kassier = await client.get("/settlement/kassier/2026Q3")
    assert kassier.status_code == 200
    got["kassier"] = text_of(kassier.text)
    batch = await client.get(f"/settlement/kassier/2026Q3/{horizon}/betaalopdracht.xml")
    assert batch.status_code == 200
    got["sepa"] = batch.content
    return got


async def test_changing_or_ending_an_agreement_leaves_a_closed_quarter_as_it_was(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    horizon, altra = k.w.region.horizon.id, k.w.region.altra.id
    await login(client, runtime, user_id=k.w.region.finance.id)
    before = await snapshot(client, horizon, altra)
    assert "Altra 6,60% van het bedrag € 1.248,00 € 82,37 € 1.165,63" in str(before["kassier"])
    assert "Altra € 1.248,00 € 82,37 € 1.165,63" in str(before[f"page {horizon}"])
    assert b'<InstdAmt Ccy="EUR">1165.63</InstdAmt>' in bytes(before["sepa"])  # type: ignore[arg-type]

    changes = (
        update(AgreementRow).values(margin_kind="fixed", margin_value=2_000),  # € 20 per hour
        update(AgreementRow).values(margin_value=1_500),  # 15 %
        update(AgreementRow).values(valid_to=D(2026, 6, 30)),  # ended before the quarter
        delete(AgreementRow),
    )
    for change in changes:
        async with runtime.sessionmaker() as db, db.begin():
            await db.execute(change)
        after = await snapshot(client, horizon, altra)
        for key, value in before.items():
            assert after[key] == value, f"{key} changed after {change}"


async def test_a_run_closed_before_margins_were_stored_says_it_uses_todays_agreements(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    # What the migration leaves of a run closed before margins were stored.
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(update(SettlementRun).values(margins_stored=False))
        await db.execute(
            update(SettlementRunLine).values(
                margin_cents=None, agreement_id=None, margin_kind=None, margin_value=None
            )
        )
    horizon = k.w.region.horizon.id
    await login(client, runtime, user_id=k.w.region.finance.id)
    note = "berekend met de afspraken van vandaag"
    page = text_of((await client.get(f"/settlement/run/2026Q3/statement/{horizon}")).text)
    assert note in page and "Altra € 1.248,00 € 82,37 € 1.165,63" in page
    kassier = text_of((await client.get("/settlement/kassier/2026Q3")).text)
    assert note in kassier and "Altra 6,60% van het bedrag € 1.248,00 € 82,37" in kassier


async def test_closing_stores_each_lines_margin_and_the_agreement_used(runtime: Runtime) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    horizon, altra = k.w.region.horizon.id, k.w.region.altra.id
    async with runtime.sessionmaker() as db:
        run = await db.scalar(select(SettlementRun))
        agreement_id = await db.scalar(select(AgreementRow.id))
        rows = (
            await db.execute(
                select(
                    SettlementRunLine.provider_id,
                    SettlementRunLine.amount_cents,
                    SettlementRunLine.margin_cents,
                    SettlementRunLine.agreement_id,
                    SettlementRunLine.margin_kind,
                    SettlementRunLine.margin_value,
                ).order_by(SettlementRunLine.seq)
            )
        ).all()
    assert run is not None and run.margins_stored
    assert sorted(tuple(r) for r in rows) == sorted(
        [
            (horizon, 37_440, 37_440, None, None, None),  # its own care: kept whole
            (altra, 124_800, 8_237, agreement_id, "percent", 660),  # 6,60 %, rounded once
        ]
    )


async def test_an_agreement_made_after_closing_makes_no_kassier_of_that_quarter(
    runtime: Runtime,
) -> None:
    w = await with_allocation(runtime)
    await enter(runtime, w.horizon_staff, line(volume=3))  # Horizon declares its own care
    async with runtime.unit_of_work(principal(w.region.finance)) as uow:
        await close_quarter(uow, Q3, D(2026, 10, 5))
    finance = w.region.other_finance  # Horizon's finance staff

    async def kassier_side() -> tuple[object, ...]:
        async with runtime.unit_of_work(principal(finance)) as uow:
            quarters = await kassier_quarters(uow)
        async with runtime.unit_of_work(principal(w.region.finance)) as uow:
            page = await kassier_page(uow, Q3)
        return quarters, page.kassiers

    before = await kassier_side()
    assert before == ((), ())
    async with runtime.unit_of_work(principal(w.region.finance)) as uow:
        margin = Margin(MarginKind.PERCENT, 660)
        await add_agreement(
            uow, SubProviderAgreement(w.region.horizon.id, w.region.altra.id, margin, D(2026, 1, 1))
        )
    assert await kassier_side() == before


@pytest.mark.parametrize(
    ("change", "margin_cents", "net_cents"),
    [
        # Now 15 %: the credit takes back the 6,60 % booked (€ 82,37); the new 5 hours
        # (€ 624,00) are split at 15 % (€ 93,60).
        ({"margin_value": 1_500}, -8_237 + 9_360, -116_563 + 53_040),
        # Ended before the quarter: the new 5 hours are refused; the credit still takes back
        # exactly what was booked, so nothing stands in the way of settling it.
        ({"valid_to": D(2026, 6, 30)}, -8_237, -116_563),
    ],
)
async def test_a_correction_takes_back_the_margin_booked_when_the_quarter_closed(
    runtime: Runtime, change: dict[str, object], margin_cents: int, net_cents: int
) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(update(AgreementRow).values(**change))
        await db.execute(
            update(Delivery).where(Delivery.provider_id == k.w.region.altra.id).values(volume=5)
        )
    await close(runtime, k, Q4, D(2027, 1, 5))
    async with runtime.unit_of_work(principal(k.kassier_finance)) as uow:
        (view,) = (await kassier_page(uow, Q4)).kassiers
    assert view.complete and view.balanced and view.problems == ()
    (altra,) = [s for s in view.shares if s.name == "Altra"]
    assert (altra.margin_cents, altra.net_cents) == (margin_cents, net_cents)
    assert [(s.name, s.cents) for s in view.set_off] == [("Altra", -net_cents)]
