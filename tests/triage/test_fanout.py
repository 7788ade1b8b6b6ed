"""The live fan-out renders a push for a whole room at once (one transaction, one consent
context, each distinct view drawn once). These tests hold it to the single path: every viewer
gets exactly what rendering for them alone gives, with their own CSRF token and level, and
every viewer who read the case has their own audit row."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from keerpunt.platform import audit
from keerpunt.platform.models import AuditEntry, CaseMember, RoomEvent
from keerpunt.platform.principal import Principal, family_principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage import plan
from keerpunt.triage import service as triage
from keerpunt.triage.realtime import TriageRenderer
from tests.helpers import make_user
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio

WITH_CONSENT = "Ruzie-met-Sem"  # written by the expert who sees the case in full
ANONYMOUS = "Anoniem-feit"  # written under the pseudonym: everyone at the table reads it
SHARE = "Gesprekken met Sem"  # a stated share in step 4: personal, consent only


async def _viewers(rt: Runtime, w: World) -> list[Principal]:
    """A room of different viewers: full (the expert named in the consent, twice: two tabs
    with their own tokens), pseudonymous (the other expert, the coordinator), the family."""
    async with rt.sessionmaker() as db:
        members = {
            m.role: m
            for m in await db.scalars(select(CaseMember).where(CaseMember.case_id == w.case_id))
        }
    return [
        staff_principal(w.expert, session_id="s-expert", csrf_token="tok-expert-1"),
        staff_principal(w.expert, session_id="s-expert-2", csrf_token="tok-expert-2"),
        staff_principal(w.outsider_expert, session_id="s-outsider", csrf_token="tok-outsider"),
        staff_principal(w.coordinator, session_id="s-coord", csrf_token="tok-coord"),
        family_principal(members["youth"], session_id="s-youth", csrf_token="tok-youth"),
        family_principal(members["parent"], session_id="s-parent", csrf_token="tok-parent"),
        family_principal(members["jim"], session_id="s-jim", csrf_token="tok-jim"),
    ]


async def _table(rt: Runtime, w: World, viewers: list[Principal]) -> list[RoomEvent]:
    async with rt.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_factor(uow, w.session_id, "home", "perpetuating", WITH_CONSENT)
        await triage.add_line(
            uow, w.session_id, w.provider.id, "45A52", "ambulant", "2", None, share=SHARE
        )
        await plan.add_activity(uow, w.session_id, "Ruud", "Huisbezoek", None)
    async with rt.unit_of_work(staff_principal(w.outsider_expert)) as uow:
        await triage.add_factor(uow, w.session_id, "school", "protective", ANONYMOUS)
    youth = viewers[4]
    async with rt.unit_of_work(youth) as uow:
        note = await triage.add_note(uow, w.session_id, 1, "Mijn eigen kijk")
        await triage.set_not_without_me(uow, w.session_id, "note", note.id, True)
    async with rt.sessionmaker() as db:
        return list(
            (
                await db.scalars(
                    select(RoomEvent)
                    .where(RoomEvent.room == f"triage:{w.session_id}")
                    .order_by(RoomEvent.seq)
                )
            ).all()
        )


async def _reads(rt: Runtime) -> list[AuditEntry]:
    async with rt.sessionmaker() as db:
        return list(
            (
                await db.scalars(
                    select(AuditEntry)
                    .where(AuditEntry.action == "case.read")
                    .order_by(AuditEntry.seq)
                )
            ).all()
        )


async def _batch(
    rt: Runtime, renderer: TriageRenderer, room: str, viewers: list[Principal], update: Any
) -> list[str | None]:
    async with rt.sessionmaker() as db, db.begin():
        uow = UnitOfWork(db=db, vault=rt.vault, who=viewers[0])
        return await renderer.render_for(uow, room, viewers, update)


async def test_each_viewer_gets_exactly_what_the_single_path_gives(
    app: Any, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    viewers = await _viewers(runtime, w)
    events = await _table(runtime, w, viewers)
    room = f"triage:{w.session_id}"
    present = viewers[:4]  # the family is not at the table: the note stays held back
    single = TriageRenderer(app.state.jinja, lambda _r: present)
    alone = []
    for v in viewers:
        async with runtime.unit_of_work(v) as uow:
            alone.append(await single.render_events(uow, room, events))

    batch = await _batch(
        runtime, TriageRenderer(app.state.jinja, lambda _r: present), room, viewers, events
    )

    assert batch == alone
    for v, html in zip(viewers, batch, strict=True):
        assert html is not None
        # Their own token in the forms of steps 4 and 5 (professionals arrange), nobody else's.
        assert (f'value="{v.csrf_token}"' in html) is v.is_staff
        for other in viewers:
            if other.csrf_token != v.csrf_token:
                assert other.csrf_token not in html
        assert ANONYMOUS in html
    full = {"tok-expert-1", "tok-expert-2", "tok-youth", "tok-parent", "tok-jim"}
    for v, html in zip(viewers, batch, strict=True):
        assert html is not None
        assert (WITH_CONSENT in html) is (v.csrf_token in full), v.csrf_token
        assert (SHARE in html) is (v.csrf_token in full), v.csrf_token
        # "Niet over mij zonder mij": only the youth who asked reads their note now.
        assert ("Mijn eigen kijk" in html) is (v.csrf_token == "tok-youth"), v.csrf_token


async def test_every_viewer_who_read_the_case_has_an_audit_row(app: Any, runtime: Runtime) -> None:
    w = await build_world(runtime)
    viewers = await _viewers(runtime, w)
    events = await _table(runtime, w, viewers)
    room = f"triage:{w.session_id}"
    before = len(await _reads(runtime))

    await _batch(runtime, TriageRenderer(app.state.jinja), room, viewers, events)

    rows = (await _reads(runtime))[before:]
    assert sorted(r.actor for r in rows) == sorted(v.actor for v in viewers)
    expert_rows = [r for r in rows if r.actor == f"user:{w.expert.id}"]
    assert all("level=full" in r.detail and "reason=consent" in r.detail for r in expert_rows)
    assert "records=[]" not in expert_rows[0].detail  # the consents that justify it
    outsider = next(r for r in rows if r.actor == f"user:{w.outsider_expert.id}")
    assert "level=pseudonymous" in outsider.detail
    async with runtime.sessionmaker() as db:
        assert await audit.verify(db) == []  # the chain holds with rows written in a batch


async def test_presence_is_drawn_per_view_and_audited_only_when_it_shows_items(
    app: Any, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    viewers = await _viewers(runtime, w)
    room = f"triage:{w.session_id}"
    present = viewers[:4]
    single = TriageRenderer(app.state.jinja, lambda _r: present)
    alone = []
    for v in present:
        async with runtime.unit_of_work(v) as uow:
            alone.append(await single.render_presence(uow, room, present))
    before = len(await _reads(runtime))

    renderer = TriageRenderer(app.state.jinja, lambda _r: present)
    batch = await _batch(runtime, renderer, room, present, "presence")
    typing = await _batch(runtime, renderer, room, present, "typing")

    assert batch == alone
    assert all(t is not None for t in typing)
    async with runtime.sessionmaker() as db:
        count = await db.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "case.read")
        )
    assert count == before  # nothing but who is there: no read of the case

    await _table(runtime, w, viewers)  # now with a note the youth keeps for when they are here
    before = len(await _reads(runtime))
    again = await _batch(runtime, renderer, room, present, "presence")
    assert all(h is not None and 'id="note-' in h for h in again)  # drawn again, held back
    assert sorted(r.actor for r in (await _reads(runtime))[before:]) == sorted(
        v.actor for v in present
    )


async def test_someone_not_at_this_table_gets_nothing(app: Any, runtime: Runtime) -> None:
    w = await build_world(runtime)
    viewers = await _viewers(runtime, w)
    events = await _table(runtime, w, viewers)
    stranger = staff_principal(
        await make_user(runtime, w.provider, "Vera Vreemd", "triage_member"),
        session_id="s-stranger",
        csrf_token="tok-stranger",
    )
    room = f"triage:{w.session_id}"
    out = await _batch(
        runtime, TriageRenderer(app.state.jinja), room, [viewers[0], stranger], events
    )
    assert out[0] is not None and WITH_CONSENT in out[0]
    assert out[1] is None  # not invited to this meeting: the hub closes the stream


async def test_a_live_push_is_audited_per_viewer_before_it_is_shown(
    runtime: Runtime, live_server: Any
) -> None:
    """Through the real hub (uvicorn, websockets): the push renders in a read-only
    transaction and the viewers' audit rows are written before it is sent."""
    import asyncio
    import json

    import httpx
    from websockets.asyncio.client import connect

    from keerpunt.platform.models import LoginSession
    from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, start_session, token_hash

    w = await build_world(runtime)

    async def cookie(user_id: int) -> tuple[str, str]:
        async with runtime.sessionmaker() as db, db.begin():
            token = await start_session(db, how="test", hours=1, user_id=user_id)
        async with runtime.sessionmaker() as db:
            row = await db.get(LoginSession, token_hash(token))
            assert row is not None
        return SessionSigner(str(runtime.settings.secret_key)).dumps(token), row.csrf_token

    url = live_server.url.replace("http", "ws") + f"/triage/sessions/{w.session_id}/ws"
    screens = []
    for user in (w.expert, w.outsider_expert, w.coordinator):
        c, _ = await cookie(user.id)
        ws = await connect(
            url, additional_headers={"Cookie": f"{COOKIE_NAME}={c}", "Origin": live_server.url}
        )
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        screens.append(ws)
    writer, csrf = await cookie(w.expert.id)
    await asyncio.sleep(0.5)  # everyone is in the room
    before = len(await _reads(runtime))
    async with httpx.AsyncClient(base_url=live_server.url, cookies={COOKIE_NAME: writer}) as http:
        r = await http.post(
            f"/triage/sessions/{w.session_id}/factors",
            data={"life_area": "home", "kind": "protective", "text": WITH_CONSENT},
            headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
        )
        assert r.status_code == 200

    async def until(ws: Any, needle: str) -> str:
        while True:
            msg = str(await ws.recv())
            if needle in msg:
                return msg

    pushed = [await asyncio.wait_for(until(ws, "factor-"), 3) for ws in screens]
    assert WITH_CONSENT in pushed[0]  # the expert named in the consent
    assert WITH_CONSENT not in pushed[1]  # the other expert: the pseudonym
    rows = (await _reads(runtime))[before:]
    assert sorted(r.actor for r in rows) == sorted(
        f"user:{u.id}" for u in (w.expert, w.outsider_expert, w.coordinator)
    )
    async with runtime.sessionmaker() as db:
        assert await audit.verify(db) == []
    for ws in screens:
        await ws.close()


