"""Steps 4 and 5 over HTTP and as live pushes: fragments per viewer, errors that keep what was
typed, a conflicting save shown next to the current text, and status rights."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keerpunt.platform.models import RoomEvent
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage.realtime import TriageRenderer
from tests.helpers import login
from tests.triage.factories import build_world

pytestmark = pytest.mark.anyio

HX = {"HX-Request": "true"}


async def test_the_session_page_holds_steps_4_5_and_the_ending(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    await login(client, runtime, user_id=w.expert.id)
    page = await client.get(f"/triage/sessions/{w.session_id}")
    assert page.status_code == 200
    for path in ("arrangement", "plan", "closing"):
        assert f"/triage/sessions/{w.session_id}/{path}" in page.text
    step4 = await client.get(f"/triage/sessions/{w.session_id}/arrangement", headers=HX)
    assert step4.status_code == 200 and "Hulp toevoegen" in step4.text
    step5 = await client.get(f"/triage/sessions/{w.session_id}/plan", headers=HX)
    assert step5.status_code == 200 and "Wat doen we bij een crisis?" in step5.text


async def test_adding_help_with_a_unit_and_keeping_input_on_a_mistake(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    csrf = await login(client, runtime, user_id=w.expert.id)
    h = {**HX, "X-CSRF-Token": csrf}
    url = f"/triage/sessions/{w.session_id}/arrangement/lines"
    form = {
        "provider_id": str(w.provider.id),
        "help_form": "short_stay",
        "product_code": "45A52",
        "amount": "9",
        "intensity_unit": "etmaal",
        "share": "Weekend logeren bij Karakter",
    }
    bad = await client.post(url, headers=h, data=form)
    assert bad.status_code == 422
    assert "van 1 tot en met 7" in bad.text and "Weekend logeren bij Karakter" in bad.text
    ok = await client.post(url, headers=h, data={**form, "amount": "2"})
    assert ok.status_code == 200
    assert "2 etmalen per week" in " ".join(ok.text.split())
    assert "Karakter is de enige aanbieder" in ok.text


async def test_a_conflicting_agreement_save_shows_both_texts(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    csrf = await login(client, runtime, user_id=w.expert.id)
    h = {**HX, "X-CSRF-Token": csrf}
    url = f"/triage/sessions/{w.session_id}/plan/agreements/crisis"
    first = await client.post(url, headers=h, data={"text": "Bel eerst Oom Kees", "version": "0"})
    assert first.status_code == 200 and "Bel eerst Oom Kees" in first.text
    late = await client.post(url, headers=h, data={"text": "Bel de huisarts", "version": "0"})
    assert late.status_code == 409
    assert "Bel eerst Oom Kees" in late.text and "Bel de huisarts" in late.text
    empty = await client.post(url, headers=h, data={"text": " ", "version": "1"})
    assert empty.status_code == 422 and "Schrijf iets op." in empty.text


async def test_status_over_http_only_for_the_procesregisseur(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    csrf = await login(client, runtime, user_id=w.expert.id)
    h = {**HX, "X-CSRF-Token": csrf}
    sid = w.session_id
    added = await client.post(
        f"/triage/sessions/{sid}/plan/activities",
        headers=h,
        data={"who": "Ruud", "what": "Bellen met school", "due_date": "2026-12-01"},
    )
    assert added.status_code == 200
    step5 = await client.get(f"/triage/sessions/{sid}/plan", headers=HX)
    assert "Bellen met school" in step5.text and "Status opslaan" not in step5.text
    async with runtime.sessionmaker() as db:
        aid = await db.scalar(
            select(RoomEvent.subject_id).where(RoomEvent.kind == "activity.created")
        )
    refused = await client.post(
        f"/triage/sessions/{sid}/plan/activities/{aid}/status",
        headers=h,
        data={"status": "done", "version": "1"},
    )
    assert refused.status_code == 403
    client.cookies.clear()
    csrf = await login(client, runtime, user_id=w.coordinator.id)
    done = await client.post(
        f"/triage/sessions/{sid}/plan/activities/{aid}/status",
        headers={**HX, "X-CSRF-Token": csrf},
        data={"status": "done", "version": "1"},
    )
    assert done.status_code == 200 and "Klaar" in done.text


async def test_live_pushes_render_steps_for_each_viewer(app: Any, runtime: Runtime) -> None:
    w = await build_world(runtime)
    from keerpunt.triage import plan
    from keerpunt.triage import service as triage

    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_line(
            uow,
            w.session_id,
            w.provider.id,
            "45A52",
            "ambulant",
            "2",
            None,
            share="Gesprekken met Sem",
        )
        await plan.add_activity(uow, w.session_id, "Ruud", "Huisbezoek bij Sem", None)
    async with runtime.sessionmaker() as db:
        events = list((await db.scalars(select(RoomEvent).order_by(RoomEvent.seq))).all())
    renderer = TriageRenderer(app.state.jinja)
    room = f"triage:{w.session_id}"
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        seen = await renderer.render_events(uow, room, events)
    assert 'id="arrangement-live" hx-swap-oob="innerHTML"' in seen
    assert 'id="plan-live" hx-swap-oob="innerHTML"' in seen
    assert "Gesprekken met Sem" in seen and "Huisbezoek bij Sem" in seen
    async with runtime.unit_of_work(staff_principal(w.outsider_expert)) as uow:
        hidden = await renderer.render_events(uow, room, events)
    assert "Karakter" in hidden  # the line itself is non-personal
    assert "Gesprekken met Sem" not in hidden and "Huisbezoek bij Sem" not in hidden
