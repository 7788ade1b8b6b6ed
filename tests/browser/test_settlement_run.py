"""The penvoerder closes a quarter in real Chromium: checks what will be rejected, presses the
button, watches the progress, opens a provider's statement and downloads its PDF and CSV.
axe-core (WCAG 2.2 AA) finds nothing on the run page and the statement, at 1280 and 360 px."""

from __future__ import annotations

import csv
import datetime as dt
import io

import anyio
import pytest
from playwright.async_api import Browser, Page, expect
from pypdf import PdfReader
from sqlalchemy import update

from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.models import Allocation
from tests.browser.conftest import logged_in_context
from tests.browser.test_accessibility import axe_violations
from tests.conftest import LiveServer
from tests.settlement.test_records import World, enter, line
from tests.settlement.test_statements import kassier_world

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

D = dt.date


async def quarter_with_a_rejected_line(rt: Runtime) -> World:
    """Horizon (kassier) 3 hours in July, Altra 2 hours in August under Horizon's allocation,
    and 20 hours in September that no longer fit once the allocation is cut to 4 a month."""
    w = await kassier_world(rt)
    await enter(rt, w.horizon_staff, line(start=D(2026, 9, 1), end=D(2026, 9, 30), volume=20))
    async with rt.sessionmaker() as db, db.begin():
        await db.execute(update(Allocation).values(volume=4))
    return w


async def no_problems(page: Page, server: LiveServer) -> None:
    assert await axe_violations(page, server) == []
    scrolls = await page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )
    assert not scrolls, "the page scrolls sideways"


async def download(page: Page, name: str) -> bytes:
    async with page.expect_download() as info:
        await page.get_by_role("link", name=name).click()
    path = await (await info.value).path()
    return await anyio.Path(path).read_bytes()


async def test_the_penvoerder_closes_a_quarter_and_downloads_a_statement(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    w = await quarter_with_a_rejected_line(runtime)
    ctx = await logged_in_context(browser, runtime, live_server, user_id=w.region.finance.id)
    phone = await logged_in_context(
        browser, runtime, live_server, user_id=w.region.finance.id, width=360
    )
    page, small = await ctx.new_page(), await phone.new_page()
    run_url = f"{live_server.url}/settlement/run?q=2026K3"

    # Before closing: what will be declared, and what will be rejected and why.
    await page.goto(run_url)
    await expect(page.get_by_role("heading", name="Wordt afgewezen")).to_be_visible()
    await expect(page.locator("#kp-run")).to_contain_text("toegestaan 4 uur per maand")
    await expect(page.locator("#kp-run")).to_contain_text("Horizon, toewijzing T-100")
    await no_problems(page, live_server)
    await small.goto(run_url)
    await no_problems(small, live_server)

    # The button: progress first (said in a status region), then the result.
    await page.get_by_role("button", name="Kwartaal afsluiten").click()
    await expect(page.locator("#kp-run-progress")).to_contain_text("Bezig met afsluiten")
    await expect(page.locator("#kp-run-live")).to_have_attribute("role", "status")
    await expect(page.locator("#kp-run-live")).to_contain_text("begonnen")
    await expect(page.locator("#kp-run-live")).to_contain_text(
        "Klaar: het kwartaal is afgesloten.", timeout=15_000
    )
    result = page.locator("#kp-run")
    await expect(result).to_contain_text(
        "Dit kwartaal is afgesloten: 2 regels, 1 afgewezen, totaal € 624,00."
    )
    await expect(page.locator("#kp-run-progress")).to_have_count(0)
    await expect(page.locator("#kp-run-result")).to_be_focused()
    await no_problems(page, live_server)
    await small.goto(run_url)
    await no_problems(small, live_server)

    # Horizon's statement: the page, then the PDF and the CSV with the same totals.
    await page.get_by_role("link", name="Afrekening van Horizon").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Afrekening kwartaal 3 van 2026"
    )
    await expect(page.locator("#kp-statement-total")).to_have_text("€ 624,00")
    await expect(page.locator("#kp-statement-net")).to_have_text("€ 233,13")
    rows = page.locator("#kp-statement-table tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(1)).to_contain_text("Altra")
    await no_problems(page, live_server)
    await small.goto(page.url)
    await no_problems(small, live_server)

    pdf = await download(page, "Download als PDF")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "Afrekening kwartaal 3 van 2026" in text and "Horizon" in text
    assert "Totaal: € 624,00" in text and "U betaalt door: € 233,13" in text
    assert await download(page, "Download als PDF") == pdf  # the same bytes every time

    data = await download(page, "Download als CSV")
    table = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    lines, total = table[:-1], table[-1]
    assert [(r["leverancier"], r["volume"], r["bedrag_cent"]) for r in lines] == [
        ("Horizon", "3", "37440"),
        ("Altra", "2", "24960"),
    ]
    assert total["declarant"] == "totaal" and total["bedrag_cent"] == "62400"
    assert sum(int(r["bedrag_cent"]) for r in lines) == int(total["bedrag_cent"])
    await ctx.close()
    await phone.close()
