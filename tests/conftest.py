"""Test fixtures: every database test runs on SQLite and on PostgreSQL.

Each pytest run creates its own PostgreSQL database (and drops it at the end); a test that
touches the database gets a clean one. PostgreSQL being unreachable fails the run: the
production database is not optional.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.datastructures import Secret

from keerpunt.platform.app import create_app
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.schema import metadata
from keerpunt.platform.settings import Settings

# Property tests check rules, not speed: no per-example deadline (a loaded CI machine would
# make them flaky), and slow data generation is not a failure.
hypothesis_settings.register_profile(
    "keerpunt", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("keerpunt")

PG_ADMIN_URL = os.environ.get(
    "KEERPUNT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", "postgresql"]


def _async_pg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _create_schema(url: str) -> None:
    async def run() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str]:
    name = f"keerpunt_test_{uuid.uuid4().hex[:12]}"
    admin = _async_pg(PG_ADMIN_URL)

    async def admin_sql(sql: str) -> None:
        engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    try:
        asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.exit(
            f"PostgreSQL is unreachable at {PG_ADMIN_URL} ({type(exc).__name__}: {exc}). "
            "Keerpunt's tests run on SQLite and PostgreSQL; start PostgreSQL or set "
            "KEERPUNT_TEST_POSTGRES_URL.",
            returncode=1,
        )
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    _create_schema(url)
    yield url
    asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def _sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("db") / "keerpunt-test.db"
    url = f"sqlite+aiosqlite:///{path}"
    _create_schema(url)
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated, empty database on each backend; emptied again after the test."""
    backend = "pg" if request.param == "postgresql" else "sqlite"
    url: str = request.getfixturevalue(f"_{backend}_database")
    yield url

    async def wipe() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(delete(table))
        await engine.dispose()

    asyncio.run(wipe())


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=Secret(secrets.token_urlsafe(40)),
        master_keys=Secret(f"t1:{_key()}"),
        bsn_index_key=Secret(secrets.token_urlsafe(40)),
        demo_mode=False,
        base_url="http://testserver",
    )


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime.build(settings, pool=False)
    yield rt
    await rt.engine.dispose()


@pytest.fixture
async def app(settings: Settings, runtime: Runtime) -> Any:
    return create_app(settings, runtime=runtime)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """A real uvicorn server in a thread (real HTTP, real websockets)."""

    def __init__(self, settings: Settings) -> None:
        self.port = _free_port()
        self.settings = settings
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        app = create_app(self.settings)
        config = uvicorn.Config(
            app,
            timeout_graceful_shutdown=2,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.02)

    def restart(self) -> None:
        """Stop and start again on the same port (a deploy or a crash), with a fresh app."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(
        Settings(**{**settings.__dict__, "base_url": "http://127.0.0.1"})  # type: ignore[arg-type]
    )
    server.start()
    yield server
    server.stop()


def pytest_configure(config: pytest.Config) -> None:
    Path(config.rootpath, "var").mkdir(exist_ok=True)
