"""The funder's monitor and the penvoerder's triage-hours and rates pages in a real browser,
with the demo's data: axe-core WCAG 2.2 AA at 1280 and 360 px, nothing scrolls sideways, the charts
are drawn, and the XLSX downloads."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser
from sqlalchemy import select

from keerpunt.platform import demo
from keerpunt.platform.models import User
from keerpunt.platform.runtime import Runtime
from tests.browser.conftest import logged_in_context
from tests.browser.test_accessibility import axe_violations
from tests.conftest import LiveServer

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


@pytest.mark.parametrize("width", [1280, 360])
async def test_monitor_pages_are_accessible_and_download(
    browser: Browser, runtime: Runtime, live_server: LiveServer, width: int
) -> None:
    assert await demo.load(runtime)
    async with runtime.sessionmaker() as db:
        users = list(await db.scalars(select(User)))
    funder = next(u for u in users if "funder" in u.role_set)
    finance = next(u for u in users if "finance" in u.role_set)
    problems: dict[str, list[str]] = {}
    for user, paths in (
        (funder, ["/settlement/monitor"]),
        (finance, ["/settlement/monitor", "/settlement/triage-hours", "/settlement/triage-rates"]),
    ):
        ctx = await logged_in_context(browser, runtime, live_server, user_id=user.id, width=width)
        page = await ctx.new_page()
        for path in paths:
            await page.goto(live_server.url + path)
            if found := await axe_violations(page, live_server):
                problems[f"{user.display_name} {path}"] = found
            if await page.evaluate(
                "document.documentElement.scrollWidth > document.documentElement.clientWidth"
            ):
                problems.setdefault(path, []).append("scrolls sideways")
        if user is funder:
            await page.goto(live_server.url + "/settlement/monitor")
            chart = page.locator("#chart-help svg[role=img]")
            assert await chart.is_visible()
            assert (await chart.bounding_box() or {"width": 0})["width"] <= width
            assert await page.locator("#chart-help table").is_visible()
            async with page.expect_download() as info:
                await page.click("#monitor-xlsx")
            download = await info.value
            assert download.suggested_filename.startswith("monitor-")
            assert download.suggested_filename.endswith(".xlsx")
        else:
            await page.goto(live_server.url + "/settlement/triage-hours")
            assert await page.locator("#triage-total").is_visible()
            # the rates page: a wrong amount is explained beside its field (htmx), then saved
            await page.goto(live_server.url + "/settlement/triage-rates")
            await page.fill("#kp-year", "2028")
            await page.fill("#kp-budget", "-5")
            await page.click("text=Budget opslaan")
            await page.locator("#kp-budget-error").wait_for()
            if found := await axe_violations(page, live_server):
                problems["rates with an error"] = found
            await page.fill("#kp-budget", "115.000,00")
            await page.click("text=Budget opslaan")
            await page.locator("#triage-budgets >> text=2028").wait_for()
        await ctx.close()
    assert not problems, problems
