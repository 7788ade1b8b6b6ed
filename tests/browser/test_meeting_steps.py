"""Steps 1-3 of a meeting in real Chromium: an expert, a parent (phone), the JIM (phone)
and the chair in separate browsers work on one table, live, including a conflicting edit,
"niet over mij zonder mij", and an axe-core check of the filled-in page."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from keerpunt.platform.runtime import Runtime
from tests.browser.conftest import logged_in_context
from tests.browser.test_accessibility import axe_violations
from tests.browser.test_live_session import _open
from tests.conftest import LiveServer
from tests.triage.factories import World, build_world

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

LIVE = 2000  # ms: within a second on a quiet machine; slack for a loaded test runner
PASTED = "In stand houdend\n- Ruzie thuis over geld\nSchool: spijbelt sinds de zomer"


async def _fill_table(page: Page) -> None:
    """Some of everything on the table, through the page itself."""
    step2 = page.locator("#step-2")
    await step2.get_by_text("Er is al een analyse? Plak de tekst hier").click()
    await page.get_by_label("Tekst van de analyse").fill(PASTED)
    await page.get_by_role("button", name="Overnemen als factoren").click()
    await expect(page.locator("#factor-list-draft .kp-item")).to_have_count(2)


async def test_expert_parent_and_jim_work_through_steps_one_to_three_live(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    url = f"{live_server.url}/triage/sessions/{world.session_id}"
    contexts = [
        await logged_in_context(browser, runtime, live_server, user_id=world.expert.id),
        await logged_in_context(
            browser, runtime, live_server, member_id=world.members["parent"], width=360
        ),
        await logged_in_context(
            browser, runtime, live_server, member_id=world.members["jim"], width=360
        ),
        await logged_in_context(browser, runtime, live_server, user_id=world.coordinator.id),
    ]
    expert, parent, jim, chair = [await c.new_page() for c in contexts]
    for page in (expert, parent, jim, chair):
        await _open(page, url)

    # No factors yet: the forms that need them say where they come from, not empty lists;
    # each life area says it is empty, and there is nothing to order.
    await expect(expert.locator("#link-add-empty")).to_be_visible()
    await expect(parent.locator("#goal-factors-empty")).to_be_visible()
    await expect(parent.locator("#factor-list-health + .kp-area-empty")).to_be_visible()
    await expect(parent.locator("#h-area-draft")).to_be_hidden()

    # Step 1: everyone sees who the JIM is, and who is here.
    await expect(parent.locator("#step-1")).to_contain_text("Oom Kees")
    await expect(expert.locator("#kp-presence")).to_contain_text("Oom Kees")

    # The chair puts step 2 on screen: highlighted for everyone.
    await chair.get_by_role("button", name="Zet stap 2 op het scherm").click()
    for page in (expert, parent, jim):
        await expect(page.locator('#kp-steps a[aria-current="step"]')).to_have_attribute(
            "href", "#step-2", timeout=LIVE
        )
        await expect(page.locator("#step-2")).to_have_class(re.compile("is-on-screen"))

    # Step 2: the parent starts typing; the expert sees where.
    await parent.locator("#step-2").get_by_label("Wat is er aan de hand?").fill("Mijn dep")
    await expect(expert.locator("#kp-typing")).to_contain_text("typt bij stap 2", timeout=LIVE)
    await parent.locator("#step-2").get_by_label("Leefgebied").select_option("health")
    await parent.locator("#step-2").get_by_label("Wat is er aan de hand?").fill("Mijn depressie")
    await parent.get_by_role("button", name="Toevoegen", exact=True).click()
    mine = expert.locator("#factor-list-health .kp-item")
    await expect(mine).to_contain_text("Mijn depressie", timeout=LIVE)
    await expect(mine).to_contain_text("Eigen kijk")
    # The first factor takes those hints away on every screen, live.
    for page in (expert, parent, jim):
        await expect(page.locator("#link-add-empty")).to_have_count(0, timeout=LIVE)
        await expect(page.locator("#goal-factors-empty")).to_have_count(0, timeout=LIVE)
        await expect(page.locator("#factor-list-health + .kp-area-empty")).to_be_hidden()
    await expect(jim.locator("#factor-list-home + .kp-area-empty")).to_be_visible()
    await expect(expert.locator("#goal-factor-choices")).to_contain_text("Mijn depressie")

    # "Niet over mij zonder mij": shown while the parent is here, held back when they leave.
    await (
        parent.locator("#factor-list-health")
        .get_by_role("button", name="Niet over mij zonder mij")
        .click()
    )
    await expect(mine).to_contain_text("Niet over mij zonder mij", timeout=LIVE)
    await expect(mine).to_contain_text("Mijn depressie")
    await parent.close()
    await expect(mine).not_to_contain_text("Mijn depressie", timeout=3000)
    await expect(jim.locator("#factor-list-health")).not_to_contain_text("Mijn depressie")
    parent = await contexts[1].new_page()
    await _open(parent, url)
    await expect(mine).to_contain_text("Mijn depressie", timeout=3000)

    # An existing analysis is pasted and then structured together.
    await _fill_table(expert)
    await expect(jim.locator("#factor-list-draft .kp-item")).to_have_count(2, timeout=LIVE)
    await expect(jim.locator("#h-area-draft")).to_be_visible()
    draft = expert.locator("#factor-list-draft .kp-item").filter(has_text="spijbelt")
    await draft.get_by_role("button", name="Aanpassen").click()
    editing = expert.locator("#factor-list-draft .is-editing")
    await editing.get_by_label("Soort factor").select_option("precipitating")
    await editing.get_by_label("Bij wie hoort het?").select_option("child")
    await editing.get_by_role("button", name="Opslaan").click()
    await expect(jim.locator("#factor-list-school")).to_contain_text("spijbelt", timeout=LIVE)
    await expect(jim.locator("#factor-list-draft .kp-item")).to_have_count(1)

    # The quarrel keeps the truancy going; the team ticks a quality; all see both.
    await expect(expert.locator("#factor-list-school .kp-item")).to_have_count(1)
    await expert.get_by_label("Deze factor").select_option(label="Ruzie thuis over geld")
    await expert.get_by_label("houdt dit in stand").select_option(label="spijbelt sinds de zomer")
    await expert.get_by_role("button", name="Verband leggen").click()
    await expect(parent.locator("#factor-list-draft")).to_contain_text(
        "Houdt in stand:", timeout=LIVE
    )
    await expert.get_by_role("button", name="Eenvoudig").click()
    await expect(jim.locator("#quality-checklist")).to_contain_text("☑", timeout=LIVE)

    # Step 3: the JIM writes the perspective, the parent a goal tied to a factor that
    # arrived live in their form.
    await jim.get_by_role("button", name="Perspectief aanpassen").click()
    await jim.get_by_label("Gewenst perspectief, in de woorden van de jeugdige").fill(
        "Sem woont thuis en gaat naar school"
    )
    await jim.locator("#perspective").get_by_role("button", name="Opslaan").click()
    await expect(expert.locator("#perspective")).to_contain_text("Sem woont thuis", timeout=LIVE)
    await parent.get_by_label("Nieuw doel").fill("Weer elke dag naar school")
    await parent.locator("#goal-factor-choices").get_by_label("spijbelt sinds de zomer").check()
    await parent.get_by_role("button", name="Doel toevoegen").click()
    goal = expert.locator("#goal-list .kp-item")
    await expect(goal).to_contain_text("Weer elke dag naar school", timeout=LIVE)
    await expect(goal).to_contain_text("spijbelt sinds de zomer")
    await jim.get_by_label("Mijn kijk op deze stap").nth(2).fill("Ik ga mee naar school")
    await jim.get_by_role("button", name="Mijn kijk toevoegen").nth(2).click()
    await expect(expert.locator("#note-list-3")).to_contain_text("Ik ga mee", timeout=LIVE)

    # A conflicting edit of the perspective: nothing is lost silently.
    for page in (expert, jim):
        await page.get_by_role("button", name="Perspectief aanpassen").click()
    field = "Gewenst perspectief, in de woorden van de jeugdige"
    await expert.get_by_label(field).fill("Sem woont thuis, met hulp van opa")
    await expert.locator("#perspective").get_by_role("button", name="Opslaan").click()
    await jim.get_by_label(field).fill("Sem woont bij mij in de vakanties")
    await expect(jim.locator("#perspective .kp-changed-notice")).to_be_visible(timeout=LIVE)
    await jim.locator("#perspective").get_by_role("button", name="Opslaan").click()
    await expect(jim.locator("#perspective-current")).to_contain_text("met hulp van opa")
    assert await jim.get_by_label(field).input_value() == "Sem woont bij mij in de vakanties"
    await jim.locator("#perspective").get_by_role("button", name="Opslaan").click()
    await expect(expert.locator("#perspective")).to_contain_text(
        "bij mij in de vakanties", timeout=LIVE
    )

    for page, width in ((parent, 360), (jim, 360)):
        scroll = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"wider than the phone: {scroll}px"
    for ctx in contexts:
        await ctx.close()


async def _filled_world(runtime: Runtime) -> World:
    from keerpunt.platform.principal import staff_principal
    from keerpunt.triage import service as triage

    world = await build_world(runtime)
    sid = world.session_id
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        quarrel = await triage.add_factor(uow, sid, "home", "perpetuating", "Ruzie", "family")
        school = await triage.add_factor(uow, sid, "school", "precipitating", "Spijbelen")
        await triage.link_factors(uow, sid, quarrel.id, school.id)
        await triage.import_analysis(uow, sid, "Beschermend\n- Opa helpt")
        await triage.set_perspective(uow, sid, "Thuis wonen", 0)
        await triage.add_goal(uow, sid, "Naar school", [school.id], "Elke dag", None)
        await triage.tick_quality(uow, sid, "simple", True)
    return world


@pytest.mark.parametrize("width", [1280, 360])
async def test_the_filled_session_page_has_no_axe_violations(
    browser: Browser, runtime: Runtime, live_server: LiveServer, width: int
) -> None:
    world = await _filled_world(runtime)
    url = f"{live_server.url}/triage/sessions/{world.session_id}"
    problems: dict[str, list[str]] = {}
    for who, kw in (
        ("chair", {"user_id": world.coordinator.id}),
        ("expert", {"user_id": world.expert.id}),
        ("parent", {"member_id": world.members["parent"]}),
    ):
        ctx = await logged_in_context(browser, runtime, live_server, width=width, **kw)
        page = await ctx.new_page()
        await _open(page, url)
        # open the folded parts too: their contents are checked as well
        for summary in await page.locator("details > summary").all():
            await summary.click()
        if who == "expert":
            await (
                page.locator("#factor-list .kp-item")
                .first.get_by_role("button", name="Aanpassen")
                .click()
            )
            await expect(page.locator(".is-editing")).to_be_visible()
        found = await axe_violations(page, live_server)
        if await page.evaluate(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        ):
            found.append("scrolls sideways")
        if found:
            problems[who] = found
        await ctx.close()
    assert problems == {}
