"""Consent changes while people sit at the table, in real Chromium: the registrar withdraws
consent on the case page and, within a second and without a reload, the expert's screen shows
the pseudonym and no longer the texts written with consent — also the one they were editing —
while the parent (logged in with their invitation link and code) still sees their own data.
And the other way round: a new consent reveals the case to the named organisation only."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from keerpunt.platform.auth import create_invitation
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import service as triage
from tests.browser.conftest import logged_in_context
from tests.conftest import LiveServer
from tests.triage.factories import World, build_world, case_row

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

HIDDEN = "Deze tekst ziet u alleen met toestemming van het gezin."


async def _open_live(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("#kp-conn")).to_have_class("is-online", timeout=5000)
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads


async def _parent_by_invitation(browser: Browser, rt: Runtime, server: LiveServer, world: World):
    async with rt.unit_of_work(staff_principal(world.registrar)) as uow:
        invite = await create_invitation(uow, world.members["parent"], days=14)
    ctx = await browser.new_context(viewport={"width": 360, "height": 740}, locale="nl-NL")
    page = await ctx.new_page()
    await page.goto(f"{server.url}/i/{invite.link_token}")
    await page.get_by_label("Code").fill(invite.code)
    await page.get_by_role("button", name="Inloggen").click()
    await expect(page.locator("h1")).to_contain_text("Sem Canarie")
    return ctx, page


async def test_withdrawal_switches_the_expert_to_the_pseudonym_without_a_reload(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        factor = await triage.add_factor(
            uow, world.session_id, "home", "perpetuating", "Sem slaapt slecht door ruzie"
        )
    pseudonym = (await case_row(runtime, world.case_id)).pseudonym
    url = f"{live_server.url}/triage/sessions/{world.session_id}"

    parent_ctx, parent = await _parent_by_invitation(browser, runtime, live_server, world)
    expert_ctx = await logged_in_context(browser, runtime, live_server, user_id=world.expert.id)
    registrar_ctx = await logged_in_context(
        browser, runtime, live_server, user_id=world.registrar.id
    )
    expert = await expert_ctx.new_page()
    await _open_live(parent, url)
    await _open_live(expert, url)
    await expect(expert.locator("h1")).to_contain_text("Sem Canarie")
    await expect(expert.locator("#kp-presence")).to_contain_text("Ma Canarie")
    # The expert is busy editing the factor written with consent.
    item = expert.locator(f"#factor-{factor.id}")
    await item.get_by_role("button", name="Aanpassen").click()
    await expect(expert.locator(f"#factor-{factor.id}.is-editing")).to_be_visible()

    registrar = await registrar_ctx.new_page()
    await registrar.goto(f"{live_server.url}/cases/{world.case_id}")
    row = registrar.locator("#consents tbody tr").filter(has_text="Jeugdige")
    await row.get_by_role("button", name="Intrekken").click()
    await expect(registrar.locator("#consents")).to_contain_text("ingetrokken")

    await expect(expert.locator("h1")).to_contain_text(pseudonym, timeout=1000)
    await expect(expert.locator("h1")).not_to_contain_text("Sem Canarie")
    await expect(expert.locator("#anonymous-notice")).to_be_visible()
    await expect(item).to_contain_text(HIDDEN)
    # the open edit form of that item went too (step 4's add form is always open)
    await expect(expert.locator(f"#factor-{factor.id}.is-editing")).to_have_count(0)
    await expect(expert.locator("#kp-presence")).not_to_contain_text("Ma Canarie")
    body = await expert.content()
    for secret in ("Sem Canarie", "Ma Canarie", "Oom Kees", "Sem slaapt slecht"):
        assert secret not in body, secret
    assert await expert.evaluate("window.__sameDocument === true")
    assert pseudonym in await expert.title()

    # The parent still sees their own family's data, on the same page.
    await expect(parent.locator("h1")).to_contain_text("Sem Canarie")
    await expect(parent.locator(f"#factor-{factor.id}")).to_contain_text("Sem slaapt slecht")
    await expect(parent.locator("#kp-announce")).to_contain_text(
        "De toestemming van het gezin is veranderd"
    )
    assert await parent.evaluate("window.__sameDocument === true")

    # The table as pushed works: the expert goes on, anonymously now, and the parent sees it.
    await expert.get_by_label("Wat is er aan de hand?").fill("Ruzie thuis, anoniem verder")
    await expert.get_by_role("button", name="Toevoegen", exact=True).click()
    await expect(parent.locator("#factor-list")).to_contain_text(
        "Ruzie thuis, anoniem verder", timeout=1000
    )
    for ctx in (parent_ctx, expert_ctx, registrar_ctx):
        await ctx.close()


async def _consent_by_form(page: Page, subject: str, org: str) -> None:
    await page.get_by_label("Wie geeft toestemming?").select_option(label=subject)
    await page.get_by_label("Met wie mag informatie gedeeld worden?").select_option(label=org)
    await page.get_by_label("Wat heeft u uitgelegd aan het gezin?").fill(
        "Uitgelegd wat Karakter met de gegevens doet."
    )
    await page.get_by_role("button", name="Vastleggen").click()
    await expect(page.locator("#consents tbody")).to_contain_text(subject.split(":")[0])


async def test_a_new_consent_reveals_the_names_to_the_named_recipient_only(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    pseudonym = (await case_row(runtime, world.case_id)).pseudonym
    url = f"{live_server.url}/triage/sessions/{world.session_id}"
    contexts: list[BrowserContext] = []
    pages: dict[str, Page] = {}
    for name, user in (("named", world.expert), ("other", world.outsider_expert)):
        ctx = await logged_in_context(browser, runtime, live_server, user_id=user.id)
        contexts.append(ctx)
        pages[name] = await ctx.new_page()
        await _open_live(pages[name], url)
        await expect(pages[name].locator("h1")).to_contain_text(pseudonym)
    registrar_ctx = await logged_in_context(
        browser, runtime, live_server, user_id=world.registrar.id
    )
    contexts.append(registrar_ctx)
    registrar = await registrar_ctx.new_page()
    await registrar.goto(f"{live_server.url}/cases/{world.case_id}")
    await _consent_by_form(registrar, "Jeugdige: Sem Canarie", "Karakter")
    await _consent_by_form(registrar, "Ouder: Ma Canarie", "Karakter")

    await expect(pages["named"].locator("h1")).to_contain_text("Sem Canarie", timeout=1000)
    await expect(pages["named"].locator("#anonymous-notice")).to_have_count(0)
    await expect(pages["other"].locator("#kp-announce")).to_contain_text(
        "De toestemming van het gezin is veranderd"
    )
    other_body = await pages["other"].content()
    for secret in ("Sem Canarie", "Ma Canarie", "Oom Kees"):
        assert secret not in other_body
    await expect(pages["other"].locator("h1")).to_contain_text(pseudonym)
    for page in pages.values():
        assert await page.evaluate("window.__sameDocument === true")
    for ctx in contexts:
        await ctx.close()
