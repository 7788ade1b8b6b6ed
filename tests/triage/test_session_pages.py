"""The session page over HTTP: five steps, forms that keep what was typed, stale edits."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from keerpunt.platform.runtime import Runtime
from keerpunt.triage.models import Factor, Goal, GoalFactor
from tests.helpers import login
from tests.triage.factories import build_world

pytestmark = pytest.mark.anyio


async def test_the_page_walks_the_five_steps_and_the_chair_sets_the_screen(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    csrf = await login(client, runtime, user_id=world.coordinator.id)
    page = await client.get(f"/triage/sessions/{sid}")
    assert page.status_code == 200
    for n in range(1, 6):
        assert f'id="step-{n}"' in page.text
    # step 1: the JIM of this case (the chair's organisation has no consent: no name)
    assert "JIM (mentor)" in page.text and "Oom Kees" not in page.text
    assert "Uitgenodigd voor deze bespreking." in page.text
    assert "Zet stap 3 op het scherm" in page.text
    h = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    r = await client.post(f"/triage/sessions/{sid}/screen", headers=h, data={"step": "3"})
    assert r.status_code == 204
    page = await client.get(f"/triage/sessions/{sid}")
    assert 'href="#step-3" aria-current="step"' in page.text

    client.cookies.clear()
    csrf = await login(client, runtime, user_id=world.expert.id)
    h = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    r = await client.post(f"/triage/sessions/{sid}/screen", headers=h, data={"step": "2"})
    assert r.status_code == 403
    page = await client.get(f"/triage/sessions/{sid}")
    assert "Zet stap" not in page.text and "Oom Kees" in page.text


async def test_import_link_and_goal_through_the_forms(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    csrf = await login(client, runtime, user_id=world.expert.id)
    h = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    empty = await client.post(
        f"/triage/sessions/{sid}/factors/import", headers=h, data={"analysis": "  "}
    )
    assert empty.status_code == 422 and "Plak de tekst" in empty.text
    r = await client.post(
        f"/triage/sessions/{sid}/factors/import",
        headers=h,
        data={"analysis": "In stand houdend\n- Ruzie thuis\nSchool: spijbelt"},
    )
    assert r.status_code == 200
    async with runtime.sessionmaker() as db:
        quarrel, truancy = (await db.scalars(select(Factor).order_by(Factor.id))).all()
    assert (quarrel.kind, truancy.life_area) == ("perpetuating", "school")
    r = await client.post(
        f"/triage/sessions/{sid}/links",
        headers=h,
        data={"source_id": str(quarrel.id), "target_id": str(truancy.id)},
    )
    assert r.status_code == 200
    # a goal with a wrong date keeps what was typed, ticked factors included
    bad = await client.post(
        f"/triage/sessions/{sid}/goals",
        headers=h,
        data={"text": "Weer naar school", "factor_ids": [str(truancy.id)], "target_date": "x"},
    )
    assert bad.status_code == 422
    assert "Weer naar school" in bad.text and f'value="{truancy.id}" checked' in bad.text
    ok = await client.post(
        f"/triage/sessions/{sid}/goals",
        headers=h,
        data={"text": "Weer naar school", "factor_ids": [str(truancy.id)]},
    )
    assert ok.status_code == 200
    async with runtime.sessionmaker() as db:
        goal = (await db.scalars(select(Goal))).one()
        assert (await db.scalars(select(GoalFactor.factor_id))).all() == [truancy.id]
    page = (await client.get(f"/triage/sessions/{sid}")).text
    assert "Houdt in stand:" in page and f'id="goal-{goal.id}"' in page


async def test_family_view_and_not_without_me_through_the_forms(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    csrf = await login(client, runtime, member_id=world.members["parent"])
    h = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    page = await client.get(f"/triage/sessions/{sid}")
    assert page.text.count("Mijn kijk toevoegen") == 5  # every step
    r = await client.post(
        f"/triage/sessions/{sid}/notes", headers=h, data={"step": "2", "text": "Het is zwaar"}
    )
    assert r.status_code == 200
    r = await client.post(
        f"/triage/sessions/{sid}/factors",
        headers=h,
        data={"life_area": "health", "kind": "predisposing", "text": "Mijn depressie"},
    )
    assert r.status_code == 200
    async with runtime.sessionmaker() as db:
        fid = (await db.scalars(select(Factor.id))).one()
    r = await client.post(
        f"/triage/sessions/{sid}/factor/{fid}/private", headers=h, data={"on": "1"}
    )
    assert r.status_code == 200 and "Mag ook zonder mij besproken worden" in r.text

    client.cookies.clear()
    await login(client, runtime, user_id=world.expert.id)
    page = (await client.get(f"/triage/sessions/{sid}")).text
    assert "Het is zwaar" in page and "Eigen kijk" in page
    assert "Mijn depressie" not in page  # the parent is not connected to the meeting
    assert "dit bespreken we als deze persoon erbij is" in page


async def test_a_stale_perspective_keeps_both_texts(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    csrf = await login(client, runtime, user_id=world.expert.id)
    h = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    first = await client.post(
        f"/triage/sessions/{sid}/perspective",
        headers=h,
        data={"perspective": "Thuis blijven wonen", "version": "0"},
    )
    assert first.status_code == 200 and "Thuis blijven wonen" in first.text
    second = await client.post(
        f"/triage/sessions/{sid}/perspective",
        headers=h,
        data={"perspective": "Naar een gastgezin", "version": "0"},
    )
    assert second.status_code == 409
    assert "Thuis blijven wonen" in second.text and "Naar een gastgezin" in second.text
    r = await client.post(
        f"/triage/sessions/{sid}/quality", headers=h, data={"quality": "simple", "ticked": "1"}
    )
    assert r.status_code == 204
    page = (await client.get(f"/triage/sessions/{sid}")).text
    assert 'aria-pressed="true"' in page
