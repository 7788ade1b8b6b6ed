"""What every bench script needs: fresh keys, settings with them, and a scratch database (a
SQLite file in a temporary folder, or a PostgreSQL database created for the run and dropped
after it).

The scripts are run by path (``python bench/x.py``), so Python puts ``bench/`` first on
``sys.path`` and they import this as ``_setup``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.datastructures import Secret

from keerpunt.platform.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "KEERPUNT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def fresh_keys() -> dict[str, str]:
    """New secrets for one run, as the environment of a server process would hold them."""
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    return {
        "KEERPUNT_SECRET_KEY": secrets.token_urlsafe(40),
        "KEERPUNT_MASTER_KEYS": f"b1:{key}",
        "KEERPUNT_BSN_INDEX_KEY": secrets.token_urlsafe(40),
    }


def settings(url: str, keys: Mapping[str, str] | None = None, **more: Any) -> Settings:
    """Settings for ``url`` with ``keys`` (fresh ones if not given); ``more``: other fields."""
    keys = keys or fresh_keys()
    return Settings(
        database_url=url,
        secret_key=Secret(keys["KEERPUNT_SECRET_KEY"]),
        master_keys=Secret(keys["KEERPUNT_MASTER_KEYS"]),
        bsn_index_key=Secret(keys["KEERPUNT_BSN_INDEX_KEY"]),
        **more,
    )


def pg(url: str) -> str:
    """A ``postgresql://`` address for the async driver."""
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def _admin_sql(sql: str) -> None:
    engine = create_async_engine(pg(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@contextmanager
def scratch_database(backend: str, tmp: str) -> Iterator[str]:
    """The address of an empty database for one run: ``sqlite`` a new file in ``tmp``,
    ``postgresql`` a new database at ``KEERPUNT_TEST_POSTGRES_URL``, dropped afterwards."""
    name = f"keerpunt_bench_{uuid.uuid4().hex[:12]}"
    if backend != "postgresql":
        yield f"sqlite+aiosqlite:///{tmp}/{name}.db"
        return
    asyncio.run(_admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield pg(PG_ADMIN_URL).rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
