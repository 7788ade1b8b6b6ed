"""In real Chromium: the family page and the consent fragment pass axe-core (WCAG 2.2 AA) on a
laptop and a 360 px phone, and a parent withdraws a consent by ticking and clicking."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser
from sqlalchemy import select

from keerpunt.consent.models import ConsentRecord
from keerpunt.platform.runtime import Runtime
from tests.browser.conftest import browser, logged_in_context  # noqa: F401 (fixture)
from tests.browser.test_accessibility import axe_violations
from tests.conftest import LiveServer
from tests.triage.factories import build_world

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


@pytest.mark.parametrize("width", [1280, 360])
async def test_family_page_and_consent_fragment_have_no_axe_violations(
    browser: Browser,  # noqa: F811
    runtime: Runtime,
    live_server: LiveServer,
    width: int,
) -> None:
    world = await build_world(runtime)
    problems: dict[str, list[str]] = {}
    # the registrar's case page with the exception form open
    ctx = await logged_in_context(
        browser, runtime, live_server, user_id=world.registrar.id, width=width
    )
    page = await ctx.new_page()
    await page.goto(f"{live_server.url}/cases/{world.case_id}")
    await page.click("summary")
    if found := await axe_violations(page, live_server):
        problems["case"] = found
    await ctx.close()
    ctx = await logged_in_context(
        browser, runtime, live_server, member_id=world.members["parent"], width=width
    )
    page = await ctx.new_page()
    await page.goto(f"{live_server.url}/mijn-toestemming")
    if found := await axe_violations(page, live_server):
        problems["family"] = found
    if await page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    ):
        problems.setdefault("family", []).append("scrolls sideways")

    # withdraw: the button alone does nothing (the tick is required), then tick and click
    button = page.get_by_role("button", name="Toestemming intrekken")
    await button.click()
    assert await page.locator("#withdrawn-notice").count() == 0
    await page.get_by_label("Ik wil deze toestemming intrekken.").check()
    await button.click()
    await page.wait_for_selector("#withdrawn-notice")
    if found := await axe_violations(page, live_server):
        problems["family after withdrawal"] = found
    await ctx.close()
    async with runtime.sessionmaker() as db:
        rec = await db.scalar(
            select(ConsentRecord).where(ConsentRecord.subject_member_id == world.members["parent"])
        )
        assert rec is not None and rec.withdrawn_at is not None
    assert problems == {}
