"""Consent changes reach people who are in a live session at once (real uvicorn, real
websockets): a withdrawal turns names into the pseudonym on the expert's screen, a new consent
reveals them to the named recipient only, and a reconnecting screen catches up from the
saved room events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from keerpunt.consent.models import ConsentRecord
from keerpunt.platform.models import Case, CaseMember, LoginSession, RoomEvent
from keerpunt.platform.principal import family_principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, start_session, token_hash
from keerpunt.triage import service as triage
from tests.conftest import LiveServer
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio

HIDDEN = "Deze tekst ziet u alleen met toestemming van het gezin."


async def _cookie(
    rt: Runtime, *, user_id: int | None = None, member_id: int | None = None
) -> tuple[str, str]:
    async with rt.sessionmaker() as db, db.begin():
        token = await start_session(db, how="test", hours=1, user_id=user_id, member_id=member_id)
    async with rt.sessionmaker() as db:
        row = await db.get(LoginSession, token_hash(token))
        assert row is not None
        return SessionSigner(str(rt.settings.secret_key)).dumps(token), row.csrf_token


class Screen:
    """One person's live connection to the session room."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def until(self, needle: str, within: float = 1.0) -> str:
        """The first message containing ``needle``, within a second (the promise to users)."""

        async def loop() -> str:
            while True:
                msg = str(await self.ws.recv())
                if needle in msg:
                    return msg

        return await asyncio.wait_for(loop(), within)


async def _open(server: LiveServer, rt: Runtime, session_id: int, after: int = 0, **who: int):
    cookie, _ = await _cookie(rt, **who)
    url = server.url.replace("http", "ws") + f"/triage/sessions/{session_id}/ws"
    ws = await connect(
        url, additional_headers={"Cookie": f"{COOKIE_NAME}={cookie}", "Origin": server.url}
    )
    await ws.send(json.dumps({"type": "resume", "after": after}))
    screen = Screen(ws)
    await screen.until("kp-presence", within=3)
    return screen


async def _record_ids(rt: Runtime, world: World) -> dict[str, int]:
    async with rt.sessionmaker() as db:
        rows = await db.scalars(select(ConsentRecord).where(ConsentRecord.case_id == world.case_id))
        by_member = {v: k for k, v in world.members.items()}
        return {by_member[r.subject_member_id]: r.id for r in rows}


async def _items(rt: Runtime, world: World) -> None:
    """One factor written with consent (the expert sees the case in full), one anonymous."""
    async with rt.unit_of_work(staff_principal(world.expert)) as uow:
        await triage.add_factor(uow, world.session_id, "home", "perpetuating", "Ruzie-met-Sem")
    async with rt.unit_of_work(staff_principal(world.outsider_expert)) as uow:
        await triage.add_factor(uow, world.session_id, "school", "protective", "Anoniem-feit")
    # The parent's own view on step 1 (eigen inbreng): in the steps, personal like the rest.
    async with rt.sessionmaker() as db:
        parent = await db.get(CaseMember, world.members["parent"])
        assert parent is not None
    async with rt.unit_of_work(family_principal(parent)) as uow:
        await triage.add_note(uow, world.session_id, 1, "Eigen-kijk-van-Ma")


