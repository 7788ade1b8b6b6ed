"""The real-time hub: rooms of websocket connections, replay by sequence number, presence.

A room is, for example, one triage session (``"triage:12"``). Changes are saved as
:class:`RoomEvent` rows with a per-room sequence number in the same transaction as the change;
after the commit the edge calls :meth:`Hub.publish`. Every connection renders each event for
its own viewer (consent decides per viewer), so nothing personal is ever broadcast as-is.
A reconnecting client says the last sequence number it saw and gets everything after it.

The hub lives in one server process. Running several processes needs a shared channel
(PostgreSQL LISTEN/NOTIFY or Redis pub/sub) in :meth:`publish`; the replay from the database
already makes reconnects process-independent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from keerpunt.platform.db import utcnow
from keerpunt.platform.i18n import current_locale
from keerpunt.platform.models import LoginSession, RoomEvent
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import CONSENT_CHANGED, UnitOfWork
from keerpunt.platform.vault import Vault

__all__ = ["Hub", "RoomRenderer"]

log = logging.getLogger(__name__)
RESUME_WAIT_SECONDS = 5.0
STOP_WAIT_SECONDS = 5.0
TYPING_EVERY_SECONDS = 1.0  # at most one typing signal per connection per second
TYPING_SHOWN_SECONDS = 6.0  # a typing signal is shown this long after the last keystroke
_TYPING_WHERE = re.compile(r"[a-z0-9-]{1,20}")


class RoomRenderer(Protocol):
    """Renders room events and presence as htmx out-of-band fragments for one viewer."""

    async def render_events(self, uow: UnitOfWork, room: str, events: list[RoomEvent]) -> str: ...

    async def render_presence(
        self, uow: UnitOfWork, room: str, present: list[Principal]
    ) -> str: ...


class TypingRenderer(Protocol):
    """Optional: renders who is typing where (a light signal, never stored)."""

    async def render_typing(
        self, uow: UnitOfWork, room: str, typing: list[tuple[Principal, str]]
    ) -> str: ...


class LoginEnded(Exception):
    """The viewer's login session is no longer valid."""


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    viewer: Principal
    room: str
    last_seq: int = 0
    # A presence update waits in the queue: later comings and goings join it (rendered once,
    # with who is there by then) instead of each drawing the list again.
    presence_pending: bool = False
    queue: asyncio.Queue[str | list[RoomEvent] | None] = field(default_factory=asyncio.Queue)
    typed_at: float = 0.0


