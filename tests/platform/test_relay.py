"""Live events reach open screens whatever process saved them: a command (``keerpunt ...``),
another server process. Here the test's own runtime stands in for that other process (its own
engine, its own hub); the live server is the app with its screens (real uvicorn, real
websockets), which relays what others saved from ``room_event``: on PostgreSQL woken by
LISTEN/NOTIFY, on SQLite by a short poll."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keerpunt.consent import retention
from keerpunt.platform.app import create_app
from keerpunt.platform.models import Case, RoomEvent
from keerpunt.platform.principal import SYSTEM, staff_principal
from keerpunt.platform.relay import Relay
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME
from keerpunt.platform.settings import Settings
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage import service as triage
from tests.conftest import LiveServer
from tests.consent.test_live import Screen, _cookie, _open
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio

# The promise is "within a second"; the margin is for a loaded test machine, not the relay.
WITHIN = 3.0


async def _last_seq(rt: Runtime, world: World) -> int:
    async with rt.sessionmaker() as db:
        seq = await db.scalar(
            select(RoomEvent.seq)
            .where(RoomEvent.room == f"triage:{world.session_id}")
            .order_by(RoomEvent.seq.desc())
            .limit(1)
        )
        return seq or 0


async def _screen(rt: Runtime, server: LiveServer, world: World) -> Screen:
    return await _open(
        server, rt, world.session_id, after=await _last_seq(rt, world), user_id=world.expert.id
    )


async def test_a_save_by_another_process_reaches_an_open_screen(
    runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    screen = await _screen(runtime, live_server, world)
    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        await triage.add_factor(uow, world.session_id, "home", "protective", "Opa-van-elders")
    pushed = await screen.until("Opa-van-elders", within=WITHIN)
    assert 'hx-swap-oob="beforeend:#factor-list-home"' in pushed
    await screen.ws.close()


async def test_shredding_by_the_command_redraws_an_open_screen(
    runtime: Runtime, live_server: LiveServer
) -> None:
    """``keerpunt retention shred N`` runs beside the app: the expert's open screen must drop
    the names at once, not when the phone reconnects."""
    world = await build_world(runtime)
    async with runtime.sessionmaker() as db:
        case = await db.get(Case, world.case_id)
        assert case is not None
        pseudonym = case.pseudonym
    screen = await _screen(runtime, live_server, world)
    policy = retention.RetentionPolicy(days_after_close=90, pilot_end=None, kpi_months=24)
    assert await retention.shred_on_request(runtime, policy, world.case_id, today=dt.date.today())
    pushed = await screen.until('id="kp-title"', within=WITHIN)
    title = pushed.split('id="kp-title"', 1)[1][:200]
    assert pseudonym in title and "Sem Canarie" not in title
    await screen.ws.close()


async def test_a_save_here_right_after_one_elsewhere_shows_both_once(
    runtime: Runtime, live_server: LiveServer
) -> None:
    """The server publishes its own save at once, while the other process's save (one
    sequence number earlier) is still on its way through the relay: the screen gets both,
    each once."""
    world = await build_world(runtime)
    screen = await _screen(runtime, live_server, world)
    cookie, csrf = await _cookie(runtime, user_id=world.expert.id)
    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        await triage.add_factor(uow, world.session_id, "home", "protective", "Eerst-elders")
    async with httpx.AsyncClient(base_url=live_server.url, cookies={COOKIE_NAME: cookie}) as http:
        r = await http.post(
            f"/triage/sessions/{world.session_id}/factors",
            data={"life_area": "school", "kind": "protective", "text": "Daarna-hier"},
            headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
        )
        assert r.status_code == 200
    got: list[str] = []

    async def collect() -> None:
        while True:
            got.append(str(await screen.ws.recv()))

    # Long enough for the relay to have seen both saves (a poll or a notification).
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(collect(), WITHIN)
    assert len([m for m in got if "Eerst-elders" in m]) == 1
    assert len([m for m in got if "Daarna-hier" in m]) == 1
    await screen.ws.close()


async def _server_runtime(settings: Settings) -> Runtime:
    return Runtime.build(settings, pool=False)


async def test_the_relay_passes_on_what_others_saved_not_its_own_nor_the_past(
    runtime: Runtime, settings: Settings
) -> None:
    """Own saves were published directly (no second push); what was saved before the server
    started is not pushed again after a restart (a screen that reconnects replays it)."""
    world = await build_world(runtime)  # saved before the server (re)started
    server = await _server_runtime(settings)
    relay = Relay(server.engine, server.sessionmaker, server.hub)
    try:
        await relay.skip_the_past()
        assert await relay.tail() == []
        async with server.unit_of_work(staff_principal(world.expert)) as uow:
            own = await uow.emit(f"triage:{world.session_id}", "factor.created", 1)
        async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
            other = await uow.emit(f"triage:{world.session_id}", "factor.created", 2)
        relayed = await relay.tail()
        assert [(e.room, e.seq) for e in relayed] == [(other.room, other.seq)]
        assert own.seq == other.seq - 1
        assert await relay.tail() == []  # once
    finally:
        await server.engine.dispose()


async def test_a_save_that_commits_after_a_later_one_is_not_lost(
    runtime: Runtime, settings: Settings
) -> None:
    """PostgreSQL hands out ids when a row is written, not when it commits: a transaction that
    took id n and commits after the one that took n + 1 is still relayed."""
    if runtime.engine.dialect.name == "sqlite":
        pytest.skip("SQLite writers take turns: ids are given in commit order")
    server = await _server_runtime(settings)
    relay = Relay(server.engine, server.sessionmaker, server.hub)
    try:
        await relay.skip_the_past()
        async with runtime.sessionmaker() as db, db.begin():
            slow = UnitOfWork(db=db, vault=runtime.vault, who=SYSTEM)
            await slow.emit("triage:901", "factor.created", 1)  # takes its id first
            async with runtime.unit_of_work(SYSTEM) as uow:
                await uow.emit("triage:902", "factor.created", 1)
            assert [e.room for e in await relay.tail()] == ["triage:902"]
        assert [e.room for e in await relay.tail()] == ["triage:901"]
    finally:
        await server.engine.dispose()


async def test_the_relay_runs_with_the_app_and_stops_with_it(
    settings: Settings, runtime: Runtime
) -> None:
    app: Any = create_app(settings, runtime=runtime)

    def relays() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "live-relay" and not t.done()]

    async with app.router.lifespan_context(app):
        assert len(relays()) == 1
    assert relays() == []
