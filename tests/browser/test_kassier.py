"""The kassier in a real browser: a provider without a bank account blocks the payment batch,
its finance clerk fills in the account (a wrong IBAN first), and the kassier downloads the
same SEPA file twice. axe-core (WCAG 2.2 AA) on every page and state, at 1280 and 360 px."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from keerpunt.platform.runtime import Runtime
from tests.browser.conftest import logged_in_context
from tests.browser.test_accessibility import axe_violations
from tests.conftest import LiveServer
from tests.settlement.test_kassier_run import HORIZON_IBAN, add_account, build_kassier, close

pytestmark = [pytest.mark.anyio, pytest.mark.browser]


async def check(page: Page, server: LiveServer, what: str, problems: dict[str, list[str]]) -> None:
    found = await axe_violations(page, server)
    if await page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    ):
        found.append("scrolls sideways")
    if found:
        problems[what] = found


@pytest.mark.parametrize("width", [1280, 360])
async def test_fill_in_the_missing_account_and_download_the_batch(
    browser: Browser, runtime: Runtime, live_server: LiveServer, width: int, tmp_path: Path
) -> None:
    k = await build_kassier(runtime, accounts=False)
    await add_account(runtime, k.kassier_finance, {"iban": HORIZON_IBAN, "holder_name": "Horizon"})
    await close(runtime, k)
    problems: dict[str, list[str]] = {}

    kassier = await logged_in_context(
        browser, runtime, live_server, user_id=k.kassier_finance.id, width=width
    )
    page = await kassier.new_page()
    await page.goto(live_server.url + "/settlement/kassier")
    await check(page, live_server, "index", problems)
    await page.get_by_role("link", name="Kwartaal 2026K3").click()
    await page.wait_for_url("**/settlement/kassier/2026Q3")
    await page.get_by_text("Altra heeft geen bankrekening die geldig is op").wait_for()
    assert await page.get_by_role("link", name="Download de betaalopdracht").count() == 0
    await check(page, live_server, "kassier, blocked", problems)

    altra = await logged_in_context(
        browser, runtime, live_server, user_id=k.altra_finance.id, width=width
    )
    clerk = await altra.new_page()
    await clerk.goto(live_server.url + "/settlement/bank-accounts")
    await check(clerk, live_server, "bank accounts", problems)
    await clerk.get_by_label("IBAN").fill("NL20 INGB 0001 2345 68")
    await clerk.get_by_label("Op naam van").fill("Altra Zorg")
    await clerk.get_by_label("Geldig vanaf").fill("2026-01-01")
    await clerk.get_by_role("button", name="Bankrekening opslaan").click()
    await clerk.get_by_text("De controlecijfers van dit IBAN kloppen niet.").wait_for()
    await check(clerk, live_server, "bank accounts, wrong IBAN", problems)
    await clerk.get_by_label("IBAN").fill("NL20 INGB 0001 2345 67")
    await clerk.get_by_role("button", name="Bankrekening opslaan").click()
    await clerk.get_by_text("De bankrekening is opgeslagen").wait_for()
    await check(clerk, live_server, "bank accounts, saved", problems)
    await altra.close()

    await page.reload()
    await page.get_by_text("dit klopt tot op de cent").wait_for()
    await check(page, live_server, "kassier, ready", problems)
    files = []
    for _ in range(2):
        async with page.expect_download() as info:
            await page.get_by_role("link", name="Download de betaalopdracht").click()
        download = await info.value
        target = tmp_path / f"{len(files)}-{download.suggested_filename}"
        await download.save_as(target)
        files.append(target.read_bytes())
    await kassier.close()
    assert files[0] == files[1] and b"<IBAN>NL20INGB0001234567</IBAN>" in files[0]
    assert not problems, problems
