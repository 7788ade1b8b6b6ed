"""Real headless Chromium (Debian's) driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, start_session
from tests.conftest import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        await b.close()


async def logged_in_context(
    browser: Browser,
    rt: Runtime,
    server: LiveServer,
    *,
    user_id: int | None = None,
    member_id: int | None = None,
    width: int = 1280,
) -> BrowserContext:
    async with rt.sessionmaker() as db, db.begin():
        token = await start_session(db, how="test", hours=1, user_id=user_id, member_id=member_id)
    ctx = await browser.new_context(viewport={"width": width, "height": 900}, locale="nl-NL")
    await ctx.add_cookies(
        [
            {
                "name": COOKIE_NAME,
                "value": SessionSigner(str(rt.settings.secret_key)).dumps(token),
                "url": server.url,
            }
        ]
    )
    return ctx
