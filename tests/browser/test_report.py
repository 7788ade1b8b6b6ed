"""Steps 4 and 5 live in real Chromium, then the chair closes the meeting with the family's
answer per party, downloads the PDF report, and a left-out party gets 404."""

from __future__ import annotations

import io

import pytest
from playwright.async_api import Browser, Page, expect
from pypdf import PdfReader

from keerpunt.platform.runtime import Runtime
from tests.browser.conftest import logged_in_context
from tests.conftest import LiveServer
from tests.triage.factories import build_world

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def _open(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("#kp-conn")).to_have_class("is-online", timeout=5000)
    await expect(page.locator("#arrangement-live")).to_be_visible(timeout=5000)


async def test_a_meeting_ends_with_a_pdf_report_for_those_allowed(
    browser: Browser, runtime: Runtime, live_server: LiveServer
) -> None:
    w = await build_world(runtime)
    url = f"{live_server.url}/triage/sessions/{w.session_id}"
    expert_ctx = await logged_in_context(browser, runtime, live_server, user_id=w.expert.id)
    chair_ctx = await logged_in_context(browser, runtime, live_server, user_id=w.coordinator.id)
    parent_ctx = await logged_in_context(
        browser, runtime, live_server, member_id=w.members["parent"], width=360
    )
    expert, chair, parent = (
        await expert_ctx.new_page(),
        await chair_ctx.new_page(),
        await parent_ctx.new_page(),
    )
    for page in (expert, chair, parent):
        await _open(page, url)

    # Step 4: the expert states Karakter's share; everyone sees the line and the suggestion.
    await expert.get_by_label("Zorgaanbieder").select_option(label="Karakter")
    await expert.get_by_label("Hoeveel").fill("3")
    await expert.get_by_label("Wat doet deze aanbieder? (het aandeel)").fill(
        "Gezinsbehandeling bij Sem thuis, één avond per week"
    )
    await expert.get_by_role("button", name="Hulp toevoegen").click()
    await expect(parent.locator("#arrangement-live")).to_contain_text(
        "één avond per week", timeout=2000
    )
    await expect(chair.locator("#procesregisseur-suggestion")).to_contain_text(
        "Karakter is de enige aanbieder"
    )
    # The chair appoints the procesregisseur and records the split as binding.
    await chair.get_by_role("button", name="Procesregisseur aanwijzen").click()
    await expect(parent.locator("#procesregisseur")).to_contain_text("Karakter", timeout=2000)
    await chair.get_by_role("button", name="Verdeling vastleggen").click()
    await expect(expert.locator("#arrangement-status")).to_contain_text(
        "De verdeling is vastgelegd", timeout=2000
    )
    await expect(expert.locator("#arrangement-line-add")).to_have_count(0)

    # Step 5: the parent adds an activity on the phone; the expert sees it live.
    await parent.get_by_label("Wie", exact=True).fill("Ma Canarie")
    await parent.get_by_label("Wat", exact=True).fill("Belt de mentor op school")
    await parent.get_by_role("button", name="Activiteit toevoegen").click()
    await expect(expert.locator("#plan-live")).to_contain_text(
        "Belt de mentor op school", timeout=2000
    )
    width = await parent.evaluate("document.documentElement.scrollWidth")
    assert width <= 360

    # Ending: the family says yes to everyone but Accare.
    for party, answer in (
        ("Accare", "Nee, niet naar deze partij"),
        ("Karakter", "Ja, het gezin vindt het goed"),
        ("Pactum", "Ja, het gezin vindt het goed"),
        ("Wijkteam", "Ja, het gezin vindt het goed"),
    ):
        await chair.get_by_role("group", name=f"Verslag naar {party}?").get_by_label(answer).check()
    await chair.get_by_role("button", name="Bespreking sluiten en verslag maken").click()
    await expect(chair.locator("#report-pdf")).to_be_visible(timeout=5000)
    await expect(parent.locator("#report-link")).to_be_visible(timeout=5000)

    async with chair.expect_download() as info:
        await chair.locator("#report-pdf").click()
    download = await info.value
    path = await download.path()
    assert path is not None
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages)
    assert "Verslag triage-bespreking" in text and "Karakter" in text

    await expert.locator("#report-link").click()
    await expect(expert.locator("h1")).to_contain_text("Sem Canarie")
    await expect(expert.locator("main")).to_contain_text("één avond per week")
    report_url = expert.url

    outsider_ctx = await logged_in_context(
        browser, runtime, live_server, user_id=w.outsider_expert.id
    )
    outsider = await outsider_ctx.new_page()
    response = await outsider.goto(report_url)
    assert response is not None and response.status == 404
    for ctx in (expert_ctx, chair_ctx, parent_ctx, outsider_ctx):
        await ctx.close()


@pytest.mark.parametrize("width", [1280, 360])
async def test_steps_4_5_the_ending_and_the_report_have_no_axe_violations(
    browser: Browser, runtime: Runtime, live_server: LiveServer, width: int
) -> None:
    from keerpunt.platform.principal import staff_principal
    from keerpunt.triage import plan, report
    from keerpunt.triage import service as triage
    from tests.browser.test_accessibility import axe_violations

    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_line(
            uow,
            w.session_id,
            w.provider.id,
            "45A52",
            "short_stay",
            "2",
            None,
            intensity_unit="etmaal",
            share="Logeren in het weekend",
        )
        await plan.add_activity(uow, w.session_id, "Ruud", "Bellen met school", None)
        await plan.set_agreement(uow, w.session_id, "crisis", "Eerst Oom Kees bellen", 0)
    url = f"{live_server.url}/triage/sessions/{w.session_id}"
    problems: dict[str, list[str]] = {}
    chair_ctx = await logged_in_context(
        browser, runtime, live_server, user_id=w.coordinator.id, width=width
    )
    chair = await chair_ctx.new_page()
    await _open(chair, url)
    await expect(chair.locator("#finish-form")).to_be_visible(timeout=5000)
    await expect(chair.locator("#plan-live")).to_contain_text("Status")
    problems["session (chair)"] = await axe_violations(chair, live_server)

    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        parties = await report.sharing_parties(uow, w.session_id)
        rep = await report.close_and_share(
            uow, w.session_id, {p.organisation_id: True for p in parties}
        )
    expert_ctx = await logged_in_context(
        browser, runtime, live_server, user_id=w.expert.id, width=width
    )
    expert = await expert_ctx.new_page()
    await _open(expert, url)
    await expect(expert.locator("#report-link")).to_be_visible(timeout=5000)
    problems["session closed (expert)"] = await axe_violations(expert, live_server)
    await expert.goto(f"{live_server.url}/triage/reports/{rep.public_id}")
    await expect(expert.locator("h1")).to_contain_text("Sem Canarie")
    problems["report"] = await axe_violations(expert, live_server)
    if width == 360:
        assert await expert.evaluate("document.documentElement.scrollWidth") <= 360
    for ctx in (chair_ctx, expert_ctx):
        await ctx.close()
    assert not {k: v for k, v in problems.items() if v}, problems
