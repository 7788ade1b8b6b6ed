"""The unit of work handed to domain services: database session, vault, actor, events.

Services record room events with :meth:`UnitOfWork.emit` inside the transaction; the edge
publishes them to connected clients only after the commit succeeded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform.models import RoomCounter, RoomEvent
from keerpunt.platform.principal import Principal
from keerpunt.platform.vault import Vault

__all__ = ["CONSENT_CHANGED", "CaseRooms", "UnitOfWork", "register_case_rooms"]

CONSENT_CHANGED = "consent.changed"
"""Event kind: what each viewer may see of a case (and its people) may have changed."""

CaseRooms = Callable[[AsyncSession, int], Awaitable[list[str]]]
"""Given a case id, the live rooms that show that case (e.g. its triage sessions)."""

_case_rooms: list[CaseRooms] = []


def register_case_rooms(rooms_of: CaseRooms) -> None:
    """A domain says which of its rooms show a case, so a change to the case as a whole
    (consent given or withdrawn) reaches every screen that shows it, without the domain
    that made the change knowing those rooms. Registering twice has no extra effect."""
    if rooms_of not in _case_rooms:
        _case_rooms.append(rooms_of)


@dataclass
class UnitOfWork:
    db: AsyncSession
    vault: Vault
    who: Principal
    pending_events: list[RoomEvent] = field(default_factory=list)
    # Disclosure decisions already made (and audited) for a batch in this transaction, by
    # viewer, case, purpose and family at the table (consent.disclosures_for).
    decided: dict[tuple[object, ...], Any] = field(default_factory=dict)
    # Set in a read-only transaction (the live fan-out): audit rows of reads wait here and
    # are written, before anything is shown, in a short write transaction of their own.
    deferred_audit: list[Any] | None = None

    def acting_as(self, who: Principal) -> UnitOfWork:
        """The same transaction, seen by another viewer (a live push renders one batch for
        everyone in a room); decisions made for the batch, and deferred audit rows, are
        shared."""
        return UnitOfWork(
            db=self.db,
            vault=self.vault,
            who=who,
            decided=self.decided,
            deferred_audit=self.deferred_audit,
        )

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

    async def emit_to_case(self, case_id: int, kind: str) -> list[RoomEvent]:
        """Save an event in every live room that shows this case (see
        :func:`register_case_rooms`), in this transaction; subject is the case id."""
        rooms: list[str] = []
        for rooms_of in _case_rooms:
            rooms.extend(await rooms_of(self.db, case_id))
        return [await self.emit(room, kind, case_id) for room in dict.fromkeys(rooms)]

    async def last_seq(self, room: str) -> int:
        seq = await self.db.scalar(select(RoomCounter.last_seq).where(RoomCounter.room == room))
        return seq or 0
