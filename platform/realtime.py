"""The real-time hub: rooms of websocket connections, replay by sequence number, presence.

A room is, for example, one triage session (``"triage:12"``). Changes are saved as
:class:`RoomEvent` rows with a per-room sequence number in the same transaction as the change;
after the commit the edge calls :meth:`Hub.publish`. Each room has one worker that renders
what happened for everyone in the room at once, in one transaction: consent decides per
viewer (and audits each viewer's read), the renderer draws each distinct view once and gives
every viewer their own copy, so nothing personal is ever broadcast as-is. Comings and goings
and typing signals that pile up while the worker is busy are drawn once. A reconnecting
client says the last sequence number it saw and gets everything after it; until it has
caught up, the room's worker leaves it alone.

Each hub publishes what its own process saved directly (the fast path); what other processes
saved (a ``keerpunt`` command, another server process) reaches it through
:class:`keerpunt.platform.relay.Relay`, which reads ``room_event``. A room's sequence numbers
are handed out under a row lock, so they commit in order: a batch that skips one (saved
elsewhere, not relayed yet) is completed from the database before it is drawn, and a screen
never jumps over a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from keerpunt.platform import audit
from keerpunt.platform.db import READ_ONLY, WriterTurns
from keerpunt.platform.models import RoomEvent
from keerpunt.platform.principal import SYSTEM, Principal
from keerpunt.platform.sessions import ended_logins
from keerpunt.platform.uow import CONSENT_CHANGED, UnitOfWork
from keerpunt.platform.vault import Vault

__all__ = ["Hub", "RoomRenderer", "Update"]

log = logging.getLogger(__name__)
RESUME_WAIT_SECONDS = 5.0
STOP_WAIT_SECONDS = 5.0
TYPING_EVERY_SECONDS = 1.0  # at most one typing signal per connection per second
TYPING_SHOWN_SECONDS = 6.0  # a typing signal is shown this long after the last keystroke
PRESENCE_GATHER_SECONDS = 0.2  # people join in bursts: wait a moment, then draw the list once
# A quiet room still looks at its logins this often: a login that ended without anything
# happening in the room (logged out elsewhere, expired, the person deactivated or taken off
# the case) closes its screen within this time. One query per room.
LOGIN_CHECK_SECONDS = 30.0
# Transactions the hub runs at once: the rest of the app (saves, page loads, websocket
# handshakes) keeps connections of the pool (5 + 10 overflow by default).
HUB_TRANSACTIONS = 8
_TYPING_WHERE = re.compile(r"[a-z0-9-]{1,20}")

Update = list[RoomEvent] | Literal["presence", "typing"]
"""What a room's screens must show: saved events, who is present, or who is typing."""


class RoomRenderer(Protocol):
    """Renders room updates as htmx out-of-band fragments for every viewer in a room."""

    async def render_for(
        self, uow: UnitOfWork, room: str, viewers: Sequence[Principal], update: Update
    ) -> list[str | None]:
        """One fragment per viewer, in the order of ``viewers`` ("" when nothing changed
        for them; None when the viewer may no longer follow the room). ``uow`` is the batch's
        transaction; :meth:`UnitOfWork.acting_as` gives it to one viewer."""
        ...


class LoginEnded(Exception):
    """The viewer's login session is no longer valid."""


_CLOSE_LOGIN_ENDED = 4401  # the client does not reconnect
_CLOSE_NOT_ALLOWED = 4403
_CLOSE_FAILED = 1011


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    viewer: Principal
    room: str
    last_seq: int = 0
    # Caught up (replay done): from here on the room's worker renders for this connection.
    live: bool = False
    # Events published while catching up, rendered by the connection itself afterwards.
    backlog: list[RoomEvent] = field(default_factory=list)
    # What to send, in order: html, a close code, or None (stop).
    outbox: asyncio.Queue[str | int | None] = field(default_factory=asyncio.Queue)
    typed_at: float = 0.0
    closing: bool = False
    # Set once the room drew who is present for this connection: the screen shows the
    # people at the table first, then what it missed.
    greeted: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _Room:
    name: str
    conns: set[Connection] = field(default_factory=set)
    events: list[RoomEvent] = field(default_factory=list)
    presence: bool = False
    typing: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None


