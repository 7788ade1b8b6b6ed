"""Run Alembic migrations programmatically (``keerpunt db upgrade``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from keerpunt.platform.db import make_engine


def alembic_config(url: str) -> Config:
    cfg = Config()
    # Resolved from this file, never the working directory (the folders are not packages).
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (creates it for SQLite files)."""
    if url.startswith("sqlite") and ":///" in url:
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


def autogenerate(sqlite_path: str, message: str = "initial schema") -> None:
    """Write a migration for the difference between the models and an empty database."""

    async def run() -> None:
        url = f"sqlite+aiosqlite:///{sqlite_path}"
        engine = make_engine(url, pool=False)
        async with engine.connect() as conn:
            await conn.run_sync(_revision_sync, url, message)
        await engine.dispose()

    asyncio.run(run())


def _revision_sync(connection: Connection, url: str, message: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
    command.revision(cfg, message=message, autogenerate=True)


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--autogenerate":
        autogenerate(sys.argv[2])
    else:
        raise SystemExit("usage: python -m keerpunt.platform.migrate --autogenerate DB_PATH")