async def test_a_unit_of_work_inside_another_does_not_wait_for_itself(runtime: Runtime) -> None:
    """On SQLite writers take turns in the process; a nested unit of work in the same task
    already has the turn (it would otherwise wait for itself forever)."""
    import asyncio

    w = await build_world(runtime)
    who = staff_principal(w.coordinator)

    async def nested() -> None:
        async with runtime.unit_of_work(who), runtime.writers.turn():
            pass

    await asyncio.wait_for(nested(), 5)


async def test_who_is_typing_names_the_family_while_they_are_at_the_table(
    app: Any, runtime: Runtime
) -> None:
    """The outsider's organisation has no consent, but the youth and a parent are connected:
    the presence list names them, so the typing signal does too (not the role alone)."""
    w = await build_world(runtime, consent_to_expert_org=False)
    viewers = await _viewers(runtime, w)
    outsider, youth, parent = viewers[2], viewers[4], viewers[5]
    room = f"triage:{w.session_id}"
    at_table = TriageRenderer(app.state.jinja, lambda _r: [outsider, youth, parent])
    away = TriageRenderer(app.state.jinja, lambda _r: [outsider])
    async with runtime.unit_of_work(outsider) as uow:
        named = await at_table.render_typing(uow, room, [(parent, "step-2")])
        role_only = await away.render_typing(uow, room, [(parent, "step-2")])
    assert "Ma Canarie" in named
    assert "Ma Canarie" not in role_only and "Ouder" in role_only
