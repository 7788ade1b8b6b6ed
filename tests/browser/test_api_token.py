"""A provider's finance clerk makes the organisation's API token in the browser, copies it
into their system (here: a real HTTP call), and revokes it; the page passes axe-core (WCAG
2.2 AA) at 1280 and 360 px without scrolling sideways."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, Page

from keerpunt.platform.runtime import Runtime
from tests.browser.conftest import logged_in_context
from tests.browser.test_accessibility import axe_violations
from tests.conftest import LiveServer
from tests.settlement.test_delivery_routes import with_allocation

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def check_page(page: Page, server: LiveServer) -> None:
    assert await axe_violations(page, server) == []
    assert not await page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    ), "scrolls sideways"


@pytest.mark.parametrize("width", [1280, 360])
async def test_finance_makes_uses_and_revokes_the_api_token(
    browser: Browser, runtime: Runtime, live_server: LiveServer, width: int
) -> None:
    w = await with_allocation(runtime)
    ctx = await logged_in_context(
        browser, runtime, live_server, user_id=w.region.other_finance.id, width=width
    )
    page = await ctx.new_page()
    await page.goto(f"{live_server.url}/settlement/api-token")
    await check_page(page, live_server)

    await page.get_by_role("button", name="Sleutel maken").click()
    secret = await page.get_by_label("Sleutel", exact=True).input_value()
    assert secret.startswith("kp_")
    await check_page(page, live_server)

    async with httpx.AsyncClient(base_url=live_server.url) as api:
        auth = {"Authorization": f"Bearer {secret}"}
        r = await api.get("/api/v1/allocations", headers=auth)
        assert r.status_code == 200 and r.json()["allocations"][0]["number"] == "T-100"

        await page.goto(f"{live_server.url}/settlement/api-token")
        assert secret not in await page.content()  # shown once only
        await page.get_by_role("button", name="Sleutel intrekken").click()
        await page.get_by_text("Uw organisatie heeft nu geen sleutel.").wait_for()
        await check_page(page, live_server)
        assert (await api.get("/api/v1/allocations", headers=auth)).status_code == 401
    await ctx.close()
