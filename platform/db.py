"""Database: one typed declarative base, the async engine, and the unit of work at the edge.

Services receive an :class:`AsyncSession` and never commit; the edge (a handler or a CLI
command) opens the transaction, commits it, and only then publishes real-time events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in storage on every database (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store timezone-aware UTC")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # WAL + NORMAL: no fsync per commit, still never corrupt; a power cut may lose the last
    # few commits. Production runs on PostgreSQL.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, *, pool: bool = True) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    if not pool:
        kwargs["poolclass"] = NullPool
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take it over so BEGIN IMMEDIATE
        # (see begin_immediate) and SAVEPOINTs behave as on PostgreSQL.
        event.listen(engine.sync_engine, "connect", _sqlite_autocommit_off)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_autocommit_off(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


READ_ONLY = "keerpunt_read_only"
"""Execution option for a session that only reads (the live fan-out renders in one): on
SQLite it reads beside the writer (WAL) instead of taking the write lock."""


def _sqlite_begin(conn: Any) -> None:
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
        return
    # Every write transaction in Keerpunt reads before it writes (sequence numbers, the audit
    # chain); IMMEDIATE takes the write lock up front so two writers queue instead of failing.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class WriterTurns:
    """On SQLite, writers in this process take turns here, first come first served, before
    they take the database's write lock: SQLite's own wait for a busy lock sleeps and polls,
    which under many concurrent writers (saves, the live fan-out's audit rows) leaves the
    lock idle while everyone sleeps. On PostgreSQL (row locks) it does nothing."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sqlite = engine.dialect.name == "sqlite"
        # One lock per event loop (tests run several loops against one engine).
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._holders: weakref.WeakSet[asyncio.Task[object]] = weakref.WeakSet()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if not self._sqlite:
            yield
            return
        task = asyncio.current_task()
        if task is not None and task in self._holders:
            yield  # a turn inside a turn (nested unit of work): it has the turn already
            return
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        async with lock:
            if task is not None:
                self._holders.add(task)
            try:
                yield
            finally:
                if task is not None:
                    self._holders.discard(task)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessionmaker() as session, session.begin():
        yield session
