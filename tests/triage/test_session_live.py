"""The live side of the steps over real websockets: the typing signal (throttled, never to
the typist, names as consent allows) and "niet over mij zonder mij" following presence."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import ClientConnection, connect

from keerpunt.platform.models import CaseMember
from keerpunt.platform.principal import family_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, start_session
from keerpunt.triage import service as triage
from tests.conftest import LiveServer
from tests.triage.factories import build_world

pytestmark = pytest.mark.anyio


async def _socket(
    rt: Runtime, server: LiveServer, sid: int, **who: int
) -> tuple[ClientConnection, connect]:
    async with rt.sessionmaker() as db, db.begin():
        token = await start_session(
            db, how="test", hours=1, user_id=who.get("user_id"), member_id=who.get("member_id")
        )
    cookie = SessionSigner(str(rt.settings.secret_key)).dumps(token)
    cm = connect(
        server.url.replace("http", "ws") + f"/triage/sessions/{sid}/ws",
        additional_headers={"Cookie": f"{COOKIE_NAME}={cookie}", "Origin": server.url},
    )
    ws = await cm.__aenter__()
    await ws.send(json.dumps({"type": "resume", "after": 0}))
    return ws, cm


async def _messages(ws: ClientConnection, within: float) -> list[str]:
    out: list[str] = []
    try:
        while True:
            out.append(str(await asyncio.wait_for(ws.recv(), within)))
    except TimeoutError:
        return out


async def _until(ws: ClientConnection, needle: str, within: float = 3.0) -> str:
    async def loop() -> str:
        while True:
            msg = str(await ws.recv())
            if needle in msg:
                return msg

    return await asyncio.wait_for(loop(), within)


async def test_typing_reaches_the_others_throttled_and_named_as_consent_allows(
    runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    parent, pc = await _socket(runtime, live_server, sid, member_id=world.members["parent"])
    expert, ec = await _socket(runtime, live_server, sid, user_id=world.expert.id)
    outsider, oc = await _socket(runtime, live_server, sid, user_id=world.outsider_expert.id)
    for ws in (parent, expert, outsider):
        await _messages(ws, 0.5)  # presence and the like
    await parent.send(json.dumps({"type": "typing", "where": "step-2"}))
    await parent.send(json.dumps({"type": "typing", "where": "step-3"}))  # within a second
    await parent.send(json.dumps({"type": "typing", "where": "<script>"}))  # ignored
    seen = await _until(expert, "typt bij stap 2")
    assert "Ma Canarie" in seen
    masked = await _until(outsider, "typt bij stap 2")
    assert "Ma Canarie" not in masked and "Ouder" in masked  # no consent: the role only
    later = " ".join(await _messages(expert, 1.0))
    assert "stap 3" not in later and "script" not in later  # throttled, and checked
    assert not [m for m in await _messages(parent, 0.5) if "typt bij" in m]  # not to itself
    for cm in (pc, ec, oc):
        await cm.__aexit__(None, None, None)


async def test_an_item_held_back_shows_while_its_person_is_connected(
    runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    async with runtime.sessionmaker() as db:
        member = await db.get(CaseMember, world.members["parent"])
        assert member is not None
        parent_who = family_principal(member)
    async with runtime.unit_of_work(parent_who) as uow:
        factor = await triage.add_factor(uow, sid, "health", "predisposing", "Mijn depressie")
        await triage.set_not_without_me(uow, sid, "factor", factor.id, True)
    expert, ec = await _socket(runtime, live_server, sid, user_id=world.expert.id)
    replay = " ".join(await _messages(expert, 1.0))
    assert "Mijn depressie" not in replay  # the parent is not here
    _parent, pc = await _socket(runtime, live_server, sid, member_id=world.members["parent"])
    shown = await _until(expert, "Mijn depressie")
    assert f'id="factor-{factor.id}"' in shown
    await pc.__aexit__(None, None, None)
    gone = await _until(expert, f'id="factor-{factor.id}"')
    assert "Mijn depressie" not in gone
    await ec.__aexit__(None, None, None)


async def test_a_replay_shows_each_item_once_where_it_is_now(
    runtime: Runtime, live_server: LiveServer
) -> None:
    from keerpunt.platform.principal import staff_principal

    world = await build_world(runtime)
    sid = world.session_id
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        (draft,) = await triage.import_analysis(uow, sid, "Slaapt slecht")
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        await triage.update_factor(
            uow, sid, draft.id, "Slaapt slecht", 1, ("health", "perpetuating", "child")
        )
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        await triage.update_factor(uow, sid, draft.id, "Slaapt erg slecht", 2)
    expert, ec = await _socket(runtime, live_server, sid, user_id=world.expert.id)
    replay = await _until(expert, "Slaapt erg slecht")  # a phone back after all of that
    assert replay.count(f'id="factor-{draft.id}"') == 1
    # Added once where it is now, never taken away and added again (the form hints that a
    # first factor takes away are no items).
    assert 'beforeend:#factor-list-health"' in replay
    assert f"delete:#factor-{draft.id}" not in replay
    await ec.__aexit__(None, None, None)
