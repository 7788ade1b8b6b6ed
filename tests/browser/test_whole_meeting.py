"""A whole triage meeting in real Chromium, as issue #3 puts it: an expert, a parent (on a
phone) and the JIM (on a phone), with the chair, each in their own browser, through the five
steps to the closing and the PDF report. On the way: the parent's connection drops and comes
back (the missed edits arrive without a reload), the expert and the parent edit the same goal
(the second save is refused with both texts on screen), every edit reaches the others within
a second, the family writes its own view and marks "niet over mij zonder mij", and axe-core
(WCAG 2.2 AA) finds nothing on any step, for the expert and the parent, 1280 and 360 px wide.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, WebSocketRoute, expect
from pypdf import PdfReader

from keerpunt.platform.runtime import Runtime
from tests.browser.conftest import logged_in_context
from tests.browser.test_accessibility import TAGS
from tests.browser.test_live_session import _open
from tests.conftest import LiveServer
from tests.triage.factories import build_world

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

# Edits reach everyone "within a second" (#3): the median over all edits of this meeting must,
# and each single edit must arrive within LIVE * 2 of its save's answer -- slack for a loaded
# 2-core CI machine running four Chromiums and the server side by side.
LIVE = 1000  # ms
BACK = 10_000  # ms for the table to notice that a phone dropped out
RECONNECT = 3000  # ms for a phone that is back online to reconnect
WIDTHS = (1280, 360)
HEIGHT = 900


class Line:
    """The parent's phone line: its websocket runs through here, so the test can drop it the
    way a phone loses its signal (abnormal closure, 1006; reconnects fail while offline)."""

    def __init__(self) -> None:
        self.offline = False
        self.page_side: WebSocketRoute | None = None
        self.server_side: WebSocketRoute | None = None

    async def route(self, ws: WebSocketRoute) -> None:
        if self.offline:
            await ws.close(code=1006)
            return
        self.page_side, self.server_side = ws, ws.connect_to_server()

    async def drop(self, ctx: BrowserContext) -> None:
        self.offline = True
        await ctx.set_offline(True)  # page requests fail too, and navigator.onLine is false
        page_side, server_side = self.page_side, self.server_side
        assert page_side is not None and server_side is not None
        # The server sees the connection end; the phone sees an abnormal closure (1006).
        server_side.on_close(lambda code, reason: None)  # not passed on as a clean close
        await server_side.close()
        await page_side.close(code=1006)

    async def restore(self, ctx: BrowserContext) -> None:
        self.offline = False
        await ctx.set_offline(False)


class Timer:
    """How long each edit took to reach the others (for the report of this test)."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    async def saved(self, page: Page, click: Callable[[], Awaitable[None]]) -> float:
        """Click a save button and wait for the server's answer; returns the moment of it."""
        async with page.expect_response(lambda r: r.request.method == "POST") as info:
            await click()
        response = await info.value
        assert response.status < 400, (response.status, await response.text())
        return time.monotonic()

    async def seen(self, since: float, *checks: tuple[Locator, str]) -> None:
        """Every check holds within LIVE * 2 of ``since`` (the save's answer)."""
        deadline = since + LIVE * 2 / 1000
        for where, text in checks:
            left = max(1.0, (deadline - time.monotonic()) * 1000)
            await expect(where).to_contain_text(text, timeout=left)
        self.ms.append((time.monotonic() - since) * 1000)

    @property
    def median(self) -> float:
        return sorted(self.ms)[len(self.ms) // 2]


async def axe(page: Page, server: LiveServer) -> list[str]:
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(url=f"{server.url}/static/vendor/axe-core/axe.min.js")
    result = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    return [
        f"{v['id']}: {v['help']} @ {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
    ]


async def accessible(pages: dict[str, Page], server: LiveServer, when: str) -> dict[str, list[str]]:
    """axe-core on the whole meeting page as it is now, at both widths; at 360 px nothing
    may need sideways scrolling. The pages are checked side by side (each its own renderer)."""

    async def check(who: str, page: Page) -> dict[str, list[str]]:
        problems: dict[str, list[str]] = {}
        own = page.viewport_size
        assert own is not None
        for width in WIDTHS:
            await page.set_viewport_size({"width": width, "height": HEIGHT})
            found = await axe(page, server)
            if width == 360:
                wide = await page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                if wide > 0:
                    found.append(f"scrolls sideways by {wide}px")
            if found:
                problems[f"{when}, {who}, {width}px"] = found
        await page.set_viewport_size(own)
        return problems

    found = await asyncio.gather(*(check(who, page) for who, page in pages.items()))
    return {k: v for problems in found for k, v in problems.items()}


async def on_screen(chair: Page, step: int, pages: list[Page]) -> None:
    await chair.get_by_role("button", name=f"Zet stap {step} op het scherm").click()
    for page in pages:
        await expect(page.locator('#kp-steps a[aria-current="step"]')).to_have_attribute(
            "href", f"#step-{step}", timeout=LIVE * 2
        )


async def test_a_whole_meeting_with_an_expert_a_parent_and_the_jim(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    url = f"{live_server.url}/triage/sessions/{world.session_id}"
    line = Line()
    expert_ctx = await logged_in_context(browser, runtime, live_server, user_id=world.expert.id)
    parent_ctx = await logged_in_context(
        browser, runtime, live_server, member_id=world.members["parent"], width=360
    )
    await parent_ctx.route_web_socket(re.compile(r"/ws(\?|$)"), line.route)
    jim_ctx = await logged_in_context(
        browser, runtime, live_server, member_id=world.members["jim"], width=360
    )
    chair_ctx = await logged_in_context(browser, runtime, live_server, user_id=world.coordinator.id)
    contexts = (expert_ctx, parent_ctx, jim_ctx, chair_ctx)
    expert, parent, jim, chair = [await c.new_page() for c in contexts]
    for page in (expert, parent, jim, chair):
        await _open(page, url)
    await parent.evaluate("window.__sameDocument = true")  # gone if the page reloads
    table = [expert, parent, jim]
    checked = {"expert": expert, "parent": parent}
    problems: dict[str, list[str]] = {}
    timer = Timer()

    # The family's screen: plain words, their own view on every step, no professional's
    # controls (the chair's screen, the arrangement's product codes).
    for family in (parent, jim):
        await expect(family.locator("html")).to_have_attribute("lang", "nl")
        await expect(family.get_by_label("Mijn kijk op deze stap")).to_have_count(5)
        await expect(family.get_by_role("button", name=re.compile("op het scherm"))).to_have_count(
            0
        )
        await expect(family.get_by_label("Productcode")).to_have_count(0)
    await expect(expert.get_by_label("Mijn kijk op deze stap")).to_have_count(0)

    # -- Step 1: the JIM ---------------------------------------------------------------------
    await on_screen(chair, 1, table)
    for page in table:
        await expect(page.locator("#jim-list")).to_contain_text("Oom Kees")
    await expect(expert.locator("#kp-presence")).to_contain_text("Ma Canarie")
    await expect(expert.locator("#kp-presence")).to_contain_text("Oom Kees")
    await jim.get_by_label("Mijn kijk op deze stap").nth(0).fill("Ik ken Sem al zijn hele leven")
    t = await timer.saved(jim, jim.get_by_role("button", name="Mijn kijk toevoegen").nth(0).click)
    await timer.seen(
        t,
        (expert.locator("#note-list-1"), "Ik ken Sem al zijn hele leven"),
        (parent.locator("#note-list-1"), "Ik ken Sem al zijn hele leven"),
    )
    await expect(expert.locator("#note-list-1")).to_contain_text("Eigen kijk")
    problems |= await accessible(checked, live_server, "step 1")

    # -- Step 2: the explanatory analysis ----------------------------------------------------
    await on_screen(chair, 2, table)
    step2 = expert.locator("#step-2")
    await step2.get_by_label("Leefgebied").select_option("home")
    await step2.get_by_label("Soort factor").select_option("perpetuating")
    await step2.get_by_label("Bij wie hoort het?").select_option("family")
    await step2.get_by_label("Wat is er aan de hand?").fill("Ruzie thuis over geld")
    t = await timer.saved(expert, step2.get_by_role("button", name="Toevoegen", exact=True).click)
    await timer.seen(
        t,
        (parent.locator("#factor-list-home"), "Ruzie thuis over geld"),
        (jim.locator("#factor-list-home"), "Ruzie thuis over geld"),
    )
    await step2.get_by_label("Leefgebied").select_option("school")
    await step2.get_by_label("Soort factor").select_option("precipitating")
    await step2.get_by_label("Bij wie hoort het?").select_option("child")
    await step2.get_by_label("Wat is er aan de hand?").fill("Sem spijbelt sinds de zomer")
    t = await timer.saved(expert, step2.get_by_role("button", name="Toevoegen", exact=True).click)
    await timer.seen(t, (parent.locator("#factor-list-school"), "Sem spijbelt sinds de zomer"))

    # The parent adds their own factor and marks it "niet over mij zonder mij".
    pstep2 = parent.locator("#step-2")
    await pstep2.get_by_label("Leefgebied").select_option("health")
    await pstep2.get_by_label("Wat is er aan de hand?").fill("Mijn depressie")
    t = await timer.saved(parent, pstep2.get_by_role("button", name="Toevoegen", exact=True).click)
    own = expert.locator("#factor-list-health .kp-item")
    await timer.seen(t, (own, "Mijn depressie"), (jim.locator("#factor-list-health"), "Mijn"))
    await expect(own).to_contain_text("Eigen kijk")
    flag = parent.locator("#factor-list-health").get_by_role(
        "button", name="Niet over mij zonder mij"
    )
    t = await timer.saved(parent, flag.click)
    await timer.seen(t, (own, "Niet over mij zonder mij"))
    await expect(own).to_contain_text("Mijn depressie")  # the parent is at the table

    # The link: the quarrel keeps the truancy going.
    await expert.get_by_label("Deze factor").select_option(label="Ruzie thuis over geld")
    await expert.get_by_label("houdt dit in stand").select_option(
        label="Sem spijbelt sinds de zomer"
    )
    t = await timer.saved(expert, expert.get_by_role("button", name="Verband leggen").click)
    await timer.seen(
        t,
        (parent.locator("#factor-list-home"), "Houdt in stand:"),
        (jim.locator("#factor-list-home"), "Sem spijbelt sinds de zomer"),
    )

    # The parent's phone loses its connection. The table sees them go (and their wish now
    # holds their factor back); the others go on working.
    await line.drop(parent_ctx)
    await expect(parent.locator("#kp-conn")).to_have_class("is-offline", timeout=BACK)
    await expect(expert.locator("#kp-presence")).not_to_contain_text("Ma Canarie", timeout=BACK)
    await expect(own).not_to_contain_text("Mijn depressie", timeout=LIVE * 2)
    await step2.get_by_label("Leefgebied").select_option("network")
    await step2.get_by_label("Soort factor").select_option("protective")
    await step2.get_by_label("Wat is er aan de hand?").fill("Opa helpt elke woensdag")
    t = await timer.saved(expert, step2.get_by_role("button", name="Toevoegen", exact=True).click)
    await timer.seen(t, (jim.locator("#factor-list-network"), "Opa helpt elke woensdag"))
    jim_view = jim.get_by_label("Mijn kijk op deze stap")
    await jim_view.nth(1).fill("Sem is slim, school snapt hem niet")
    t = await timer.saved(jim, jim.get_by_role("button", name="Mijn kijk toevoegen").nth(1).click)
    await timer.seen(t, (expert.locator("#note-list-2"), "Sem is slim"))
    # Meanwhile the parent writes on the phone: not sent, and not lost either.
    await parent.get_by_label("Mijn kijk op deze stap").nth(1).fill("Ik wil dat Sem thuis blijft")
    await parent.get_by_role("button", name="Mijn kijk toevoegen").nth(1).click()
    await expect(parent.locator("#kp-conn")).to_have_class("is-offline")
    await expect(parent.get_by_label("Mijn kijk op deze stap").nth(1)).to_have_value(
        "Ik wil dat Sem thuis blijft"
    )
    await expect(parent.locator("#factor-list-network")).not_to_contain_text("Opa helpt")
    # Without any network the phone keeps trying every second (not after ws.js's growing
    # pauses of up to a minute), so it catches up as soon as its signal is back.
    assert await parent.evaluate("navigator.onLine") is False
    assert await parent.evaluate("htmx.config.wsReconnectDelay(6)") <= 1000

    # Back online: the phone reconnects by itself and catches up, without a reload.
    await line.restore(parent_ctx)
    back = time.monotonic()
    await expect(parent.locator("#kp-conn")).to_have_class("is-online", timeout=RECONNECT)
    back_ms = (time.monotonic() - back) * 1000
    await expect(parent.locator("#factor-list-network")).to_contain_text(
        "Opa helpt elke woensdag", timeout=LIVE * 2
    )
    await expect(parent.locator("#note-list-2")).to_contain_text("Sem is slim")
    assert await parent.evaluate("window.__sameDocument === true")
    await expect(expert.locator("#kp-presence")).to_contain_text("Ma Canarie", timeout=LIVE * 2)
    await expect(own).to_contain_text("Mijn depressie", timeout=LIVE * 2)
    await expect(parent.get_by_label("Mijn kijk op deze stap").nth(1)).to_have_value(
        "Ik wil dat Sem thuis blijft"
    )
    t = await timer.saved(
        parent, parent.get_by_role("button", name="Mijn kijk toevoegen").nth(1).click
    )
    await timer.seen(t, (expert.locator("#note-list-2"), "Ik wil dat Sem thuis blijft"))
    sent = expert.locator("#note-list-2 .kp-item").filter(has_text="Ik wil dat Sem thuis blijft")
    await expect(sent).to_have_count(1)  # the try while offline never reached the server
    problems |= await accessible(checked, live_server, "step 2")

    # -- Step 3: perspective and goals, in the youth's words --------------------------------
    await on_screen(chair, 3, table)
    await jim.get_by_role("button", name="Perspectief aanpassen").click()
    await jim.get_by_label("Gewenst perspectief, in de woorden van de jeugdige").fill(
        "Ik woon thuis en ik ga naar school"
    )
    t = await timer.saved(
        jim, jim.locator("#perspective").get_by_role("button", name="Opslaan").click
    )
    await timer.seen(
        t,
        (expert.locator("#perspective"), "Ik woon thuis en ik ga naar school"),
        (parent.locator("#perspective"), "Ik woon thuis en ik ga naar school"),
    )
    await parent.get_by_label("Nieuw doel").fill("Weer elke dag naar school")
    await parent.locator("#goal-factor-choices").get_by_label("Sem spijbelt sinds de zomer").check()
    t = await timer.saved(parent, parent.get_by_role("button", name="Doel toevoegen").click)
    goal = expert.locator("#goal-list .kp-item")
    await timer.seen(t, (goal, "Weer elke dag naar school"), (jim.locator("#goal-list"), "Weer"))
    await expect(goal).to_contain_text("Sem spijbelt sinds de zomer")

    # The expert and the parent edit the same goal; the parent saves second.
    item = "#" + str(await goal.first.get_attribute("id"))
    for page in (expert, parent):
        await page.locator(item).get_by_role("button", name="Aanpassen").click()
        await expect(page.locator(f"{item}.is-editing")).to_be_visible()
    await expert.locator(f"{item} textarea[name=text]").fill("Elke dag naar school, op de fiets")
    t = await timer.saved(expert, expert.locator(item).get_by_role("button", name="Opslaan").click)
    await parent.locator(f"{item} textarea[name=text]").fill("Elke dag naar school, met oom Kees")
    await timer.seen(t, (parent.locator(f"{item} .kp-changed-notice"), "Iemand anders"))
    await expect(parent.locator(f"{item} .kp-changed-notice")).to_be_visible()
    await expect(jim.locator(item)).to_contain_text("op de fiets", timeout=LIVE * 2)
    refused = parent.locator(item).get_by_role("button", name="Opslaan")
    async with parent.expect_response(lambda r: r.request.method == "POST") as info:
        await refused.click()
    assert (await info.value).status == 409
    await expect(parent.locator(f"{item}-current")).to_contain_text("op de fiets")
    await expect(parent.locator(f"{item} textarea[name=text]")).to_have_value(
        "Elke dag naar school, met oom Kees"
    )
    problems |= await accessible(checked, live_server, "step 3, both texts on screen")
    t = await timer.saved(parent, parent.locator(item).get_by_role("button", name="Opslaan").click)
    await timer.seen(
        t,
        (expert.locator(item), "Elke dag naar school, met oom Kees"),
        (jim.locator(item), "Elke dag naar school, met oom Kees"),
    )

    # -- Step 4: the arrangement -------------------------------------------------------------
    await on_screen(chair, 4, table)
    arrange = expert.locator("#arrangement-line-add")
    await arrange.get_by_label("Zorgaanbieder").select_option(label="Karakter")
    await arrange.get_by_label("Vorm van de hulp").select_option("intensive_ambulant")
    await arrange.get_by_label("Hoeveel").fill("6")
    await arrange.get_by_label("Wat doet deze aanbieder? (het aandeel)").fill(
        "Gezinsbehandeling bij Sem thuis, één avond per week"
    )
    t = await timer.saved(expert, arrange.get_by_role("button", name="Hulp toevoegen").click)
    await timer.seen(
        t,
        (parent.locator("#arrangement-live"), "één avond per week"),
        (jim.locator("#arrangement-live"), "één avond per week"),
    )
    await arrange.get_by_label("Zorgaanbieder").select_option(label="Pactum")
    await arrange.get_by_label("Vorm van de hulp").select_option("day_treatment")
    await arrange.get_by_label("Hoeveel").fill("1")
    await arrange.get_by_label("Eenheid").select_option("dagdeel")
    await arrange.get_by_label("Wat doet deze aanbieder? (het aandeel)").fill(
        "Een stoel op woensdagmiddag als het thuis niet gaat"
    )
    t = await timer.saved(expert, arrange.get_by_role("button", name="Hulp toevoegen").click)
    await timer.seen(t, (parent.locator("#arrangement-split"), "Pactum"))
    # Karakter gives the most help (6 hours against one dagdeel of 4): the suggestion.
    await expect(chair.locator("#procesregisseur-suggestion")).to_contain_text(
        "Karakter geeft de meeste hulp"
    )
    t = await timer.saved(
        chair, chair.get_by_role("button", name="Procesregisseur aanwijzen").click
    )
    await timer.seen(
        t,
        (parent.locator("#procesregisseur"), "Karakter"),
        (expert.locator("#procesregisseur"), "Karakter"),
    )
    t = await timer.saved(chair, chair.get_by_role("button", name="Verdeling vastleggen").click)
    await timer.seen(
        t,
        (expert.locator("#arrangement-status"), "De verdeling is vastgelegd"),
        (parent.locator("#arrangement-status"), "De verdeling is vastgelegd"),
    )
    await expect(expert.locator("#arrangement-line-add")).to_have_count(0)
    parent_view = parent.get_by_label("Mijn kijk op deze stap")
    await parent_view.nth(3).fill("Liever hulp thuis dan ergens anders")
    t = await timer.saved(
        parent, parent.get_by_role("button", name="Mijn kijk toevoegen").nth(3).click
    )
    await timer.seen(t, (expert.locator("#note-list-4"), "Liever hulp thuis"))
    problems |= await accessible(checked, live_server, "step 4")

    # -- Step 5: the plan --------------------------------------------------------------------
    await on_screen(chair, 5, table)
    await parent.get_by_label("Wie", exact=True).fill("Ma Canarie")
    await parent.get_by_label("Wat", exact=True).fill("Belt de mentor op school")
    t = await timer.saved(parent, parent.get_by_role("button", name="Activiteit toevoegen").click)
    await timer.seen(
        t,
        (expert.locator("#plan-live"), "Belt de mentor op school"),
        (jim.locator("#plan-live"), "Belt de mentor op school"),
    )
    await expert.locator("#agreement-crisis").get_by_role("button").click()
    await expert.get_by_label("Wat doen we bij een crisis?").fill("Eerst Oom Kees bellen")
    t = await timer.saved(
        expert, expert.locator("#agreement-crisis").get_by_role("button", name="Opslaan").click
    )
    await timer.seen(
        t,
        (parent.locator("#agreement-crisis"), "Eerst Oom Kees bellen"),
        (jim.locator("#agreement-crisis"), "Eerst Oom Kees bellen"),
    )
    problems |= await accessible(checked, live_server, "step 5")

    # -- Ending: the family's answer per party, then the report -------------------------------
    # The attendance list (triage hours for settlement) keeps its prefilled hours.
    for fieldset in await chair.locator("#finish-form fieldset:not(#attendance)").all():
        legend = await fieldset.locator("legend").inner_text()
        answer = "Nee, niet naar deze partij" if "Accare" in legend else "Ja, het gezin vindt"
        await fieldset.get_by_label(answer).check()
    await chair.get_by_role("button", name="Bespreking sluiten en verslag maken").click()
    await expect(chair.locator("#report-pdf")).to_be_visible(timeout=BACK)
    for page in table:
        await expect(page.locator("#report-link")).to_be_visible(timeout=LIVE * 2)
    problems |= await accessible(checked, live_server, "closed")

    await expert.locator("#report-link").click()
    await expect(expert.locator("h1")).to_contain_text("Sem Canarie")
    async with expert.expect_download() as info:
        await expert.locator("#report-download").click()
    path = await (await info.value).path()
    assert path is not None
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages)
    flat = " ".join(text.split())
    for entered in (
        "Ruzie thuis over geld",  # the expert, step 2
        "Opa helpt elke woensdag",  # the expert, while the parent was away
        "Ik woon thuis en ik ga naar school",  # the JIM, the youth's perspective
        "Elke dag naar school, met oom Kees",  # the parent's goal, after the conflict
        "Ik wil dat Sem thuis blijft",  # the parent's own view, written offline
        "Liever hulp thuis dan ergens anders",  # the parent's own view on step 4
        "één avond per week",  # Karakter's stated share
        "Procesregisseur: Karakter",
        "Belt de mentor op school",  # the parent's activity
        "Eerst Oom Kees bellen",  # the crisis plan
    ):
        assert entered in flat, f"{entered!r} not in the report"
    # "Niet over mij zonder mij": a report read later, without the parent, holds it back.
    assert "Mijn depressie" not in flat

    for ctx in contexts:
        await ctx.close()
    print(
        f"\nlive edits: n={len(timer.ms)} median={timer.median:.0f}ms max={max(timer.ms):.0f}ms;"
        f" back online after {back_ms:.0f}ms"
    )
    assert timer.median <= LIVE, timer.ms
    assert problems == {}, problems
