"""Two people at the same table in real Chromium see each other's work appear live; a third
without consent sees only the pseudonym."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from keerpunt.platform.runtime import Runtime
from tests.browser.conftest import logged_in_context
from tests.conftest import LiveServer
from tests.triage.factories import build_world, case_row

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def _open(page: Page, url: str) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(url)
    await expect(page.locator("#kp-conn")).to_have_class("is-online", timeout=5000)
    assert not [e for e in errors if "Content Security Policy" in e], errors


async def test_expert_and_parent_see_each_other_live_and_outsider_sees_pseudonym(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    case = await case_row(runtime, world.case_id)
    url = f"{live_server.url}/triage/sessions/{world.session_id}"

    expert_ctx = await logged_in_context(browser, runtime, live_server, user_id=world.expert.id)
    parent_ctx = await logged_in_context(
        browser, runtime, live_server, member_id=world.members["parent"], width=360
    )
    outsider_ctx = await logged_in_context(
        browser, runtime, live_server, user_id=world.outsider_expert.id
    )
    expert, parent, outsider = (
        await expert_ctx.new_page(),
        await parent_ctx.new_page(),
        await outsider_ctx.new_page(),
    )
    for page in (expert, parent, outsider):
        await _open(page, url)

    await expect(expert.locator("h1")).to_contain_text("Sem Canarie")
    await expect(parent.locator("h1")).to_contain_text("Sem Canarie")

    # The expert adds a factor; the parent (on a phone-sized screen) sees it within a second.
    await expert.get_by_label("Wat is er aan de hand?").fill("Sem slaapt slecht door de ruzies")
    await expert.get_by_role("button", name="Toevoegen", exact=True).click()
    await expect(parent.locator("#factor-list")).to_contain_text(
        "Sem slaapt slecht door de ruzies", timeout=1000
    )
    # The parent adds a goal in their own words; the expert sees it within a second.
    await parent.get_by_label("Nieuw doel").fill("Weer gewoon naar school")
    await parent.get_by_role("button", name="Doel toevoegen").click()
    await expect(expert.locator("#goal-list")).to_contain_text(
        "Weer gewoon naar school", timeout=1000
    )

    # The outsider's organisation is not named in the consent: pseudonym only, live too.
    await expect(outsider.locator("h1")).to_contain_text(case.pseudonym)
    await expect(outsider.locator("#factor-list .kp-item")).to_have_count(1, timeout=1000)
    body = await outsider.content()
    for secret in (
        "Sem Canarie",
        "Ma Canarie",
        "Oom Kees",
        "Sem slaapt slecht",
        "Weer gewoon naar school",
    ):
        assert secret not in body
    # Presence: everyone sees who is in the room (family names only where consent allows).
    await expect(expert.locator("#kp-presence")).to_contain_text("Ma Canarie")
    await expect(outsider.locator("#kp-presence")).to_contain_text("Ouder")
    assert "Ma Canarie" not in await outsider.locator("#kp-presence").inner_text()

    # No horizontal scrolling on the phone.
    scroll = await parent.evaluate("document.documentElement.scrollWidth")
    if scroll > 360:
        await parent.screenshot(path="var/phone.png", full_page=True)
        wide = await parent.evaluate(
            "[...document.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > 361)"
            ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"
        )
        raise AssertionError(f"wider than the phone: {scroll}px; {wide}")
    for ctx in (expert_ctx, parent_ctx, outsider_ctx):
        await ctx.close()


async def test_the_jim_joins_from_a_phone_with_the_invitation_link_and_code(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    """The whole login of a family member in a real browser: link, code, form post (Origin
    and CSRF checks included), then the session page of their case."""
    from keerpunt.platform.auth import create_invitation
    from keerpunt.platform.principal import staff_principal

    world = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        invite = await create_invitation(uow, world.members["jim"], days=14)
    ctx = await browser.new_context(viewport={"width": 360, "height": 740}, locale="nl-NL")
    page = await ctx.new_page()
    await page.goto(f"{live_server.url}/i/{invite.link_token}")
    await page.get_by_label("Code").fill("000000" if invite.code != "000000" else "111111")
    await page.get_by_role("button", name="Inloggen").click()
    await expect(page.locator(".kp-error")).to_contain_text("klopt niet")
    await page.get_by_label("Code").fill(invite.code)
    await page.get_by_role("button", name="Inloggen").click()
    await expect(page.locator("h1")).to_contain_text("Sem Canarie")  # their own case
    await page.goto(f"{live_server.url}/triage/sessions/{world.session_id}")
    await expect(page.locator("#kp-conn")).to_have_class("is-online", timeout=5000)
    await page.get_by_label("Nieuw doel").fill("Samen met oom Kees vissen")
    await page.get_by_role("button", name="Doel toevoegen").click()
    await expect(page.locator("#goal-list")).to_contain_text("Samen met oom Kees vissen")
    await ctx.close()


async def test_two_people_editing_the_same_factor_never_lose_an_edit(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    from keerpunt.platform.principal import staff_principal
    from keerpunt.triage import service as triage

    world = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        factor = await triage.add_factor(uow, world.session_id, "home", "perpetuating", "Ruzie")
    url = f"{live_server.url}/triage/sessions/{world.session_id}"
    expert_ctx = await logged_in_context(browser, runtime, live_server, user_id=world.expert.id)
    parent_ctx = await logged_in_context(
        browser, runtime, live_server, member_id=world.members["parent"], width=360
    )
    expert, parent = await expert_ctx.new_page(), await parent_ctx.new_page()
    for page in (expert, parent):
        await _open(page, url)
    item = f"#factor-{factor.id}"
    for page in (expert, parent):
        await page.locator(item).get_by_role("button", name="Aanpassen").click()
        await expect(page.locator(f"{item}.is-editing")).to_be_visible()

    await expert.locator(f"{item} textarea").fill("Ruzie over geld")
    await expert.locator(item).get_by_role("button", name="Opslaan").click()
    await expect(expert.locator(item)).to_contain_text("Ruzie over geld")

    # The parent's open form is not overwritten; they are told it changed meanwhile.
    await parent.locator(f"{item} textarea").fill("Ruzie met opa")
    await expect(parent.locator(f"{item} .kp-changed-notice")).to_be_visible(timeout=1000)
    assert await parent.locator(f"{item} textarea").input_value() == "Ruzie met opa"
    # Saving anyway is refused with both texts on screen: nothing is lost silently.
    await parent.locator(item).get_by_role("button", name="Opslaan").click()
    await expect(parent.locator(f"{item}-current")).to_contain_text("Ruzie over geld")
    assert await parent.locator(f"{item} textarea").input_value() == "Ruzie met opa"
    # A deliberate second save (now on the current version) goes through for everyone.
    await parent.locator(item).get_by_role("button", name="Opslaan").click()
    await expect(expert.locator(item)).to_contain_text("Ruzie met opa", timeout=1000)
    for ctx in (expert_ctx, parent_ctx):
        await ctx.close()


async def test_after_a_server_restart_the_page_catches_up_without_a_reload(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    from keerpunt.platform.principal import staff_principal
    from keerpunt.triage import service as triage

    world = await build_world(runtime)
    ctx = await logged_in_context(
        browser, runtime, live_server, member_id=world.members["parent"], width=360
    )
    page = await ctx.new_page()
    await _open(page, f"{live_server.url}/triage/sessions/{world.session_id}")
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    live_server.stop()
    await expect(page.locator("#kp-conn")).to_have_class("is-offline", timeout=5000)
    # While the server is down, the expert's change is saved (e.g. by another server).
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        await triage.add_factor(
            uow, world.session_id, "network", "protective", "Tante Mies vangt Sem op"
        )
    live_server.start()
    await expect(page.locator("#kp-conn")).to_have_class("is-online", timeout=15000)
    await expect(page.locator("#factor-list")).to_contain_text(
        "Tante Mies vangt Sem op", timeout=3000
    )
    assert await page.evaluate("window.__sameDocument === true")
    await ctx.close()
