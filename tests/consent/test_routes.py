"""Recording consent over HTTP: a mistake loses nothing, a consent opens the case."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from keerpunt.consent.models import ConsentRecord
from keerpunt.platform.runtime import Runtime
from tests.helpers import login
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio


async def test_a_bad_consent_form_comes_back_with_what_was_typed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    r = await client.post(
        f"/cases/{world.case_id}/consents",
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
        data={
            "subject_member_id": str(world.members["youth"]),
            "purpose": "information_exchange",
            "recipient": "role:triage_member",
            "decision": "objection",
            "obtained_how": "phone",
            "explanation": "kort",
            "valid_until": "morgen",
        },
    )
    assert r.status_code == 422
    assert "Vul een geldige datum in." in r.text
    assert 'value="objection" checked' in r.text
    assert '<option value="phone" selected>' in r.text
    assert "kort</textarea>" in r.text
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(ConsentRecord)) == 0


async def test_consent_from_youth_and_parent_opens_the_case_for_the_team(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    await login(client, runtime, user_id=world.expert.id)
    assert "Sem Canarie" not in (await client.get(f"/cases/{world.case_id}")).text
    client.cookies.clear()
    csrf = await login(client, runtime, user_id=world.registrar.id)
    for role in ("youth", "parent"):
        await _consent(client, csrf, world, role, "role:triage_member")
    client.cookies.clear()
    await login(client, runtime, user_id=world.expert.id)
    assert "Sem Canarie" in (await client.get(f"/cases/{world.case_id}")).text


async def test_only_the_youth_consenting_at_14_is_not_enough(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    await _consent(client, csrf, world, "youth", "all")
    client.cookies.clear()
    await login(client, runtime, user_id=world.expert.id)
    assert "Sem Canarie" not in (await client.get(f"/cases/{world.case_id}")).text


async def test_withdrawal_takes_effect_at_the_next_read(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)  # consent to the expert's organisation
    await login(client, runtime, user_id=world.expert.id)
    assert "Sem Canarie" in (await client.get(f"/cases/{world.case_id}")).text
    async with runtime.sessionmaker() as db:
        record_id = await db.scalar(select(ConsentRecord.id).limit(1))
    client.cookies.clear()
    csrf = await login(client, runtime, user_id=world.registrar.id)
    r = await client.post(f"/consents/{record_id}/withdraw", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303
    client.cookies.clear()
    await login(client, runtime, user_id=world.expert.id)
    assert "Sem Canarie" not in (await client.get(f"/cases/{world.case_id}")).text


async def test_consent_for_everyone_at_the_table_does_not_reach_team_members_elsewhere(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from tests.helpers import make_org, make_user

    world = await build_world(runtime, consent_to_expert_org=False)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    for role in ("youth", "parent"):
        await _consent(client, csrf, world, role, "all")
    elsewhere = await make_user(
        runtime,
        await make_org(runtime, "Tactus", agb_code="98000007"),
        "Eva Ervaring",
        "triage_member",
        "ervaringsdeskundige",
    )
    client.cookies.clear()
    await login(client, runtime, user_id=world.expert.id)  # invited to the meeting
    assert "Sem Canarie" in (await client.get(f"/cases/{world.case_id}")).text
    client.cookies.clear()
    await login(client, runtime, user_id=elsewhere.id)  # same team, not at this table
    page = (await client.get(f"/cases/{world.case_id}")).text
    assert page.count("Sem Canarie") == 0


async def _consent(
    client: httpx.AsyncClient, csrf: str, world: World, role: str, recipient: str
) -> None:
    """The registrar records a consent the way the form posts it."""
    r = await client.post(
        f"/cases/{world.case_id}/consents",
        headers={"X-CSRF-Token": csrf},
        data={
            "subject_member_id": str(world.members[role]),
            "purpose": "information_exchange",
            "recipient": recipient,
            "decision": "consent",
            "obtained_how": "in_person",
            "explanation": "Uitgelegd wat het triageteam met de gegevens doet.",
        },
    )
    assert r.status_code == 303, r.text
