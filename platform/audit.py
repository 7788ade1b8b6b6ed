"""The audit log: append-only, hash-chained, one row per read of personal data and per change.

Each row's hash covers its own fields and the previous row's hash; the single ``audit_head``
row holds the end of the chain. Appending locks that row first, so concurrent appends queue
and the chain never forks. :func:`verify` recomputes the chain and names the first broken row,
which detects a changed, inserted or deleted row, including the last one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform.db import utcnow
from keerpunt.platform.models import AuditEntry, AuditHead
from keerpunt.platform.principal import SYSTEM, Principal

__all__ = ["GENESIS", "AuditProblem", "Entry", "record", "record_many", "verify"]

GENESIS = "0" * 64


def _row_hash(
    *,
    seq: int,
    at: dt.datetime,
    actor: str,
    role: str,
    organisation_id: int | None,
    case_id: int | None,
    action: str,
    purpose: str,
    detail: str,
    prev_hash: str,
) -> str:
    body = json.dumps(
        [
            seq,
            at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            actor,
            role,
            organisation_id,
            case_id,
            action,
            purpose,
            detail,
            prev_hash,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


async def record(
    db: AsyncSession,
    who: Principal | None,
    action: str,
    *,
    case_id: int | None = None,
    purpose: str = "",
    detail: str = "",
) -> AuditEntry:
    """Append one audit row in the caller's transaction (never any personal data in ``detail``)."""
    who = who or SYSTEM
    # Lock the head first: on PostgreSQL the UPDATE takes a row lock, on SQLite the write lock.
    bump = (
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_seq=AuditHead.last_seq + 1)
        .returning(AuditHead.last_seq, AuditHead.last_hash)
    )
    row = (await db.execute(bump)).one_or_none()
    if row is None:  # the very first append: create the head, race-free, then lock it
        await db.execute(_insert_head(db))
        row = (await db.execute(bump)).one()
    seq, prev = row
    at = utcnow()
    fields = dict(
        seq=seq,
        at=at,
        actor=who.actor if who is not SYSTEM else "system",
        role=who.role_label if who is not SYSTEM else "system",
        organisation_id=who.organisation_id,
        case_id=case_id,
        action=action,
        purpose=purpose,
        detail=detail,
    )
    digest = _row_hash(**fields, prev_hash=prev)  # type: ignore[arg-type]
    entry = AuditEntry(**fields, prev_hash=prev, hash=digest)
    db.add(entry)
    await db.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=digest))
    return entry


@dataclass(frozen=True)
class Entry:
    """One row for :func:`record_many` (the arguments of :func:`record`)."""

    who: Principal | None
    action: str
    case_id: int | None = None
    purpose: str = ""
    detail: str = ""


async def record_many(db: AsyncSession, entries: Sequence[Entry]) -> None:
    """Append several rows in the caller's transaction, chained in order, with one lock of
    the head (a live push audits every viewer's read of one batch at once)."""
    if not entries:
        return
    bump = (
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_seq=AuditHead.last_seq + len(entries))
        .returning(AuditHead.last_seq, AuditHead.last_hash)
    )
    row = (await db.execute(bump)).one_or_none()
    if row is None:
        await db.execute(_insert_head(db))
        row = (await db.execute(bump)).one()
    last_seq, prev = row
    at = utcnow()
    rows: list[dict[str, Any]] = []
    for seq, e in enumerate(entries, start=last_seq - len(entries) + 1):
        who = e.who or SYSTEM
        fields = dict(
            seq=seq,
            at=at,
            actor=who.actor if who is not SYSTEM else "system",
            role=who.role_label if who is not SYSTEM else "system",
            organisation_id=who.organisation_id,
            case_id=e.case_id,
            action=e.action,
            purpose=e.purpose,
            detail=e.detail,
        )
        digest = _row_hash(**fields, prev_hash=prev)  # type: ignore[arg-type]
        rows.append({**fields, "prev_hash": prev, "hash": digest})
        prev = digest
    # One executemany, not one INSERT per row (the ORM would fetch each new id on SQLite).
    await db.execute(insert(AuditEntry), rows)
    await db.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=prev))


def _insert_head(db: AsyncSession) -> Any:
    values = {"id": 1, "last_seq": 0, "last_hash": GENESIS}
    if db.get_bind().dialect.name == "postgresql":
        return pg_insert(AuditHead).values(**values).on_conflict_do_nothing()
    return sqlite_insert(AuditHead).values(**values).on_conflict_do_nothing()


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    reason: str


async def verify(db: AsyncSession) -> list[AuditProblem]:
    """Recompute the chain; return every break (empty list: the log is intact)."""
    problems: list[AuditProblem] = []
    prev, expected_seq = GENESIS, 1
    rows = await db.stream_scalars(select(AuditEntry).order_by(AuditEntry.seq))
    async for e in rows:
        if e.seq != expected_seq:
            problems.append(AuditProblem(expected_seq, f"rows {expected_seq}..{e.seq - 1} missing"))
        if e.prev_hash != prev:
            problems.append(AuditProblem(e.seq, "does not link to the row before it"))
        recomputed = _row_hash(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            role=e.role,
            organisation_id=e.organisation_id,
            case_id=e.case_id,
            action=e.action,
            purpose=e.purpose,
            detail=e.detail,
            prev_hash=e.prev_hash,
        )
        if recomputed != e.hash:
            problems.append(AuditProblem(e.seq, "content was changed after it was written"))
        prev, expected_seq = e.hash, e.seq + 1
    head = await db.get(AuditHead, 1)
    if head is not None and (head.last_seq != expected_seq - 1 or head.last_hash != prev):
        problems.append(AuditProblem(head.last_seq, "the newest rows were removed"))
    return problems
