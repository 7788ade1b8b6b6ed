"""The live fan-out renders a push for a whole room at once (one transaction, one consent
context, each distinct view drawn once). These tests hold it to the single path: every viewer
gets exactly what rendering for them alone gives, with their own CSRF token and level, and
every viewer who read the case has their own audit row."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from keerpunt.platform import audit
from keerpunt.platform.models import AuditEntry, CaseMember, RoomEvent
from keerpunt.platform.principal import Principal, family_principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import CONSENT_CHANGED, UnitOfWork
from keerpunt.triage import arrangement, plan
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


@contextlib.contextmanager
def _statements(rt: Runtime) -> Iterator[list[str]]:
    """The SQL statements sent to the database meanwhile."""
    sent: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    event.listen(rt.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", count)


async def test_a_batch_reads_the_table_once_however_many_views_it_draws(
    app: Any, runtime: Runtime
) -> None:
    """Each changed row is read once per push, not once per group of viewers who see it
    differently: the number of statements does not grow with the number of views."""
    w = await build_world(runtime)
    viewers = await _viewers(runtime, w)
    events = await _table(runtime, w, viewers)  # items, a goal-less factor pair, steps 4 and 5
    room = f"triage:{w.session_id}"
    expert, youth = viewers[0], viewers[4]
    counts = []
    # Two views (the expert, the youth), then six (the expert's two tabs share one, the other
    # expert, the coordinator, the youth, the parent and the JIM each see it differently).
    for room_viewers in ([expert, youth], viewers):
        renderer = TriageRenderer(app.state.jinja, lambda _r: viewers[:4])
        async with runtime.sessionmaker() as db, db.begin():
            # As the hub renders: read-only, the audit rows are written after (one each).
            uow = UnitOfWork(db=db, vault=runtime.vault, who=expert, deferred_audit=[])
            with _statements(runtime) as sent:
                out = await renderer.render_for(uow, room, room_viewers, events)
        assert all(html and WITH_CONSENT in html for html in (out[0], out[-1]))
        assert uow.deferred_audit is not None
        assert sorted(e.who.actor for e in uow.deferred_audit) == sorted(
            v.actor for v in room_viewers
        )
        counts.append(len(sent))
    assert counts[1] == counts[0], counts


async def test_steps_4_and_5_are_read_with_an_audit_row(runtime: Runtime) -> None:
    """The stated shares and the plan are personal: reading step 4 or 5 is audited like
    every other read of the case."""
    w = await build_world(runtime)
    viewers = await _viewers(runtime, w)
    await _table(runtime, w, viewers)
    outsider = viewers[2]
    for read in (arrangement.arrangement_view, plan.plan_view):
        before = len(await _reads(runtime))
        async with runtime.unit_of_work(outsider) as uow:
            await read(uow, w.session_id)
        rows = (await _reads(runtime))[before:]
        assert [(r.actor, r.case_id) for r in rows] == [(outsider.actor, w.case_id)], read
        assert "level=pseudonymous" in rows[0].detail


async def test_a_push_of_steps_4_and_5_is_audited_as_the_single_path_audits_it(
    app: Any, runtime: Runtime
) -> None:
    """With the family at the table the other expert may read the items openly, but steps 4
    and 5 are read without the family (as on the page): the batch audits each viewer's read
    of the steps at the level the steps were drawn with, as rendering for them alone does."""
    w = await build_world(runtime)
    viewers = await _viewers(runtime, w)
    expert, outsider, youth, parent = viewers[0], viewers[2], viewers[4], viewers[5]
    async with runtime.sessionmaker() as db:
        after = await db.scalar(
            select(func.max(RoomEvent.seq)).where(RoomEvent.room == f"triage:{w.session_id}")
        )
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_line(
            uow, w.session_id, w.provider.id, "45A52", "ambulant", "2", None, share=SHARE
        )
        await plan.add_activity(uow, w.session_id, "Ruud", "Huisbezoek", None)
    async with runtime.sessionmaker() as db:
        events = list(
            (
                await db.scalars(
                    select(RoomEvent)
                    .where(RoomEvent.room == f"triage:{w.session_id}", RoomEvent.seq > (after or 0))
                    .order_by(RoomEvent.seq)
                )
            ).all()
        )
    assert {e.kind.partition(".")[0] for e in events} == {"line", "activity"}
    room = f"triage:{w.session_id}"
    at_table = [expert, outsider, youth, parent]
    single = TriageRenderer(app.state.jinja, lambda _r: at_table)
    alone = []
    before = len(await _reads(runtime))
    for v in at_table:
        async with runtime.unit_of_work(v) as uow:
            alone.append(await single.render_events(uow, room, events))
    single_reads = {(r.actor, r.detail) for r in (await _reads(runtime))[before:]}

    before = len(await _reads(runtime))
    batch = await _batch(
        runtime, TriageRenderer(app.state.jinja, lambda _r: at_table), room, at_table, events
    )
    rows = (await _reads(runtime))[before:]

    assert batch == alone
    assert SHARE not in (batch[1] or "")  # steps 4 and 5: without the family, the pseudonym
    assert {(r.actor, r.detail) for r in rows} == single_reads
    assert sorted(r.actor for r in rows) == sorted(v.actor for v in at_table)  # one each
    (seen,) = [r for r in rows if r.actor == outsider.actor]
    assert "level=pseudonymous" in seen.detail


@pytest.mark.parametrize("kind", [CONSENT_CHANGED, "session.closed"])
async def test_a_whole_page_redraw_from_shared_rows_is_each_viewers_own(
    app: Any, runtime: Runtime, kind: str
) -> None:
    """Consent changed or the meeting closed: everything personal is drawn again per viewer,
    from the rows read once for the batch, exactly as rendering for each alone gives it."""
    w = await build_world(runtime)
    viewers = await _viewers(runtime, w)
    await _table(runtime, w, viewers)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        (event,) = await uow.emit_to_case(w.case_id, kind)
    room = f"triage:{w.session_id}"
    present = viewers[:6]  # the youth and a parent are at the table: the note shows
    single = TriageRenderer(app.state.jinja, lambda _r: present)
    alone = []
    for v in viewers:
        async with runtime.unit_of_work(v) as uow:
            alone.append(await single.render_events(uow, room, [event]))

    batch = await _batch(
        runtime, TriageRenderer(app.state.jinja, lambda _r: present), room, viewers, [event]
    )

    assert batch == alone
    assert all(html and ANONYMOUS in html for html in batch)
    assert [WITH_CONSENT in (html or "") for html in batch] == [True] * 7  # family at the table


async def test_who_is_typing_from_shared_rows_is_each_viewers_own(
    app: Any, runtime: Runtime
) -> None:
    w = await build_world(runtime, consent_to_expert_org=False)
    viewers = await _viewers(runtime, w)
    room = f"triage:{w.session_id}"
    parent = viewers[5]
    typing = [(parent, "step-2"), (viewers[0], "step-3")]
    renderer = TriageRenderer(app.state.jinja, lambda _r: viewers, lambda _r: typing)
    alone = []
    for v in viewers:
        async with runtime.unit_of_work(v) as uow:
            alone.append(await renderer.render_typing(uow, room, typing))

    batch = await _batch(runtime, renderer, room, viewers, "typing")

    assert batch == alone
    assert "Ma Canarie" in (batch[2] or "")  # the family is at the table: named
