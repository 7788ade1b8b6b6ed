"""The ``keerpunt`` command: serve, db upgrade, demo load, audit verify, keys rotate."""

from __future__ import annotations

import asyncio
import sys

import click

from keerpunt.platform.settings import ConfigurationError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """Keerpunt: the shared table of a youth-care triage team."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the web application."""
    import uvicorn

    from keerpunt.platform.app import create_app

    settings = _settings()
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        ws="websockets-sansio",
        proxy_headers=settings.behind_tls,
    )


@main.group()
def db() -> None:
    """Database commands."""


@db.command()
def upgrade() -> None:
    """Migrate the database to the newest schema."""
    from keerpunt.platform.migrate import upgrade as do_upgrade

    do_upgrade(_settings().database_url)
    click.echo("Database is up to date.")


@main.group()
def demo() -> None:
    """Demo data (demo mode only)."""


@demo.command("load")
def demo_load() -> None:
    """Load the demo organisations, people and cases (twice is harmless)."""
    from keerpunt.platform.demo import load, who_is_who
    from keerpunt.platform.runtime import Runtime

    settings = _settings()
    if not settings.demo_mode:
        raise click.ClickException("Demo data is only loaded with KEERPUNT_DEMO=1.")

    async def run() -> tuple[bool, list[str]]:
        rt = Runtime.build(settings, pool=False)
        try:
            return await load(rt), await who_is_who(rt)
        finally:
            await rt.engine.dispose()

    loaded, people = asyncio.run(run())
    click.echo("Demo data loaded." if loaded else "Demo data was already there; nothing changed.")
    click.echo(
        "How to log in: open http://127.0.0.1:8000, click 'Demo: kies een persoon' and pick\n"
        "one of these people (no password in demo mode):"
    )
    for line in people:
        click.echo(line)


@main.group()
def audit() -> None:
    """Audit log commands."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the audit chain; exit 1 and name the rows if it was tampered with."""
    from keerpunt.platform import audit as audit_log
    from keerpunt.platform.runtime import Runtime

    async def run() -> list[audit_log.AuditProblem]:
        rt = Runtime.build(_settings(), pool=False)
        try:
            async with rt.sessionmaker() as session:
                return await audit_log.verify(session)
        finally:
            await rt.engine.dispose()

    problems = asyncio.run(run())
    if not problems:
        click.echo("Audit log intact.")
        return
    for p in problems:
        click.echo(f"row {p.seq}: {p.reason}", err=True)
    sys.exit(1)


@main.group()
def keys() -> None:
    """Master key commands."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-wrap every case key under the first (current) master key."""
    from keerpunt.platform import audit as audit_log
    from keerpunt.platform.runtime import Runtime

    async def run() -> int:
        rt = Runtime.build(_settings(), pool=False)
        try:
            async with rt.sessionmaker() as session, session.begin():
                n = await rt.vault.rotate(session)
                await audit_log.record(session, None, "keys.rotated", detail=f"rewrapped={n}")
                return n
        finally:
            await rt.engine.dispose()

    click.echo(f"{asyncio.run(run())} case keys re-wrapped.")