class Hub:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], vault: Vault) -> None:
        self._sessionmaker = sessionmaker
        self._vault = vault
        self._rooms: dict[str, set[Connection]] = defaultdict(set)
        self._renderers: dict[str, RoomRenderer] = {}
        # room -> actor -> (where, when): who typed where lately (memory only, never saved)
        self._typing: dict[str, dict[str, tuple[Principal, str, float]]] = defaultdict(dict)

    def register(self, prefix: str, renderer: RoomRenderer) -> None:
        self._renderers[prefix] = renderer

    def present(self, room: str) -> list[Principal]:
        seen: dict[str, Principal] = {}
        for conn in self._rooms.get(room, ()):
            seen.setdefault(conn.viewer.actor, conn.viewer)
        return sorted(seen.values(), key=lambda p: p.actor)

    def publish(self, events: Iterable[RoomEvent]) -> None:
        """Hand committed events to every connection in their room (call after commit)."""
        by_room: dict[str, list[RoomEvent]] = defaultdict(list)
        for e in events:
            by_room[e.room].append(e)
        for room, room_events in by_room.items():
            for conn in list(self._rooms.get(room, ())):
                conn.queue.put_nowait(room_events)

    async def serve(self, websocket: WebSocket, room: str, viewer: Principal, after: int) -> None:
        """Run one client connection until it closes."""
        await websocket.accept()
        with contextlib.suppress(TimeoutError, ValueError, KeyError, TypeError):
            msg = await asyncio.wait_for(websocket.receive_json(), RESUME_WAIT_SECONDS)
            if msg.get("type") == "resume":
                after = max(0, int(msg["after"]))
        conn = Connection(websocket, viewer, room, last_seq=after)
        self._rooms[room].add(conn)
        self._announce_presence(room)
        pump = asyncio.create_task(self._pump(conn))
        try:
            await self._replay(conn)
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("text"):
                    self._client_message(conn, message["text"])
        except WebSocketDisconnect:
            pass
        finally:
            # Let the pump finish what it is rendering (a database read) instead of cutting
            # it off mid-query; cancel only if it hangs.
            conn.queue.put_nowait(None)
            try:
                await asyncio.wait_for(pump, STOP_WAIT_SECONDS)
            except (TimeoutError, asyncio.CancelledError):
                pump.cancel()
            self._rooms[room].discard(conn)
            if not self._rooms[room]:
                del self._rooms[room]
                self._typing.pop(room, None)
            self._announce_presence(room)

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
        for other in list(self._rooms.get(conn.room, ())):
            if other.viewer.actor != conn.viewer.actor:
                other.queue.put_nowait("typing")

    def typing(self, room: str) -> list[tuple[Principal, str]]:
        """Who typed where in the last few seconds."""
        now = time.monotonic()
        recent = self._typing.get(room, {})
        for actor in [a for a, (_p, _w, at) in recent.items() if now - at > TYPING_SHOWN_SECONDS]:
            del recent[actor]
        return [(p, where) for p, where, _at in recent.values()]

    def _announce_presence(self, room: str) -> None:
        for conn in list(self._rooms.get(room, ())):
            if not conn.presence_pending:
                conn.presence_pending = True
                conn.queue.put_nowait("presence")

    async def _replay(self, conn: Connection) -> None:
        async with self._sessionmaker() as db:
            missed = list(
                (
                    await db.scalars(
                        select(RoomEvent)
                        .where(RoomEvent.room == conn.room, RoomEvent.seq > conn.last_seq)
                        .order_by(RoomEvent.seq)
                    )
                ).all()
            )
        if missed:
            conn.queue.put_nowait(missed)

    async def _pump(self, conn: Connection) -> None:
        renderer = self._renderers[conn.room.split(":", 1)[0]]
        while True:
            item = await conn.queue.get()
            if item is None:
                return
            if item == "presence":
                conn.presence_pending = False  # from here on a change needs a new render
            try:
                html = await self._render(conn, renderer, item)
                if html and conn.websocket.application_state == WebSocketState.CONNECTED:
                    await conn.websocket.send_text(html)
            except LoginEnded:
                # Logged out, expired, or the invitation was revoked: the stream stops now,
                # not at the next page load. 4401 tells the client not to reconnect.
                await conn.websocket.close(code=4401)
                return
            except (WebSocketDisconnect, RuntimeError):
                return
            except Exception:  # a render failure must not kill the connection silently
                log.exception("rendering for %s in %s failed", conn.viewer.actor, conn.room)
                await conn.websocket.close(code=1011)
                return

    async def _render(
        self, conn: Connection, renderer: RoomRenderer, item: str | list[RoomEvent]
    ) -> str:
        current_locale.set(conn.viewer.locale)
        async with self._sessionmaker() as db, db.begin():
            login = await db.get(LoginSession, conn.viewer.session_id)
            if login is None or login.revoked_at is not None or login.expires_at <= utcnow():
                raise LoginEnded()
            uow = UnitOfWork(db=db, vault=self._vault, who=conn.viewer)
            if item == "typing":
                if not hasattr(renderer, "render_typing"):
                    return ""
                typing: TypingRenderer = renderer  # type: ignore[assignment]
                return await typing.render_typing(uow, conn.room, self.typing(conn.room))
            if isinstance(item, str):  # "presence"
                return await renderer.render_presence(uow, conn.room, self.present(conn.room))
            events = [e for e in item if e.seq > conn.last_seq]
            if not events:
                return ""
            html = await renderer.render_events(uow, conn.room, events)
            if any(e.kind == CONSENT_CHANGED for e in events):
                # Who is present is labelled by consent too: label them anew.
                html += await renderer.render_presence(uow, conn.room, self.present(conn.room))
            conn.last_seq = events[-1].seq
            return (
                html
                + f'<span id="kp-seq" data-seq="{conn.last_seq}" hidden hx-swap-oob="true"></span>'
            )
