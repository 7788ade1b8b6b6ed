"""Real websockets against a real server: live push, replay after reconnect, presence."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from keerpunt.platform.models import LoginSession
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, start_session
from tests.conftest import LiveServer
from tests.triage.factories import build_world

pytestmark = pytest.mark.anyio


async def _cookie(rt: Runtime, user_id: int) -> tuple[str, str]:
    from keerpunt.platform.models import LoginSession
    from keerpunt.platform.sessions import token_hash

    async with rt.sessionmaker() as db, db.begin():
        token = await start_session(db, how="test", hours=1, user_id=user_id)
    async with rt.sessionmaker() as db:
        row = await db.get(LoginSession, token_hash(token))
        assert row is not None
    return SessionSigner(str(rt.settings.secret_key)).dumps(token), row.csrf_token


async def _recv_until(ws: ClientConnection, needle: str, within: float = 2.0) -> str:
    async def loop() -> str:
        while True:
            msg = await ws.recv()
            if needle in msg:
                return str(msg)

    return await asyncio.wait_for(loop(), within)


async def test_push_replay_and_presence(runtime: Runtime, live_server: LiveServer) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    cookie, csrf = await _cookie(runtime, world.expert.id)
    other_cookie, _ = await _cookie(runtime, world.coordinator.id)
    ws_url = live_server.url.replace("http", "ws") + f"/triage/sessions/{sid}/ws"
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}", "Origin": live_server.url}
    http = httpx.AsyncClient(base_url=live_server.url, cookies={COOKIE_NAME: cookie})

    async def add(text: str) -> None:
        r = await http.post(
            f"/triage/sessions/{sid}/factors",
            data={"life_area": "home", "kind": "protective", "text": text},
            headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
        )
        assert r.status_code == 200

    async with connect(ws_url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        await _recv_until(ws, "kp-presence")
        async with connect(
            ws_url,
            additional_headers={
                "Cookie": f"{COOKIE_NAME}={other_cookie}",
                "Origin": live_server.url,
            },
        ) as other:
            await other.send(json.dumps({"type": "resume", "after": 0}))
            presence = await _recv_until(ws, "Carla Coord")  # presence: both are in the room
            assert "Ruud Regie" in presence
        await add("Opa helpt elke woensdag")
        pushed = await _recv_until(ws, "Opa helpt elke woensdag")
        assert 'hx-swap-oob="beforeend:#factor-list-home"' in pushed  # its life area
        seq = int(pushed.split('data-seq="')[1].split('"')[0])

    await add("Gemist terwijl offline")  # while the phone was disconnected

    async with connect(ws_url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "resume", "after": seq}))
        replay = await _recv_until(ws, "Gemist terwijl offline")
        assert "Opa helpt elke woensdag" not in replay  # only what was missed
    await http.aclose()


async def test_websocket_from_another_origin_or_without_login_is_refused(
    runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    cookie, _ = await _cookie(runtime, world.expert.id)
    ws_url = live_server.url.replace("http", "ws") + f"/triage/sessions/{world.session_id}/ws"
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    for headers in (
        {"Cookie": f"{COOKIE_NAME}={cookie}", "Origin": "http://evil.example"},
        {"Origin": live_server.url},
    ):
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            async with connect(ws_url, additional_headers=headers) as ws:
                await ws.send(json.dumps({"type": "resume", "after": 0}))
                await asyncio.wait_for(ws.recv(), 2)


async def test_a_revoked_login_stops_the_live_stream_at_once(
    runtime: Runtime, live_server: LiveServer
) -> None:
    from websockets.exceptions import ConnectionClosed

    from keerpunt.platform.sessions import end_session

    world = await build_world(runtime)
    cookie, _ = await _cookie(runtime, world.expert.id)
    ws_url = live_server.url.replace("http", "ws") + f"/triage/sessions/{world.session_id}/ws"
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}", "Origin": live_server.url}
    async with connect(ws_url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        await _recv_until(ws, "kp-presence")
        async with runtime.sessionmaker() as db, db.begin():
            row = (
                await db.scalars(
                    select(LoginSession).where(LoginSession.user_id == world.expert.id)
                )
            ).one()
            await end_session(db, row.id)  # logged out elsewhere / revoked
        coord_cookie, coord_csrf = await _cookie(runtime, world.coordinator.id)
        async with httpx.AsyncClient(
            base_url=live_server.url, cookies={COOKIE_NAME: coord_cookie}
        ) as http:  # a change made through the server pushes to everyone in the room
            r = await http.post(
                f"/triage/sessions/{world.session_id}/factors",
                data={"life_area": "home", "kind": "protective", "text": "Na uitloggen"},
                headers={"X-CSRF-Token": coord_csrf},
            )
            assert r.status_code == 303
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                msg = await asyncio.wait_for(ws.recv(), 3)
                assert "Na uitloggen" not in msg
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_someone_deactivated_loses_an_open_meeting_screen_without_any_push(
    runtime: Runtime, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing needs to happen in the room: the hub looks at its logins every little while,
    and the person who left (``keerpunt user deactivate``) sees the stream end."""
    from websockets.exceptions import ConnectionClosed

    from keerpunt.platform import admin, realtime

    monkeypatch.setattr(realtime, "LOGIN_CHECK_SECONDS", 0.3)
    world = await build_world(runtime)
    cookie, _ = await _cookie(runtime, world.expert.id)
    coord_cookie, _ = await _cookie(runtime, world.coordinator.id)
    ws_url = live_server.url.replace("http", "ws") + f"/triage/sessions/{world.session_id}/ws"

    def headers(c: str) -> dict[str, str]:
        return {"Cookie": f"{COOKIE_NAME}={c}", "Origin": live_server.url}

    async with (
        connect(ws_url, additional_headers=headers(cookie)) as ws,
        connect(ws_url, additional_headers=headers(coord_cookie)) as coordinator,
    ):
        for w in (ws, coordinator):
            await w.send(json.dumps({"type": "resume", "after": 0}))
        await _recv_until(coordinator, "Ruud Regie")  # both at the table
        async with runtime.sessionmaker() as db, db.begin():
            await admin.deactivate_user(db, email=world.expert.email)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 3)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        # The others stay, and see that the person left the table.
        left = await _recv_until(coordinator, "kp-presence", within=3)
        assert "Ruud Regie" not in left
