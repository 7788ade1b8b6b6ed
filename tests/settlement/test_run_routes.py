"""The quarterly run page: check, close with one button, download the statement."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from sqlalchemy import func, select, update

from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.models import Allocation, SettlementRun
from tests.helpers import login
from tests.settlement.test_delivery_routes import with_allocation
from tests.settlement.test_routes import text_of
from tests.settlement.test_runs import deliver

pytestmark = pytest.mark.anyio

D = dt.date


def finish_closing(app: Any, quarter: str = "2026Q3") -> None:
    """Wait for the background closing of ``quarter`` in this app, if one started."""
    closer = getattr(app.state, "settlement_closer", None)
    if closer is not None:
        closer.wait(quarter, timeout=60)


async def runs(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(SettlementRun)) or 0


async def test_penvoerder_checks_closes_and_downloads(
    client: httpx.AsyncClient, runtime: Runtime, app: Any
) -> None:
    w = await with_allocation(runtime)
    await deliver(runtime, w, volume=3)
    await deliver(runtime, w, start=D(2026, 8, 1), end=D(2026, 8, 31), volume=20)
    async with runtime.sessionmaker() as db, db.begin():  # August no longer fits afterwards
        await db.execute(update(Allocation).values(volume=4))
    csrf = await login(client, runtime, user_id=w.region.finance.id)

    r = await client.get("/settlement/run?q=2026K3")
    assert r.status_code == 200
    page = text_of(r.text)
    assert "Dit kwartaal is nog niet afgesloten." in page
    assert "Horizon 1 € 374,40" in page
    assert "Wordt afgewezen" in page and "toegestaan 4 uur per maand" in page
    assert (await client.post("/settlement/run", data={"q": "2026Q3"})).status_code == 403

    r = await client.post("/settlement/run", data={"q": "2026Q3"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303
    finish_closing(app)
    r = await client.get(r.headers["location"])
    page = text_of(r.text)
    assert "Dit kwartaal is afgesloten: 1 regel, 1 afgewezen, totaal € 374,40." in page
    assert "Kwartaal afsluiten</button>" not in r.text

    r = await client.get("/settlement/run/2026Q3/statement.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="afrekening-2026Q3.csv"' in r.headers["content-disposition"]
    assert r.content.endswith(b"2026Q3,totaal,,,,,,,,,,,,37440,D\r\n")
    again = await client.get("/settlement/run/2026Q3/statement.csv")
    assert again.content == r.content

    # Pressing again changes nothing.
    r = await client.post("/settlement/run", data={"q": "2026Q3"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303 and await runs(runtime) == 1


async def test_a_quarter_that_is_not_over_cannot_be_closed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    r = await client.post("/settlement/run", data={"q": "2099Q1"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409
    assert "Dit kwartaal is nog niet voorbij." in r.text
    assert await runs(runtime) == 0
    r = await client.get("/settlement/run?q=2026Q7")
    assert r.status_code == 400 and "Kies een kwartaal zoals 2026K3." in r.text


async def test_only_finance_of_the_penvoerder(client: httpx.AsyncClient, runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    await login(client, runtime, user_id=w.region.other_finance.id)
    assert (await client.get("/settlement/run")).status_code == 403
    assert (await client.get("/settlement/run/2026Q3/statement.csv")).status_code == 403


async def test_declaration_files_of_a_closed_quarter(
    client: httpx.AsyncClient, runtime: Runtime, app: Any
) -> None:
    w = await with_allocation(runtime)
    await deliver(runtime, w, volume=3)
    await deliver(runtime, w, start=D(2026, 8, 1), end=D(2026, 8, 31), volume=2)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    assert (await client.get("/settlement/run/2026Q3/jw323.zip")).status_code == 404
    await client.post("/settlement/run", data={"q": "2026Q3"}, headers={"X-CSRF-Token": csrf})
    finish_closing(app)
    r = await client.get("/settlement/run/2026Q3/jw323.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        names = archive.namelist()
        assert [n.split("-")[2:4] for n in names] == [["0193", "202607"], ["0193", "202608"]]
        july = ET.fromstring(archive.read(names[0]))
    assert july.findtext("Header/Afzender") == "98000011"
    assert july.findtext("Header/TotaalBedrag/Bedrag") == "37440"
    assert (await client.get("/settlement/run/2026Q3/jw323.zip")).content == r.content
