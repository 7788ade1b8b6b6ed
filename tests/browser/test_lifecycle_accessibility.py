"""axe-core on the lifecycle pages (case page with steps and timeline, case list, weekly
agenda): WCAG 2.2 AA, no violations, nothing scrolls sideways at 360 px; and a step taken in
the browser (open the reason, type it, submit)."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from keerpunt.platform.models import Case
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import lifecycle
from keerpunt.triage import service as triage
from tests.browser.conftest import logged_in_context
from tests.browser.test_accessibility import axe_violations
from tests.conftest import LiveServer
from tests.triage.factories import build_world, case_row

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


@pytest.mark.parametrize("width", [1280, 360])
async def test_lifecycle_pages_have_no_axe_violations(
    browser: Browser, runtime: Runtime, live_server: LiveServer, width: int
) -> None:
    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await triage.add_factor(uow, w.session_id, "school", "protective", "Juf helpt")
        await triage.add_line(uow, w.session_id, w.provider.id, "45A52", "ambulant", "2", None)
        await triage.close_session(uow, w.session_id)
        case = await uow.db.get(Case, w.case_id)
        assert case is not None
        await lifecycle.transition(uow, case, lifecycle.Status.RUNNING)
    problems: dict[str, list[str]] = {}
    for user_id in (w.coordinator.id, w.expert.id):
        ctx = await logged_in_context(browser, runtime, live_server, user_id=user_id, width=width)
        page = await ctx.new_page()
        for path in (f"/cases/{w.case_id}", "/cases", "/triage/agenda"):
            await page.goto(live_server.url + path)
            await page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            if found := await axe_violations(page, live_server):
                problems[f"{user_id} {path}"] = found
            if await page.evaluate(
                "document.documentElement.scrollWidth > document.documentElement.clientWidth"
            ):
                problems.setdefault(f"{user_id} {path}", []).append("scrolls sideways")
        await ctx.close()
    assert problems == {}


async def test_a_step_with_a_reason_in_the_browser(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    w = await build_world(runtime)
    ctx = await logged_in_context(
        browser, runtime, live_server, user_id=w.coordinator.id, width=360
    )
    page = await ctx.new_page()
    await page.goto(f"{live_server.url}/cases/{w.case_id}")
    await page.get_by_text("Pauzeren: er is een crisis").first.click()  # opens the details
    await page.locator("#step-crisis_pause-reason").fill("Crisisopvang sinds vannacht")
    await (
        page.locator("#step-crisis_pause-reason")
        .locator("xpath=../..")
        .get_by_role("button")
        .click()
    )
    await page.wait_for_url(f"**/cases/{w.case_id}#h-lifecycle")
    assert await page.get_by_text("Gepauzeerd door crisis").count() > 0
    await ctx.close()
    assert (await case_row(runtime, w.case_id)).status == "crisis_pause"
