"""Anonymous discussion (anonieme bespreking): without consent the table sees only
non-identifying facts — age band, domain, and a problem description the registrar wrote as
anonymous. Identifying data in that description needs a deliberate second look."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from keerpunt.platform.models import Case
from keerpunt.platform.runtime import Runtime
from tests.helpers import login
from tests.triage.factories import ENTRY_FORM_YES, build_world

pytestmark = pytest.mark.anyio

SUMMARY = "Jongen van 14, loopt vast op school en thuis; ouders zijn uitgeput."


def _form(csrf: str, **extra: str) -> dict[str, str]:
    return {
        **ENTRY_FORM_YES,
        "csrf_token": csrf,
        "youth_name": "Daan Kanarie",
        "birth_date": "2012-03-04",
        "parent_1": "Els Kanarie",
        "situation": "Vader Kanarie woont in Zwolle",
        "domain": "ggz",
        **extra,
    }


async def _count(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(Case)) or 0)


async def test_an_identifying_anonymous_description_is_held_until_confirmed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    before = await _count(runtime)
    typed = "Daan loopt vast, bel moeder op 06-12345678."
    resp = await client.post("/cases/new", data=_form(csrf, anonymous_summary=typed))
    assert resp.status_code == 422
    assert "herkenbare gegevens" in resp.text
    assert typed in resp.text  # nothing typed is lost
    assert await _count(runtime) == before  # nothing written

    # a date of birth or a phone number is identifying whatever the names are
    resp = await client.post(
        "/cases/new", data=_form(csrf, anonymous_summary="Geboren 04-03-2012, zit thuis.")
    )
    assert resp.status_code == 422 and await _count(runtime) == before

    # the registrar looked again and confirms: it is saved as written
    resp = await client.post(
        "/cases/new", data=_form(csrf, anonymous_summary=typed, summary_checked="yes")
    )
    assert resp.status_code == 303
    assert await _count(runtime) == before + 1


async def test_without_consent_the_table_sees_only_the_non_identifying_facts(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    resp = await client.post("/cases/new", data=_form(csrf, anonymous_summary=SUMMARY))
    assert resp.status_code == 303, resp.text
    case_url = resp.headers["location"]
    case_id = int(case_url.rstrip("/").rsplit("/", 1)[1])
    async with runtime.sessionmaker() as db:
        case = await db.get(Case, case_id)
        assert case is not None and case.domain == "ggz"
        assert case.anonymous_summary_enc and b"uitgeput" not in case.anonymous_summary_enc

    # the registrar sees everything
    page = (await client.get(case_url)).text
    assert "Daan Kanarie" in page and SUMMARY in page

    # the coordinator has no consent for this case: pseudonym and the anonymous facts only
    await login(client, runtime, user_id=world.coordinator.id)
    page = (await client.get(case_url)).text
    assert "Daan" not in page and "Kanarie" not in page and "Zwolle" not in page
    assert SUMMARY in page
    assert "12-15" in page
    assert "ggz" in page.lower()


async def test_an_unknown_domain_is_refused_in_plain_dutch(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    before = await _count(runtime)
    resp = await client.post("/cases/new", data=_form(csrf, domain="anders"))
    assert resp.status_code == 422
    assert "Kies het domein" in resp.text
    assert await _count(runtime) == before


async def test_identifying_text_written_under_the_pseudonym_needs_a_second_look(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """An expert without consent writes for everyone at the table (anonymous items): a phone
    number or a date is caught before it is saved; after a second look it is saved."""
    from keerpunt.triage.models import Factor

    world = await build_world(runtime, consent_to_expert_org=False)
    csrf = await login(client, runtime, user_id=world.expert.id)
    url = f"/triage/sessions/{world.session_id}/factors"
    typed = "Moeder is bereikbaar op 06-12345678, vader niet."
    form = {"life_area": "home", "kind": "perpetuating", "text": typed, "csrf_token": csrf}
    resp = await client.post(url, data=form, headers={"HX-Request": "true"})
    assert resp.status_code == 422
    assert "herkenbare gegevens" in resp.text and typed in resp.text
    assert 'name="confirm_identifying"' in resp.text
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Factor)) == 0

    # plain, non-identifying text goes through at once
    plain = {**form, "text": "Veel ruzie thuis over school."}
    resp = await client.post(url, data=plain, headers={"HX-Request": "true"})
    assert resp.status_code == 200

    resp = await client.post(
        url, data={**form, "confirm_identifying": "yes"}, headers={"HX-Request": "true"}
    )
    assert resp.status_code == 200
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Factor)) == 2

    # the registrar sees the case in full and writes for those allowed: no extra step
    csrf = await login(client, runtime, user_id=world.registrar.id)
    resp = await client.post(url, data={**form, "csrf_token": csrf}, headers={"HX-Request": "true"})
    assert resp.status_code == 200


async def test_the_meeting_page_shows_the_anonymous_facts_to_the_table(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    resp = await client.post("/cases/new", data=_form(csrf, anonymous_summary=SUMMARY))
    case_id = int(resp.headers["location"].rstrip("/").rsplit("/", 1)[1])
    coord_csrf = await login(client, runtime, user_id=world.coordinator.id)
    resp = await client.post(
        f"/cases/{case_id}/sessions",
        data={"csrf_token": coord_csrf, "scheduled_at": "2030-01-07T10:00"},
    )
    assert resp.status_code == 303, resp.text
    page = (await client.get(resp.headers["location"])).text
    assert 'id="anonymous-facts"' in page
    assert SUMMARY in page and "Psychische problemen (ggz)" in page
    assert "Daan" not in page and "Kanarie" not in page


async def test_editing_an_anonymous_item_gets_the_same_second_look(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """An anonymous item is read by everyone at the table: a name typed into it by someone
    who sees the case in full is caught too, and nothing typed is lost."""
    from keerpunt.platform.principal import staff_principal
    from keerpunt.triage import service as triage

    world = await build_world(runtime, consent_to_expert_org=False)
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        factor = await triage.add_factor(uow, world.session_id, "school", "perpetuating", "Mist")
        factor_id, version = factor.id, factor.version
    csrf = await login(client, runtime, user_id=world.registrar.id)
    url = f"/triage/sessions/{world.session_id}/factor/{factor_id}"
    typed = "Sem Canarie mist veel lessen"
    form = {"text": typed, "version": str(version), "csrf_token": csrf}
    resp = await client.post(url, data=form, headers={"HX-Request": "true"})
    assert resp.status_code == 422, resp.text
    assert "herkenbare gegevens" in resp.text and typed in resp.text
    resp = await client.post(
        url, data={**form, "confirm_identifying": "yes"}, headers={"HX-Request": "true"}
    )
    assert resp.status_code == 200
