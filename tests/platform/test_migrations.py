"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from keerpunt.platform.migrate import upgrade
from keerpunt.platform.schema import metadata
from tests.conftest import PG_ADMIN_URL, _async_pg


def _diff(url: str) -> list[object]:
    def compare(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))

    async def run() -> list[object]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            result = await conn.run_sync(compare)
        await engine.dispose()
        return result

    return asyncio.run(run())


def test_sqlite_migration_matches_models(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    upgrade(url)  # twice is harmless
    assert _diff(url) == []


def test_postgresql_migration_matches_models() -> None:
    name = f"keerpunt_mig_{uuid.uuid4().hex[:10]}"
    admin = _async_pg(PG_ADMIN_URL)

    async def sql(statement: str) -> None:
        engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(statement))
        await engine.dispose()

    asyncio.run(sql(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        assert _diff(url) == []
    finally:
        asyncio.run(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
