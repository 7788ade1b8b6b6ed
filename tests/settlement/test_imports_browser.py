"""The import page and the proposals in a real browser: a finance clerk uploads a file with a bad
row, reads which row and why, and nothing is imported; axe-core finds no WCAG 2.2 AA violation
at 1280 and 360 px, and nothing scrolls sideways."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.models import Delivery as DeliveryRow
from tests.browser.conftest import browser, logged_in_context  # noqa: F401 - the fixture
from tests.browser.test_accessibility import axe_violations
from tests.conftest import LiveServer
from tests.settlement.factories import add_arrangement
from tests.settlement.test_imports import DELIVERY_HEADER, csv_bytes, delivery, with_allocation
from tests.settlement.test_imports_excel import too_large_file
from tests.settlement.test_imports_web import END, START, count

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def problems_on(page: Page, server: LiveServer) -> list[str]:
    found = await axe_violations(page, server)
    if await page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    ):
        found.append("scrolls sideways")
    return found


@pytest.mark.parametrize("width", [1280, 360])
async def test_a_clerk_uploads_a_bad_file_and_reads_why(
    browser: Browser,  # noqa: F811
    runtime: Runtime,
    live_server: LiveServer,
    tmp_path: Path,
    width: int,
) -> None:
    w = await with_allocation(runtime)
    await add_arrangement(
        runtime,
        w.region.finance,
        [(w.region.horizon, "45A52", 150, START, END)],
    )
    bad = tmp_path / "zorg-augustus.csv"
    bad.write_bytes(
        csv_bytes(
            [
                DELIVERY_HEADER,
                delivery("T-100", "45A52", "1-8-2026", "31-8-2026", "10"),
                delivery("T-100", "45A52", "1-8-2026", "31-8-2026", "21"),
            ]
        )
    )
    ctx = await logged_in_context(
        browser, runtime, live_server, user_id=w.region.finance.id, width=width
    )
    page = await ctx.new_page()
    problems: dict[str, list[str]] = {}

    await page.goto(live_server.url + "/settlement/import")
    problems["import"] = await problems_on(page, live_server)
    await page.get_by_role("radio", name="Geleverde zorg").check()
    await page.get_by_label("Bestand", exact=True).set_input_files(str(bad))
    await page.get_by_role("button", name="Bestand inlezen").click()
    await page.wait_for_load_state()
    alert = page.get_by_role("alert")
    assert "Er is niets opgeslagen." in await alert.inner_text()
    table = page.get_by_role("table", name="Fouten in zorg-augustus.csv (1)")
    text = await table.inner_text()
    assert "Deze regel staat dubbel in het bestand" in text
    problems["import with errors"] = await problems_on(page, live_server)
    assert await count(runtime, DeliveryRow) == 0

    await page.goto(live_server.url + "/settlement/allocations")
    await page.get_by_text("Bekijken en vastleggen").click()
    await page.get_by_label("Toewijzingsnummer").fill("Z-1")
    problems["allocations with a proposal"] = await problems_on(page, live_server)
    await ctx.close()
    assert {k: v for k, v in problems.items() if v} == {}


async def test_a_clerk_uploads_a_file_past_the_limit_and_reads_why(
    browser: Browser,  # noqa: F811
    runtime: Runtime,
    live_server: LiveServer,
    tmp_path: Path,
) -> None:
    w = await with_allocation(runtime)
    big = tmp_path / "landelijk.csv"
    big.write_bytes(too_large_file())
    ctx = await logged_in_context(browser, runtime, live_server, user_id=w.region.finance.id)
    page = await ctx.new_page()
    await page.goto(live_server.url + "/settlement/import")
    await page.get_by_role("radio", name="Geleverde zorg").check()
    await page.get_by_label("Bestand", exact=True).set_input_files(str(big))
    async with page.expect_navigation() as answer:
        await page.get_by_role("button", name="Bestand inlezen").click()
    response = await answer.value
    assert response is not None and response.status == 413
    field = page.get_by_label("Bestand", exact=True)
    assert await field.get_attribute("aria-invalid") == "true"
    assert (
        "Het bestand is te groot (meer dan 10 MB)."
        in await page.locator("#kp-file-error").inner_text()
    )
    problems = await problems_on(page, live_server)
    await ctx.close()
    assert problems == []
    assert await count(runtime, DeliveryRow) == 0
