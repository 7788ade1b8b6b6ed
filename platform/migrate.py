"""Run Alembic migrations programmatically (``keerpunt db upgrade``)."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from keerpunt.platform.db import make_engine


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "keerpunt.platform:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (creates it for SQLite files)."""
    if url.startswith("sqlite") and ":///" in url:
        from pathlib import Path

        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        engine = make_engine(url, pool=False)
        async with engine.connect() as conn:
            await conn.run_sync(_upgrade_sync, url, revision)
            await conn.commit()
        await engine.dispose()

    asyncio.run(run())


def _upgrade_sync(connection: Connection, url: str, revision: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)
