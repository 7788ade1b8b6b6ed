"""The live relay: room events saved by other processes reach this server's screens.

A unit of work saves its room events in ``room_event`` in its own transaction, stamped with the
origin of the runtime's hub, and that hub publishes them right after the commit. A command
(``keerpunt consent daily``, ``keerpunt retention shred``, an import) or another server process
has its own hub, with no screens of this process in it. :class:`Relay`, started with the app,
reads the events others saved and hands them to this server's hub; its own it skips (they were
published already). ``room_event`` is the outbox: written in the same transaction as the
change, no personal data (room, sequence number, kind, ids), kept anyway for the replay of a
reconnecting screen, so nothing is written twice and nothing needs pruning.

On PostgreSQL the writing transaction queues ``NOTIFY keerpunt_live`` (delivered only on
commit) and the relay LISTENs on a connection of its own, with a slow poll as safety net (the
connection may drop). On SQLite it polls. At start it begins after the newest event: a restart
pushes nothing old (a screen that reconnects replays what it missed).

PostgreSQL hands out ids when a row is written, not when it commits: an id skipped over may
still commit. Such gaps are asked for again for :data:`GAP_SECONDS`; the hub also completes a
room's batch that skips a sequence number from the database, so a late one is drawn with the
next change in its room at the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keerpunt.platform.db import READ_ONLY
from keerpunt.platform.models import RoomEvent
from keerpunt.platform.realtime import Hub
from keerpunt.platform.uow import LIVE_CHANNEL

__all__ = ["Relay"]

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # SQLite: how often to look (the promise on screen is within a second)
SAFETY_POLL_SECONDS = 5.0  # PostgreSQL: notifications wake the relay; this catches any lost
GAP_SECONDS = 60.0  # how long an id skipped over may still commit (a long transaction)
MAX_GAPS = 500
BATCH = 500


class Relay:
    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        hub: Hub,
    ) -> None:
        self._engine = engine
        self._sessionmaker = sessionmaker
        self._hub = hub
        self._postgresql = engine.dialect.name == "postgresql"
        self._high: int | None = None  # every id up to here was seen, or is in _gaps
        self._gaps: dict[int, float] = {}  # id -> when it was first skipped over
        self._wake = asyncio.Event()
        self._listener: Any = None  # asyncpg connection, PostgreSQL only
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin after the newest event and follow from there, until :meth:`stop`. A database
        that is away does not stop the app from starting: the relay begins when it is back."""
        try:
            await self.skip_the_past()
            await self._listen()
        except Exception:
            log.exception("live relay: the database is not reachable, trying again")
        self._task = asyncio.create_task(self._run(), name="live-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._unlisten()

    async def skip_the_past(self) -> None:
        """Start after the newest saved event: what came before is not pushed again."""
        async with self._sessionmaker(execution_options={READ_ONLY: True}) as db:
            self._high = await db.scalar(select(func.max(RoomEvent.id))) or 0
        self._gaps = {}

    async def tail(self) -> list[RoomEvent]:
        """Hand the events others saved since the last look to the hub, in the order they
        were saved; returns them."""
        if self._high is None:
            await self.skip_the_past()
        relayed: list[RoomEvent] = []
        while True:
            seen = await self._read()
            relayed += [e for e in seen if e.origin != self._hub.origin]
            if len(seen) < BATCH:
                break
        self._hub.publish(relayed)
        return relayed

    async def _read(self) -> list[RoomEvent]:
        high = self._high or 0
        newer = RoomEvent.id > high
        where = or_(newer, RoomEvent.id.in_(list(self._gaps))) if self._gaps else newer
        async with self._sessionmaker(execution_options={READ_ONLY: True}) as db:
            events = list(
                (
                    await db.scalars(
                        select(RoomEvent).where(where).order_by(RoomEvent.id).limit(BATCH)
                    )
                ).all()
            )
        now = time.monotonic()
        for e in events:
            self._gaps.pop(e.id, None)
        fresh = {e.id for e in events if e.id > high}
        if fresh:
            top = max(fresh)
            for i in range(max(high + 1, top - MAX_GAPS), top):
                if i not in fresh:
                    self._gaps[i] = now
            self._high = top
        self._gaps = {i: at for i, at in self._gaps.items() if now - at < GAP_SECONDS}
        if len(self._gaps) > MAX_GAPS:
            self._gaps = dict(sorted(self._gaps.items())[-MAX_GAPS:])
        return events

    async def _run(self) -> None:
        listen_again_at = 0.0
        while True:
            listening = self._listener is not None and not self._listener.is_closed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), SAFETY_POLL_SECONDS if listening else POLL_SECONDS
                )
            self._wake.clear()
            try:
                if self._postgresql and not listening and time.monotonic() >= listen_again_at:
                    listen_again_at = time.monotonic() + SAFETY_POLL_SECONDS
                    await self._listen()
                await self.tail()
            except Exception:  # the database may be away a moment: try again next round
                log.exception("live relay: reading room events failed")
                await asyncio.sleep(SAFETY_POLL_SECONDS)

    async def _listen(self) -> None:
        if not self._postgresql:
            return
        await self._unlisten()
        url = self._engine.url.set(drivername="postgresql")
        try:
            conn = await asyncpg.connect(url.render_as_string(hide_password=False))
            await conn.add_listener(LIVE_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError):
            log.warning("live relay: cannot listen for notifications, polling instead")
            return
        self._listener = conn

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await conn.close(timeout=2)

    def _notified(self, _conn: object, _pid: int, _channel: str, origin: str) -> None:
        if origin != self._hub.origin:  # own saves were published directly
            self._wake.set()