async def test_withdrawal_reaches_the_expert_at_once_and_the_parent_keeps_seeing_their_data(
    runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    await _items(runtime, world)
    async with runtime.sessionmaker() as db:
        case = await db.get(Case, world.case_id)
        assert case is not None
        pseudonym = case.pseudonym
    expert = await _open(live_server, runtime, world.session_id, user_id=world.expert.id)
    parent = await _open(live_server, runtime, world.session_id, member_id=world.members["parent"])
    records = await _record_ids(runtime, world)
    cookie, csrf = await _cookie(runtime, user_id=world.registrar.id)
    async with httpx.AsyncClient(base_url=live_server.url, cookies={COOKIE_NAME: cookie}) as http:
        r = await http.post(
            f"/consents/{records['youth']}/withdraw", headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 303

    pushed = await expert.until('id="kp-title"')
    assert pseudonym in pushed
    for secret in ("Sem Canarie", "Ma Canarie", "Oom Kees", "Ruzie-met-Sem", "Eigen-kijk-van-Ma"):
        assert secret not in pushed
    assert 'id="step-1"' in pushed and 'id="step-5"' in pushed  # the steps, rendered anew
    assert HIDDEN in pushed  # the item written with consent is withheld now
    assert "Anoniem-feit" in pushed  # written anonymously: still for everyone at the table
    assert 'id="kp-presence"' in pushed  # who is present, labelled anew
    assert 'id="anonymous-notice"' in pushed

    mine = await parent.until('id="kp-title"')
    for own in ("Sem Canarie", "Ma Canarie", "Ruzie-met-Sem", "Eigen-kijk-van-Ma"):
        assert own in mine  # the family still sees its own data
    await expert.ws.close()
    await parent.ws.close()


async def test_a_new_consent_reveals_the_case_to_the_named_recipient_only(
    runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    await _items(runtime, world)
    named = await _open(live_server, runtime, world.session_id, user_id=world.expert.id)
    other = await _open(live_server, runtime, world.session_id, user_id=world.outsider_expert.id)
    cookie, csrf = await _cookie(runtime, user_id=world.registrar.id)
    async with httpx.AsyncClient(base_url=live_server.url, cookies={COOKIE_NAME: cookie}) as http:
        for role in ("youth", "parent"):
            r = await http.post(
                f"/cases/{world.case_id}/consents",
                headers={"X-CSRF-Token": csrf},
                data={
                    "subject_member_id": str(world.members[role]),
                    "purpose": "information_exchange",
                    "recipient": f"org:{world.provider.id}",
                    "decision": "consent",
                    "obtained_how": "in_person",
                    "explanation": "Uitgelegd met wie we wat delen.",
                },
            )
            assert r.status_code == 303, r.text

    revealed = await named.until("Sem Canarie")  # after both consents, the name appears
    assert "Ma Canarie" in revealed
    assert 'id="anonymous-notice"' not in revealed
    # The other organisation is not named: it got the same events, and still no names.
    seen = ""
    for _ in range(2):
        seen += await other.until('id="kp-title"')
    for secret in ("Sem Canarie", "Ma Canarie", "Oom Kees"):
        assert secret not in seen
    await named.ws.close()
    await other.ws.close()


async def test_a_screen_that_was_offline_catches_up_on_the_withdrawal(
    runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    await _items(runtime, world)
    async with runtime.sessionmaker() as db:
        seen = await db.scalar(
            select(RoomEvent.seq)
            .where(RoomEvent.room == f"triage:{world.session_id}")
            .order_by(RoomEvent.seq.desc())
            .limit(1)
        )
    records = await _record_ids(runtime, world)
    cookie, csrf = await _cookie(runtime, user_id=world.registrar.id)
    async with httpx.AsyncClient(base_url=live_server.url, cookies={COOKIE_NAME: cookie}) as http:
        r = await http.post(
            f"/consents/{records['parent']}/withdraw", headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 303
    async with runtime.sessionmaker() as db:
        kinds = (
            await db.scalars(
                select(RoomEvent.kind).where(RoomEvent.room == f"triage:{world.session_id}")
            )
        ).all()
    assert "consent.changed" in kinds  # saved with the withdrawal, like every room event
    expert = await _open(
        live_server, runtime, world.session_id, after=seen or 0, user_id=world.expert.id
    )
    pushed = await expert.until('id="kp-title"')
    assert "Sem Canarie" not in pushed and "Ruzie-met-Sem" not in pushed
    await expert.ws.close()


async def test_the_family_at_the_table_opens_the_case_to_the_table_while_they_are_there(
    runtime: Runtime, live_server: LiveServer
) -> None:
    """No consent, but the youth (14) and a parent take part in the meeting themselves: while
    they are connected the table discusses the case with them, by name (consent.rules: the
    family at the table); when they leave, the screen goes back to the pseudonym."""
    world = await build_world(runtime, consent_to_expert_org=False)
    expert = await _open(live_server, runtime, world.session_id, user_id=world.outsider_expert.id)
    async with runtime.unit_of_work(staff_principal(world.outsider_expert)) as uow:
        view = await triage.session_view(uow, world.session_id)
        assert view.case.youth_name is None  # no consent: the pseudonym
    youth = await _open(live_server, runtime, world.session_id, member_id=world.members["youth"])
    parent = await _open(live_server, runtime, world.session_id, member_id=world.members["parent"])
    shown = await expert.until("Sem Canarie", within=2)
    assert "kp-session-body" in shown  # the whole table was drawn anew
    await parent.ws.close()
    back = await expert.until("kp-title", within=2)
    assert "Sem Canarie" not in back.split('id="kp-title"', 1)[1][:200]
    await youth.ws.close()
    await expert.ws.close()


async def _level(uow: Any, session_id: int, present: frozenset[str]) -> object:
    return (await triage.table_changes(uow, session_id, [], present)).level


async def test_a_closed_meeting_has_no_table_the_family_can_open(runtime: Runtime) -> None:
    """Looking at a closed meeting later is not taking part in it: the family's presence
    opens the case only while the meeting is on."""
    from keerpunt.consent.service import Disclosure

    world = await build_world(runtime, consent_to_expert_org=False)
    family = frozenset({f"member:{world.members['youth']}", f"member:{world.members['parent']}"})
    async with runtime.unit_of_work(staff_principal(world.outsider_expert)) as uow:
        assert (await _level(uow, world.session_id, family)) is Disclosure.FULL
        assert (await _level(uow, world.session_id, frozenset())) is Disclosure.PSEUDONYMOUS
    from keerpunt.triage.models import SessionStatus, TriageSession

    async with runtime.sessionmaker() as db, db.begin():
        session = await db.get(TriageSession, world.session_id)
        assert session is not None
        session.status = SessionStatus.CLOSED  # as the chair's closing leaves it
    async with runtime.unit_of_work(staff_principal(world.outsider_expert)) as uow:
        assert (await _level(uow, world.session_id, family)) is Disclosure.PSEUDONYMOUS
