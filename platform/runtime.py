"""What one running Keerpunt holds: settings, engine, vault, hub, templates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keerpunt.platform.crypto import KeyRing
from keerpunt.platform.db import READ_ONLY, WriterTurns, make_engine, make_sessionmaker
from keerpunt.platform.principal import Principal
from keerpunt.platform.realtime import Hub
from keerpunt.platform.settings import Settings
from keerpunt.platform.uow import UnitOfWork
from keerpunt.platform.vault import Vault


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    vault: Vault
    hub: Hub
    writers: WriterTurns

    @classmethod
    def build(cls, settings: Settings, *, pool: bool = True) -> Runtime:
        engine = make_engine(settings.database_url, pool=pool)
        sessionmaker = make_sessionmaker(engine)
        vault = Vault(
            KeyRing.parse(str(settings.master_keys)), str(settings.bsn_index_key).encode()
        )
        writers = WriterTurns(engine)
        return cls(
            settings, engine, sessionmaker, vault, Hub(sessionmaker, vault, writers), writers
        )

    @asynccontextmanager
    async def unit_of_work(self, who: Principal) -> AsyncIterator[UnitOfWork]:
        """One transaction; room events are published only after it committed."""
        async with self.writers.turn(), self.sessionmaker() as db:
            async with db.begin():
                uow = UnitOfWork(db=db, vault=self.vault, who=who, origin=self.hub.origin)
                yield uow
                await uow.settle_disclosure_changes()
            self.hub.publish(uow.pending_events)

    @asynccontextmanager
    async def read_only(self, who: Principal) -> AsyncIterator[UnitOfWork]:
        """One transaction that only reads, rolled back at the end. On SQLite it reads beside
        the writer (WAL) instead of waiting for the write lock, which a long write (closing a
        quarter) may hold for a while; no writer's turn either."""
        async with self.sessionmaker(execution_options={READ_ONLY: True}) as db:
            yield UnitOfWork(db=db, vault=self.vault, who=who, origin=self.hub.origin)
