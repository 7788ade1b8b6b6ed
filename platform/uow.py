"""The unit of work handed to domain services: database session, vault, actor, events.

Services record room events with :meth:`UnitOfWork.emit` inside the transaction; the edge
publishes them to connected clients only after the commit succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform.models import RoomCounter, RoomEvent
from keerpunt.platform.principal import Principal
from keerpunt.platform.vault import Vault

__all__ = ["UnitOfWork"]


@dataclass
class UnitOfWork:
    db: AsyncSession
    vault: Vault
    who: Principal
    pending_events: list[RoomEvent] = field(default_factory=list)

    async def emit(self, room: str, kind: str, subject_id: int | None = None) -> RoomEvent:
        """Save an event with the room's next sequence number, in this transaction."""
        result = await self.db.execute(
            update(RoomCounter)
            .where(RoomCounter.room == room)
            .values(last_seq=RoomCounter.last_seq + 1)
            .returning(RoomCounter.last_seq)
        )
        seq = result.scalar_one_or_none()
        if seq is None:
            await self.db.execute(insert(RoomCounter).values(room=room, last_seq=1))
            seq = 1
        event = RoomEvent(
            room=room, seq=seq, kind=kind, subject_id=subject_id, actor=self.who.actor
        )
        self.db.add(event)
        await self.db.flush()
        self.pending_events.append(event)
        return event

    async def last_seq(self, room: str) -> int:
        seq = await self.db.scalar(select(RoomCounter.last_seq).where(RoomCounter.room == room))
        return seq or 0
