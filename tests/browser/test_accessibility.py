"""axe-core (vendored) on every page of the thin path: WCAG 2.2 AA rules, no violations,
on a laptop and on a 360 px phone."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page
from sqlalchemy import select

from keerpunt.platform.auth import create_invitation
from keerpunt.platform.models import Organisation
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from tests.browser.conftest import logged_in_context
from tests.conftest import LiveServer
from tests.helpers import make_user
from tests.triage.factories import build_world

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


async def axe_violations(page: Page, server: LiveServer) -> list[str]:
    await page.add_script_tag(url=f"{server.url}/static/vendor/axe-core/axe.min.js")
    result = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    return [
        f"{v['id']}: {v['help']} @ {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
    ]


@pytest.mark.parametrize("width", [1280, 360])
async def test_thin_path_pages_have_no_axe_violations(
    browser: Browser, runtime: Runtime, live_server: LiveServer, width: int
) -> None:
    world = await build_world(runtime)
    async with runtime.sessionmaker() as db:
        penvoerder = await db.scalar(select(Organisation).where(Organisation.is_penvoerder))
    assert penvoerder is not None
    finance = await make_user(runtime, penvoerder, "Fatima Fin", "finance")
    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        invite = await create_invitation(uow, world.members["parent"], days=14)
    pages = {
        finance.id: [
            "/settlement/quarter",
            "/settlement/contracts",
            "/settlement/allocations",
            "/settlement/run",
            "/settlement/triage-rates",  # empty: no region, rates or budgets yet
        ],
        world.expert.id: [
            "/cases",
            f"/cases/{world.case_id}",
            f"/triage/sessions/{world.session_id}",
        ],
        world.registrar.id: ["/cases/new", f"/cases/{world.case_id}"],
        world.outsider_expert.id: [f"/cases/{world.case_id}"],
    }
    problems: dict[str, list[str]] = {}
    for user_id, paths in pages.items():
        ctx = await logged_in_context(browser, runtime, live_server, user_id=user_id, width=width)
        page = await ctx.new_page()
        for path in paths:
            await page.goto(live_server.url + path)
            found = await axe_violations(page, live_server)
            if found:
                problems[path] = found
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth > document.documentElement.clientWidth"
            )
            if overflow:
                problems.setdefault(path, []).append("scrolls sideways")
        await ctx.close()
    anon = await browser.new_context(viewport={"width": width, "height": 800})
    page = await anon.new_page()
    for path in ("/login", f"/i/{invite.link_token}"):
        await page.goto(live_server.url + path)
        if found := await axe_violations(page, live_server):
            problems[path] = found
    await anon.close()
    assert problems == {}