def new_origin() -> str:
    """A name for one hub, unique among the processes sharing the database (host, process id,
    and a random part: a hub made anew in the same process is another origin)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


class Hub:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        vault: Vault,
        writers: WriterTurns | None = None,
    ) -> None:
        self.origin = new_origin()
        self._sessionmaker = sessionmaker
        self._vault = vault
        self._writers = writers
        # A batch is rendered from one picture of the database: on SQLite a read transaction
        # is that already; PostgreSQL needs REPEATABLE READ (read committed would let a
        # consent given halfway show in one part of a push and not in another).
        bind = sessionmaker.kw.get("bind")
        self._read_options: dict[str, object] = {READ_ONLY: True}
        if bind is not None and bind.dialect.name == "postgresql":
            self._read_options["isolation_level"] = "REPEATABLE READ"
        self._rooms: dict[str, _Room] = {}
        self._renderers: dict[str, RoomRenderer] = {}
        # room -> actor -> (where, when): who typed where lately (memory only, never saved)
        self._typing: dict[str, dict[str, tuple[Principal, str, float]]] = defaultdict(dict)
        self._slots: asyncio.Semaphore | None = None

    def register(self, prefix: str, renderer: RoomRenderer) -> None:
        self._renderers[prefix] = renderer

    def present(self, room: str) -> list[Principal]:
        seen: dict[str, Principal] = {}
        r = self._rooms.get(room)
        for conn in r.conns if r else ():
            seen.setdefault(conn.viewer.actor, conn.viewer)
        return sorted(seen.values(), key=lambda p: p.actor)

    def publish(self, events: Iterable[RoomEvent]) -> None:
        """Hand committed events to the rooms' workers (call after commit)."""
        for e in events:
            r = self._rooms.get(e.room)
            if r is None:
                continue  # nobody is looking: a later visitor reads it from the database
            r.events.append(e)
            for conn in r.conns:
                if not conn.live:
                    conn.backlog.append(e)
            r.wake.set()

    async def serve(self, websocket: WebSocket, room: str, viewer: Principal, after: int) -> None:
        """Run one client connection until it closes."""
        await websocket.accept()
        with contextlib.suppress(TimeoutError, ValueError, KeyError, TypeError):
            msg = await asyncio.wait_for(websocket.receive_json(), RESUME_WAIT_SECONDS)
            if msg.get("type") == "resume":
                after = max(0, int(msg["after"]))
        conn = Connection(websocket, viewer, room, last_seq=after)
        r = self._join(conn)
        sender = asyncio.create_task(self._send_loop(conn))
        catch_up = asyncio.create_task(self._catch_up(conn))
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("text"):
                    self._client_message(conn, message["text"])
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            r.conns.discard(conn)
            # Let the catch-up finish what it is rendering (a database read) instead of
            # cutting it off mid-query; cancel only if it hangs.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(catch_up), STOP_WAIT_SECONDS)
            catch_up.cancel()
            conn.outbox.put_nowait(None)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(sender, STOP_WAIT_SECONDS)
            if not r.conns:
                self._typing.pop(room, None)
            self._announce_presence(r)
            r.wake.set()  # an empty room's worker ends

    def _join(self, conn: Connection) -> _Room:
        r = self._rooms.get(conn.room)
        if r is None:
            r = self._rooms[conn.room] = _Room(conn.room)
        r.conns.add(conn)
        if r.worker is None or r.worker.done():
            r.worker = asyncio.create_task(self._work(r))
        self._announce_presence(r)
        return r

    def _client_message(self, conn: Connection, text: str) -> None:
        """A light signal from the client; today only {"type": "typing", "where": "step-2"}."""
        try:
            msg = json.loads(text)
        except ValueError:
            return
        if not isinstance(msg, dict) or msg.get("type") != "typing":
            return
        where = msg.get("where")
        now = time.monotonic()
        if not isinstance(where, str) or not _TYPING_WHERE.fullmatch(where):
            return
        if now - conn.typed_at < TYPING_EVERY_SECONDS:
            return  # throttled: a fast typist does not flood the room
        conn.typed_at = now
        self._typing[conn.room][conn.viewer.actor] = (conn.viewer, where, now)
        r = self._rooms.get(conn.room)
        if r is not None:
            r.typing = True
            r.wake.set()

    def typing(self, room: str) -> list[tuple[Principal, str]]:
        """Who typed where in the last few seconds."""
        now = time.monotonic()
        recent = self._typing.get(room, {})
        for actor in [a for a, (_p, _w, at) in recent.items() if now - at > TYPING_SHOWN_SECONDS]:
            del recent[actor]
        return [(p, where) for p, where, _at in recent.values()]

    def _announce_presence(self, r: _Room) -> None:
        if r.conns:
            r.presence = True
            r.wake.set()

    def _db_slots(self) -> asyncio.Semaphore:
        if self._slots is None:  # made on first use: it belongs to the running event loop
            self._slots = asyncio.Semaphore(HUB_TRANSACTIONS)
        return self._slots

    async def _work(self, r: _Room) -> None:
        """The room's worker: renders what piled up for everyone in the room, batch by batch."""
        try:
            while True:
                try:
                    await asyncio.wait_for(r.wake.wait(), LOGIN_CHECK_SECONDS)
                except TimeoutError:
                    if not r.conns:
                        return
                    await self._close_ended_logins(r)
                    continue
                r.wake.clear()
                if not r.conns:
                    return
                if r.presence and not r.events:
                    await asyncio.sleep(PRESENCE_GATHER_SECONDS)  # let a burst of joins land
                if r.events:
                    events, r.events = r.events, []
                    await self._fan_out_events(r, events)
                if r.presence:
                    r.presence = False
                    conns = [c for c in r.conns if not c.closing]
                    await self._fan_out(r, conns, "presence")
                    for conn in conns:
                        conn.greeted.set()
                if r.typing:
                    r.typing = False
                    typists = {p.actor for p, _w in self.typing(r.name)}
                    # A typist does not see themself typing: only the others need the signal.
                    await self._fan_out(
                        r,
                        [c for c in r.conns if not c.closing and typists - {c.viewer.actor}],
                        "typing",
                    )
        except Exception:  # the worker must never die silently: the room would go quiet
            log.exception("room worker for %s failed", r.name)
            for conn in list(r.conns):
                self._close(conn, _CLOSE_FAILED)
        finally:
            if self._rooms.get(r.name) is r and not r.conns:
                del self._rooms[r.name]
            elif r.conns:  # failed with people in the room: they reconnect to a new worker
                self._rooms.pop(r.name, None)

    async def _close_ended_logins(self, r: _Room) -> None:
        """Close the screens whose login ended (see :data:`LOGIN_CHECK_SECONDS`); the others
        hear that the person left the table when the socket is gone."""
        conns = [c for c in r.conns if not c.closing]
        if not conns:
            return
        async with (
            self._db_slots(),
            self._sessionmaker(execution_options=self._read_options) as db,
        ):
            ended = await ended_logins(db, {c.viewer.session_id for c in conns})
        for conn in conns:
            if conn.viewer.session_id in ended:
                self._close(conn, _CLOSE_LOGIN_ENDED)

    async def _fan_out_events(self, r: _Room, events: list[RoomEvent]) -> None:
        # Published here and relayed from elsewhere, an event can come twice or out of order.
        events = sorted({e.seq: e for e in events}.values(), key=lambda e: e.seq)
        # Connections that saw the same events get the same batch (usually all of them).
        groups: dict[int, list[Connection]] = defaultdict(list)
        for conn in r.conns:
            if conn.live and not conn.closing and events[-1].seq > conn.last_seq:
                groups[conn.last_seq].append(conn)
        for last_seq, conns in groups.items():
            batch = await self._complete(r.name, last_seq, events)
            await self._fan_out(r, conns, batch)

    async def _complete(self, room: str, after: int, events: list[RoomEvent]) -> list[RoomEvent]:
        """The events after ``after`` up to the last of ``events`` (sorted), none skipped: one
        that another process saved and the relay has not passed on yet is committed already
        (sequence numbers commit in order), so it is read from the database."""
        batch = [e for e in events if e.seq > after]
        if [e.seq for e in batch] == list(range(after + 1, after + 1 + len(batch))):
            return batch
        async with (
            self._db_slots(),
            self._sessionmaker(execution_options=self._read_options) as db,
        ):
            saved = (
                await db.scalars(
                    select(RoomEvent)
                    .where(
                        RoomEvent.room == room,
                        RoomEvent.seq > after,
                        RoomEvent.seq <= batch[-1].seq,
                    )
                    .order_by(RoomEvent.seq)
                )
            ).all()
        return sorted({e.seq: e for e in (*saved, *batch)}.values(), key=lambda e: e.seq)

    async def _fan_out(self, r: _Room, conns: list[Connection], update: Update) -> None:
        if not conns:
            return
        try:
            htmls = await self._render(r.name, conns, update)
        except Exception:  # a render failure must not kill the connections silently
            log.exception("rendering %s for %d viewers failed", r.name, len(conns))
            for conn in conns:
                self._close(conn, _CLOSE_FAILED)
            return
        for conn, html in zip(conns, htmls, strict=True):
            if isinstance(html, int):
                self._close(conn, html)
            elif html:
                conn.outbox.put_nowait(html)

    async def _render(self, room: str, conns: list[Connection], update: Update) -> list[str | int]:
        """Render ``update`` for these connections in one transaction: a close code for a
        connection whose login ended or who may no longer follow the room, else the html."""
        renderer = self._renderers[room.split(":", 1)[0]]
        events = update if isinstance(update, list) else []
        async with self._db_slots():
            # Rendering only reads: on SQLite it does not hold the write lock (saves go on
            # meanwhile); the audit rows of the reads are written after, before anything is sent.
            async with (
                self._sessionmaker(execution_options=self._read_options) as db,
                db.begin(),
            ):
                ended = await ended_logins(db, {c.viewer.session_id for c in conns})
                active = [c for c in conns if c.viewer.session_id not in ended]
                uow = UnitOfWork(db=db, vault=self._vault, who=SYSTEM, deferred_audit=[])
                viewers = [c.viewer for c in active]
                htmls = await renderer.render_for(uow, room, viewers, update) if active else []
                if events and any(e.kind == CONSENT_CHANGED for e in events):
                    # Who is present is labelled by consent too: label them anew.
                    again = await renderer.render_for(uow, room, viewers, "presence")
                    htmls = [
                        None if h is None or p is None else h + p
                        for h, p in zip(htmls, again, strict=True)
                    ]
            if uow.deferred_audit:
                async with (
                    self._writers.turn() if self._writers else contextlib.nullcontext(),
                    self._sessionmaker() as db,
                    db.begin(),
                ):
                    await audit.record_many(db, uow.deferred_audit)
        by_conn = dict(zip(active, htmls, strict=True))
        out: list[str | int] = []
        for conn in conns:
            if conn not in by_conn:
                out.append(_CLOSE_LOGIN_ENDED)
                continue
            html = by_conn[conn]
            if html is None:
                out.append(_CLOSE_NOT_ALLOWED)
            elif events:
                conn.last_seq = events[-1].seq
                out.append(
                    html + f'<span id="kp-seq" data-seq="{conn.last_seq}" hidden'
                    ' hx-swap-oob="true"></span>'
                )
            else:
                out.append(html)
        return out

    async def _catch_up(self, conn: Connection) -> None:
        """Replay what the client missed, then what was published meanwhile; then go live."""
        try:
            async with (
                self._db_slots(),
                self._sessionmaker(execution_options=self._read_options) as db,
            ):
                missed = list(
                    (
                        await db.scalars(
                            select(RoomEvent)
                            .where(RoomEvent.room == conn.room, RoomEvent.seq > conn.last_seq)
                            .order_by(RoomEvent.seq)
                        )
                    ).all()
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.greeted.wait(), RESUME_WAIT_SECONDS)
            while True:
                seen = {e.seq for e in missed}
                missed += [e for e in conn.backlog if e.seq not in seen]
                conn.backlog = []
                events = sorted((e for e in missed if e.seq > conn.last_seq), key=lambda e: e.seq)
                if not events:
                    break
                missed = []
                events = await self._complete(conn.room, conn.last_seq, events)
                (html,) = await self._render(conn.room, [conn], events)
                if isinstance(html, int):
                    self._close(conn, html)
                    return
                conn.outbox.put_nowait(html)
            conn.live = True  # no await since the backlog was empty: nothing slips through
        except Exception:
            log.exception("catching up %s in %s failed", conn.viewer.actor, conn.room)
            self._close(conn, _CLOSE_FAILED)

    def _close(self, conn: Connection, code: int) -> None:
        if not conn.closing:
            conn.closing = True
            conn.outbox.put_nowait(code)

    async def _send_loop(self, conn: Connection) -> None:
        """Send what the room rendered, in order; a slow client delays only itself."""
        while True:
            item = await conn.outbox.get()
            if item is None:
                return
            try:
                if isinstance(item, int):
                    # Logged out, expired, the invitation revoked (4401: the client does not
                    # reconnect), no longer allowed, or a failure: the stream stops now.
                    await conn.websocket.close(code=item)
                    return
                if conn.websocket.application_state == WebSocketState.CONNECTED:
                    await conn.websocket.send_text(item)
            except (WebSocketDisconnect, RuntimeError, OSError):
                return
