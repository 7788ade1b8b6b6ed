"""The main menu links to exactly the settlement pages each person may open: no link that
ends in "not found" or "not allowed", and no page they may open without a way in (a menu
link, or a link on a page the menu leads to)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from keerpunt.platform.models import Organisation, User
from keerpunt.platform.runtime import Runtime
from tests.helpers import login, make_user
from tests.settlement.test_kassier_run import build_kassier, close

pytestmark = pytest.mark.anyio

# The pages the main menu may lead to, and the pages reached from them (page -> its way in).
MENU = (
    "/settlement/quarter",
    "/settlement/kassier",
    "/settlement/allocations",
    "/settlement/monitor",
    "/settlement/triage-rates",
    "/settlement/api-token",
)
BEHIND = {
    "/settlement/contracts": "/settlement/quarter",
    "/settlement/run": "/settlement/quarter",
    "/settlement/bank-accounts": "/settlement/kassier",
    "/settlement/import": "/settlement/allocations",
    "/settlement/triage-hours": "/settlement/monitor",
}


def _links(html: str, *, within: str = "") -> set[str]:
    if within:
        found = re.search(within, html, re.S)
        html = found.group(0) if found else ""
    return {urlsplit(h).path for h in re.findall(r'href="([^"]+)"', html)}


async def _people(rt: Runtime) -> dict[str, User]:
    k = await build_kassier(rt)
    await close(rt, k)
    async with rt.sessionmaker() as db:
        zwolle = await db.scalar(select(Organisation).where(Organisation.name == "Gemeente Zwolle"))
    assert zwolle is not None
    region = k.w.region
    return {
        "penvoerder finance": region.finance,
        "penvoerder coordinator": region.coordinator,
        "kassier finance": k.kassier_finance,
        "sub-provider finance": k.altra_finance,
        "provider staff without a role": k.w.horizon_staff,
        "municipality finance": await make_user(rt, zwolle, "Gerda Gemeente", "finance"),
        "funder": await make_user(rt, zwolle, "Frits Financier", "funder"),
        "local team": await make_user(rt, region.wijkteam, "Wim Wijk", "registrar"),
    }


async def test_the_menu_links_exactly_the_pages_each_person_may_open(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    people = await _people(runtime)
    seen: dict[str, set[str]] = {}
    for name, person in people.items():
        client.cookies.clear()
        await login(client, runtime, user_id=person.id)
        landing = await client.get("/", follow_redirects=True)
        assert landing.status_code == 200, name
        menu = _links(landing.text, within=r'<nav aria-label="Hoofdmenu">.*?</nav>')
        opens = {p for p in (*MENU, *BEHIND) if (await client.get(p)).status_code == 200}
        for page in MENU:
            assert (page in menu) == (page in opens), (name, page)
        for page, way_in in BEHIND.items():
            if page in opens:
                assert way_in in menu, (name, page)
                assert page in _links((await client.get(way_in)).text), (name, page)
        seen[name] = opens & set(MENU)
    # What the rules give (DOMAIN.md): a provider's staff enter their own care; finance staff
    # of a provider also its kassier pages and API key; the penvoerder's finance everything.
    assert seen["provider staff without a role"] == {"/settlement/allocations"}
    assert seen["penvoerder coordinator"] == {"/settlement/allocations"}
    assert seen["kassier finance"] == {
        "/settlement/kassier",
        "/settlement/allocations",
        "/settlement/api-token",
    }
    assert seen["municipality finance"] == set()
    assert seen["funder"] == {"/settlement/monitor"}
    assert seen["local team"] == set()
    assert seen["penvoerder finance"] == set(MENU)


async def test_a_providers_staff_find_their_own_statement_from_the_allocations_page(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    people = await _people(runtime)
    horizon = people["provider staff without a role"].organisation_id
    own = f"/settlement/run/2026Q3/statement/{horizon}"
    for name in ("provider staff without a role", "kassier finance"):
        client.cookies.clear()
        await login(client, runtime, user_id=people[name].id)
        assert (await client.get(own)).status_code == 200
        page = await client.get("/settlement/allocations")
        assert own in _links(page.text), name
        assert (
            await client.get(f"/settlement/run/2026Q3/statement/{horizon + 1}")
        ).status_code == 404


async def test_staff_who_only_handle_money_land_on_their_own_first_page(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Not on an always-empty case list: the penvoerder's finance on the quarter, a
    provider's finance on its allocations and deliveries, a funder on the monitor."""
    people = await _people(runtime)
    landing = {
        "penvoerder finance": "/settlement/quarter",
        "kassier finance": "/settlement/allocations",
        "sub-provider finance": "/settlement/allocations",
        "funder": "/settlement/monitor",
        "penvoerder coordinator": "/cases",
        "local team": "/cases",
        "provider staff without a role": "/cases",
        "municipality finance": "/cases",  # no settlement page of its own
    }
    for name, path in landing.items():
        client.cookies.clear()
        await login(client, runtime, user_id=people[name].id)
        r = await client.get("/", follow_redirects=True)
        assert r.status_code == 200, name
        assert urlsplit(str(r.url)).path == path, name
