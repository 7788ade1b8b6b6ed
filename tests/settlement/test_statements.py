"""A provider's statement of a closed quarter on the real database (SQLite and PostgreSQL):
its lines and totals, the kassier's margin and net to pay, who may read it, the PDF that is
byte-identical every time, and the progress a closing reports."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from keerpunt.platform.errors import NotFound
from keerpunt.platform.i18n import current_locale
from keerpunt.platform.models import User
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.declaration import Margin, MarginKind, SubProviderAgreement
from keerpunt.settlement.models import SettlementRun, SettlementRunLine
from keerpunt.settlement.runs import Progress
from keerpunt.settlement.service import (
    ProviderStatement,
    Quarter,
    add_agreement,
    close_quarter,
    parse_quarter,
    provider_statement,
    provider_statement_csv,
    statement_pdf,
)
from tests.helpers import make_user
from tests.settlement.factories import principal
from tests.settlement.test_delivery_routes import with_allocation
from tests.settlement.test_records import World, enter, line

pytestmark = pytest.mark.anyio

D = dt.date
Q3 = parse_quarter("2026Q3")
AFTER_Q3 = D(2026, 10, 5)


async def kassier_world(rt: Runtime) -> World:
    """Horizon holds the allocation and is kassier; Altra delivers under it at 6,60 % margin.
    Horizon: 3 hours in July (€ 374,40); Altra: 2 hours in August (€ 249,60)."""
    w = await with_allocation(rt)
    margin = Margin(MarginKind.PERCENT, 660)
    async with rt.unit_of_work(principal(w.region.finance)) as uow:
        await add_agreement(
            uow, SubProviderAgreement(w.region.horizon.id, w.region.altra.id, margin, D(2026, 1, 1))
        )
    await enter(rt, w.horizon_staff, line(volume=3))
    await enter(rt, w.altra_staff, line(start=D(2026, 8, 1), end=D(2026, 8, 31), volume=2))
    return w


async def close(
    rt: Runtime,
    w: World,
    *,
    quarter: Quarter = Q3,
    today: dt.date = AFTER_Q3,
    progress: Progress | None = None,
) -> None:
    async with rt.unit_of_work(principal(w.region.finance)) as uow:
        await close_quarter(uow, quarter, today, progress=progress)


async def read(rt: Runtime, who: User, provider_id: int) -> ProviderStatement:
    async with rt.unit_of_work(principal(who)) as uow:
        return await provider_statement(uow, Q3, provider_id)


async def test_the_kassier_sees_its_lines_its_margin_and_what_it_pays_on(
    runtime: Runtime,
) -> None:
    w = await kassier_world(runtime)
    await close(runtime, w)
    view = await read(runtime, w.region.finance, w.region.horizon.id)
    assert [(x.provider, x.volume, x.amount_cents, x.direction) for x in view.lines] == [
        ("Horizon", 3, 37_440, "D"),
        ("Altra", 2, 24_960, "D"),
    ]
    assert (view.debit_cents, view.credit_cents, view.total_cents) == (62_400, 0, 62_400)
    # 6,60 % of € 249,60 = € 16,4736: rounded once, per line, to € 16,47.
    (altra,) = view.sub_providers
    assert (altra.name, altra.gross_cents, altra.margin_cents, altra.net_cents) == (
        "Altra", 24_960, 1_647, 23_313,
    )  # fmt: skip
    assert view.net_to_pay_cents == 23_313
    assert view.kassier_keeps_cents == 37_440 + 1_647
    # The ledger balances to the cent: what the kassier declared = what it keeps + pays on.
    assert view.total_cents == view.kassier_keeps_cents + view.net_to_pay_cents

    mine = await read(runtime, w.altra_staff, w.region.altra.id)
    assert [x.holder for x in mine.lines] == ["Horizon"]
    (via,) = mine.kassiers
    assert (via.name, via.net_cents) == ("Horizon", 23_313)
    assert not mine.sub_providers


async def test_a_provider_reads_only_its_own_statement(runtime: Runtime) -> None:
    w = await kassier_world(runtime)
    await close(runtime, w)
    assert (await read(runtime, w.horizon_staff, w.region.horizon.id)).total_cents == 62_400
    with pytest.raises(NotFound):
        await read(runtime, w.altra_staff, w.region.horizon.id)
    with pytest.raises(NotFound):  # the penvoerder's staff without the finance role
        await read(runtime, w.region.coordinator, w.region.horizon.id)
    outsider = await make_user(runtime, w.region.wijkteam, "Wim Wijkteam")
    with pytest.raises(NotFound):
        await read(runtime, outsider, w.region.horizon.id)
    with pytest.raises(NotFound):  # a quarter that is not closed has no statement
        async with runtime.unit_of_work(principal(w.region.finance)) as uow:
            await provider_statement(uow, parse_quarter("2026Q2"), w.region.horizon.id)
    async with runtime.unit_of_work(principal(w.altra_staff)) as uow:
        csv = (await provider_statement_csv(uow, Q3, w.region.altra.id)).decode()
    assert csv.endswith("2026Q3,totaal,,,,,,,,,,,,24960,D\r\n")


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


async def test_the_pdf_has_the_totals_and_is_the_same_every_time(runtime: Runtime) -> None:
    w = await kassier_world(runtime)
    await close(runtime, w)
    token = current_locale.set("nl")
    try:
        view = await read(runtime, w.region.finance, w.region.horizon.id)
        first = statement_pdf(view)
        await close(runtime, w)  # closing again: the same run
        again = statement_pdf(await read(runtime, w.region.finance, w.region.horizon.id))
    finally:
        current_locale.reset(token)
    assert first == again
    assert first.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(first))
    assert reader.metadata is not None and reader.metadata.creation_date is not None
    assert reader.metadata.creation_date.replace(tzinfo=dt.UTC) == view.closed_at.replace(
        microsecond=0
    ).astimezone(dt.UTC).replace(tzinfo=dt.UTC)
    text = pdf_text(first)
    assert "Afrekening kwartaal 3 van 2026" in text and "Horizon" in text
    assert "Totaal: € 624,00" in text
    # Every line: allocation, who delivered, product, period, volume, unit, tariff, amount.
    assert "T-100" in text and "Altra" in text and "45 45A52" in text
    assert "01-08-2026 – 31-08-2026 2 uur € 124,80 € 249,60 D" in text.replace("\xa0", " ")
    assert "U betaalt door: € 233,13" in text


async def test_closing_reports_its_phases_and_a_failure_writes_nothing(
    runtime: Runtime,
) -> None:
    w = await kassier_world(runtime)
    heard: list[tuple[str, int, int]] = []

    def fail_at_the_end(phase: str, done: int, total: int) -> None:
        heard.append((phase, done, total))
        if phase == "write" and done == total:
            raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        await close(runtime, w, progress=fail_at_the_end)
    assert heard == [
        ("load", 0, 0),
        ("check", 0, 0),  # streamed: how many there are is known at the end
        ("check", 2, 2),
        ("write", 0, 2),
        ("write", 2, 2),
    ]
    async with runtime.sessionmaker() as db:  # one transaction: nothing half-written
        assert await db.scalar(select(func.count()).select_from(SettlementRun)) == 0
        assert await db.scalar(select(func.count()).select_from(SettlementRunLine)) == 0
    await close(runtime, w)
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(SettlementRunLine)) == 2
