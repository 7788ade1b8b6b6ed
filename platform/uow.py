"""The unit of work handed to domain services: database session, vault, actor, events.

Services record room events with :meth:`UnitOfWork.emit` inside the transaction; the edge
publishes them to connected clients only after the commit succeeded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, insert, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

from keerpunt.platform.models import RoomCounter, RoomEvent
from keerpunt.platform.principal import Principal
from keerpunt.platform.vault import Vault

__all__ = [
    "CONSENT_CHANGED",
    "LIVE_CHANNEL",
    "CaseRooms",
    "UnitOfWork",
    "register_case_rooms",
    "watch_disclosure_inputs",
]

LIVE_CHANNEL = "keerpunt_live"
"""PostgreSQL NOTIFY channel: a transaction that saved room events says so on commit (the
payload is the saving hub's origin), so other server processes relay them at once."""

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


CaseOf = Callable[[Any], int | None]
"""Given a changed row, the id of the case whose disclosure it may change."""

# Row types whose change may change what someone may see of a case: the model, the columns
# that matter for an update (None: any), and how to find the case.
_watched: dict[type[Any], tuple[frozenset[str] | None, CaseOf]] = {}
_CHANGED_CASES = "keerpunt.disclosure_changed_cases"


def watch_disclosure_inputs(
    model: type[Any], case_of: CaseOf, columns: frozenset[str] | None = None
) -> None:
    """Declare that a new, deleted or (in ``columns``) changed row of ``model`` may change what
    viewers of its case may see. Every unit of work that writes such a row saves
    ``consent.changed`` in every room of that case before it commits, once per case, so no
    writer (a consent recorded, a family member or party removed from the case, a legal basis
    ended…) can leave live screens showing what they showed. The consent domain declares its
    inputs; the platform does not know them."""
    _watched[model] = (columns, case_of)


@event.listens_for(Session, "before_flush")
def _note_disclosure_inputs(session: Session, _ctx: UOWTransaction, _instances: object) -> None:
    if not _watched:
        return
    changed: set[int] = session.info.setdefault(_CHANGED_CASES, set())
    for obj in (*session.new, *session.deleted):
        watch = _watched.get(type(obj))
        if watch is not None and (case_id := watch[1](obj)) is not None:
            changed.add(case_id)
    for obj in session.dirty:
        watch = _watched.get(type(obj))
        if watch is None:
            continue
        columns, case_of = watch
        state = inspect(obj)
        names = columns if columns is not None else state.mapper.column_attrs.keys()
        if any(state.attrs[c].history.has_changes() for c in names):
            if (case_id := case_of(obj)) is not None:
                changed.add(case_id)


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
    # The hub that publishes this transaction's events after the commit (RoomEvent.origin);
    # None: no hub does, every server's relay passes them on.
    origin: str | None = None

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
        """Save an event with the room's next sequence number, in this transaction; on
        PostgreSQL the first one also queues the notification for other processes' relays."""
        notify = not self.pending_events and self.db.get_bind().dialect.name == "postgresql"
        # Queued with the transaction: delivered on commit, never for a rollback. Asked for
        # in the counter's own statement, so a save makes no extra round trip for it.
        notification = func.pg_notify(LIVE_CHANNEL, self.origin or "")
        counted = (
            await self.db.execute(
                update(RoomCounter)
                .where(RoomCounter.room == room)
                .values(last_seq=RoomCounter.last_seq + 1)
                .returning(RoomCounter.last_seq, *([notification] if notify else []))
            )
        ).first()
        if counted is not None:
            seq = counted[0]
        else:
            await self.db.execute(insert(RoomCounter).values(room=room, last_seq=1))
            seq = 1
            if notify:
                await self.db.execute(select(notification))
        event = RoomEvent(
            room=room,
            seq=seq,
            kind=kind,
            subject_id=subject_id,
            actor=self.who.actor,
            origin=self.origin,
        )
        self.db.add(event)
        await self.db.flush()
        self.pending_events.append(event)
        return event

    async def emit_to_case(
        self, case_id: int, kind: str, *, skip: Collection[str] = ()
    ) -> list[RoomEvent]:
        """Save an event in every live room that shows this case (see
        :func:`register_case_rooms`) but those in ``skip``, in this transaction; subject is
        the case id."""
        rooms: list[str] = []
        for rooms_of in _case_rooms:
            rooms.extend(await rooms_of(self.db, case_id))
        return [
            await self.emit(room, kind, case_id)
            for room in dict.fromkeys(rooms)
            if room not in skip
        ]

    async def settle_disclosure_changes(self) -> list[RoomEvent]:
        """Before commit: ``consent.changed`` in every room of each case whose disclosure
        inputs this transaction changed (see :func:`watch_disclosure_inputs`), once per case
        (a case already told in this transaction is not told again)."""
        await self.db.flush()
        cases: set[int] = self.db.info.pop(_CHANGED_CASES, set())
        told = {
            e.subject_id for e in self.pending_events if e.kind == CONSENT_CHANGED and e.subject_id
        }
        # A room this transaction opened (e.g. a session being planned) has no screen yet.
        new_rooms = {e.room for e in self.pending_events if e.seq == 1}
        events: list[RoomEvent] = []
        for case_id in sorted(cases - told):
            events += await self.emit_to_case(case_id, CONSENT_CHANGED, skip=new_rooms)
        return events

    async def last_seq(self, room: str) -> int:
        seq = await self.db.scalar(select(RoomCounter.last_seq).where(RoomCounter.room == room))
        return seq or 0
