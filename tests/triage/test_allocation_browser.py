"""The allocation pages in real Chromium: axe-core (WCAG 2.2 AA) finds nothing, at 1280 and
360 px, also with a refused override on screen; nothing scrolls sideways on a phone."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser
from sqlalchemy import select

from keerpunt.platform.principal import SYSTEM
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import allocation_service as alloc
from keerpunt.triage.allocation import Domain, TriggerKind
from keerpunt.triage.models import Allocation
from tests.browser.conftest import browser, logged_in_context  # noqa: F401 (fixture)
from tests.browser.test_accessibility import axe_violations
from tests.conftest import LiveServer
from tests.triage.test_allocation_service import LONG_AGO, accept, build_ret, register, request

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


@pytest.mark.parametrize("width", [1280, 360])
async def test_allocation_pages_have_no_axe_violations(
    browser: Browser,  # noqa: F811
    runtime: Runtime,
    live_server: LiveServer,
    width: int,
) -> None:
    ret = await build_ret(runtime, cases=2)
    done = await request(runtime, ret, ret.case_ids[0])
    await accept(runtime, ret, done)
    waiting = await request(runtime, ret, ret.case_ids[1], milieu="")
    async with runtime.sessionmaker() as db:
        aid = await db.scalar(select(Allocation.id))
    assert aid is not None
    async with runtime.unit_of_work(ret.who) as uow:
        await alloc.open_dispute(uow, aid, ret.providers["Enver"], "Piet", "Geen plek.")
    third = await register(runtime, ret.registrar, "Derde")
    async with runtime.unit_of_work(SYSTEM) as uow:
        fired = await alloc.trigger_fired(
            uow, third, TriggerKind.TABLES_TIMEOUT, LONG_AGO, Domain.LVB
        )
    ctx = await logged_in_context(
        browser, runtime, live_server, user_id=ret.manager.id, width=width
    )
    page = await ctx.new_page()
    problems: dict[str, list[str]] = {}

    async def check(label: str) -> None:
        found = await axe_violations(page, live_server)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
        if overflow:
            found.append("scrolls sideways")
        if found:
            problems[label] = found

    for path in (
        "/allocation",
        "/allocation/requests/new",
        f"/allocation/requests/{waiting}",
        f"/allocation/{aid}",
        "/allocation/overview",
        "/allocation/providers",
        f"/allocation/requests/{fired.id}/needs",
    ):
        await page.goto(live_server.url + path)
        await check(path)
    # an override without a reason: refused, the message tied to the field
    await page.goto(f"{live_server.url}/allocation/requests/{waiting}")
    await page.get_by_label("Timon").check()
    await page.get_by_role("button", name="Toewijzen").click()
    await page.wait_for_selector("#reason-error")
    assert await page.get_attribute("#reason", "aria-invalid") == "true"
    await check("override refused")
    await ctx.close()
    assert problems == {}
