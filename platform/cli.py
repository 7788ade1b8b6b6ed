"""The ``keerpunt`` command: serve, db upgrade, demo load, audit verify, keys rotate and
encrypt-plain, retention run, consent export and daily, settle, import."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TextIO

import click
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform.settings import ConfigurationError, Settings

if TYPE_CHECKING:
    from keerpunt.consent.retention import CaseActivity


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


@main.command()
@click.argument("quarter")
@click.option("--as", "email", required=True, help="E-mail of a finance user of the penvoerder.")
@click.option(
    "--statement",
    "statement_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the run's statement (CSV) to this file.",
)
@click.option(
    "--pdf-dir",
    "pdf_dir",
    type=click.Path(file_okay=False, writable=True),
    help="Also write every provider's statement as PDF into this directory.",
)
def settle(quarter: str, email: str, statement_path: str | None, pdf_dir: str | None) -> None:
    """Close QUARTER (e.g. 2026Q3) into an immutable settlement run; running it again on a
    closed quarter changes nothing and gives the same statement. Progress goes to stderr."""
    import datetime as dt
    from pathlib import Path

    from babel.numbers import format_decimal

    from keerpunt.platform.errors import DomainError
    from keerpunt.platform.i18n import AMSTERDAM, gettext
    from keerpunt.platform.runtime import Runtime
    from keerpunt.settlement.service import (
        PHASE_TEXT,
        Closer,
        RunSummary,
        cli_principal,
        count_text,
        parse_quarter,
        run_statement,
        statement_pdfs,
    )

    def progress(phase: str, done: int, total: int) -> None:
        counts = count_text(phase, done, total, lambda n: format_decimal(n, locale="nl"))
        click.echo(f"{gettext(PHASE_TEXT.get(phase, phase))} {counts}".rstrip(), err=True)

    async def run() -> tuple[RunSummary, bytes, list[tuple[str, bytes]]]:
        rt = Runtime.build(_settings(), pool=False)
        try:
            today = dt.datetime.now(AMSTERDAM).date()
            who = await cli_principal(rt, email)
            chosen = parse_quarter(quarter)
            # The button's own way: open screens show this closing as it runs.
            summary = await Closer(rt, progress=progress).close_and_wait(who, chosen, today)
            pdfs: list[tuple[str, bytes]] = []
            async with rt.unit_of_work(who) as uow:
                data = await run_statement(uow, chosen)
                if pdf_dir:
                    pdfs = await statement_pdfs(uow, chosen)
            return summary, data, pdfs
        finally:
            await rt.engine.dispose()

    try:
        summary, data, pdfs = asyncio.run(run())
    except DomainError as exc:
        raise click.ClickException(gettext(exc.message)) from None
    click.echo(
        f"{summary.quarter}: {'closed' if summary.created else 'already closed'}; "
        f"{summary.line_count} lines, {summary.rejected_count} rejected, "
        f"total {summary.total_cents} cents; sha256 {summary.digest}"
    )
    if statement_path:
        with open(statement_path, "wb") as fh:
            fh.write(data)
    if pdf_dir:
        folder = Path(pdf_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name, pdf in pdfs:
            (folder / name).write_bytes(pdf)
        click.echo(f"{len(pdfs)} PDF statements written to {folder}", err=True)


@main.group("import")
def import_() -> None:
    """Import contracts, allocations or deliveries from a CSV or XLSX file (all or nothing)."""


def _import(kind: str, path: str, email: str, lang: str | None) -> None:
    from keerpunt.platform import i18n
    from keerpunt.platform.errors import DomainError
    from keerpunt.platform.runtime import Runtime
    from keerpunt.settlement.imports import read_as_line
    from keerpunt.settlement.service import (
        ImportKind,
        ImportRejected,
        ImportResult,
        error_lines,
        import_as,
    )

    settings = _settings()
    i18n.current_locale.set(lang or settings.default_locale)
    which = ImportKind(kind)
    with open(path, "rb") as fh:
        data = fh.read()

    async def run() -> ImportResult:
        rt = Runtime.build(settings, pool=False)
        try:
            return await import_as(rt, email, which, data, path)
        finally:
            await rt.engine.dispose()

    try:
        result = asyncio.run(run())
    except ImportRejected as exc:
        for line in error_lines(which, exc.errors):
            click.echo(line, err=True)
        if exc.encoding is not None and read_as_line(exc.encoding):
            click.echo(read_as_line(exc.encoding), err=True)
        raise click.ClickException(i18n.gettext(exc.message)) from None
    except DomainError as exc:
        raise click.ClickException(i18n.gettext(exc.message)) from None
    click.echo(f"{result.count} {kind} imported from {path} (sha256 {result.sha256}).")
    if read_as_line(result.encoding):
        click.echo(read_as_line(result.encoding))


_FILE = click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
_AS = click.option("--as", "email", required=True, help="E-mail of the user who imports.")
_LANG = click.option(
    "--lang", type=click.Choice(["nl", "en"]), help="Language of the error report."
)


@import_.command("contracts")
@_FILE
@_AS
@_LANG
def import_contracts(path: str, email: str, lang: str | None) -> None:
    """Contract tariffs (finance of the penvoerder)."""
    _import("contracts", path, email, lang)


@import_.command("allocations")
@_FILE
@_AS
@_LANG
def import_allocations(path: str, email: str, lang: str | None) -> None:
    """Allocations, toewijzingen (finance of the penvoerder)."""
    _import("allocations", path, email, lang)


@import_.command("deliveries")
@_FILE
@_AS
@_LANG
def import_deliveries(path: str, email: str, lang: str | None) -> None:
    """Delivered care (finance of the penvoerder, or a provider for its own care)."""
    _import("deliveries", path, email, lang)


def _admin(work: Callable[[AsyncSession], Awaitable[str]]) -> None:
    from keerpunt.platform.admin import AdminError
    from keerpunt.platform.runtime import Runtime

    async def run() -> str:
        rt = Runtime.build(_settings(), pool=False)
        try:
            async with rt.sessionmaker() as session, session.begin():
                return await work(session)
        finally:
            await rt.engine.dispose()

    try:
        click.echo(asyncio.run(run()))
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def org() -> None:
    """Organisations (providers, municipalities, others)."""


@org.command("add")
@click.option("--name", required=True)
@click.option("--kind", required=True, type=click.Choice(["provider", "municipality", "other"]))
@click.option("--agb", "agb_code", help="AGB code (providers)")
@click.option("--cbs", "cbs_code", help="CBS code (municipalities)")
@click.option("--penvoerder", is_flag=True, help="This provider is the penvoerder.")
@click.option("--region")
def org_add(
    name: str,
    kind: str,
    agb_code: str | None,
    cbs_code: str | None,
    penvoerder: bool,
    region: str | None,
) -> None:
    """Add an organisation."""
    from keerpunt.platform.admin import add_organisation

    async def work(db: AsyncSession) -> str:
        o = await add_organisation(
            db,
            name=name,
            kind=kind,
            agb_code=agb_code,
            cbs_code=cbs_code,
            penvoerder=penvoerder,
            region=region,
        )
        return f"Organisation {o.name} added (id {o.id})."

    _admin(work)


@org.command("oidc")
@click.option("--name", "organisation", required=True)
@click.option("--issuer", required=True, help="https://… of the organisation's login")
@click.option("--client-id", required=True)
def org_oidc(organisation: str, issuer: str, client_id: str) -> None:
    """Let an organisation's staff log in through its OpenID Connect provider."""
    from keerpunt.platform.admin import set_oidc

    async def work(db: AsyncSession) -> str:
        org_id = await set_oidc(db, organisation=organisation, issuer=issuer, client_id=client_id)
        return (
            f"Login for {organisation} set. Put its client secret in KEERPUNT_OIDC_SECRET_{org_id}."
        )

    _admin(work)


@main.group()
def user() -> None:
    """Staff accounts (they log in through their organisation)."""


_ROLES = click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(
        ["registrar", "coordinator", "triage_member", "finance", "allocation_manager", "funder"]
    ),
)


@user.command("add")
@click.option("--org", "organisation", required=True)
@click.option("--name", required=True)
@click.option("--email", required=True, help="as the organisation's login reports it")
@_ROLES
@click.option("--discipline")
def user_add(
    organisation: str, name: str, email: str, roles: tuple[str, ...], discipline: str | None
) -> None:
    """Add a professional who may log in."""
    from keerpunt.platform.admin import add_user

    async def work(db: AsyncSession) -> str:
        u = await add_user(
            db,
            organisation=organisation,
            name=name,
            email=email,
            roles=list(roles),
            discipline=discipline,
        )
        return f"User {u.display_name} added (id {u.id})."

    _admin(work)


@user.command("list")
@click.option("--org", "organisation", help="only this organisation's staff")
def user_list(organisation: str | None) -> None:
    """Who may log in: name, e-mail, organisation, roles, and who is deactivated."""
    from keerpunt.platform.admin import list_users

    async def work(db: AsyncSession) -> str:
        lines = [
            f"{u.name}\t{u.email}\t{u.organisation}\t{','.join(u.roles)}"
            f"\t{u.discipline or '-'}\t{'active' if u.active else 'deactivated'}"
            for u in await list_users(db, organisation)
        ]
        return "\n".join(lines) if lines else "No staff accounts."

    _admin(work)


@user.command("deactivate")
@click.option("--email", required=True)
def user_deactivate(email: str) -> None:
    """Someone leaves: no more logging in, and every login they have ends now (open meeting
    screens close within half a minute). What they wrote stays, under their name."""
    from keerpunt.platform.admin import deactivate_user
    from keerpunt.platform.i18n import AMSTERDAM
    from keerpunt.triage.service import open_duties

    async def work(db: AsyncSession) -> str:
        done = await deactivate_user(db, email=email)
        lines = [done.message]
        if duties := await open_duties(db, done.user_id):
            lines.append("Still to hand over (tell the coordinator):")
        for d in duties:
            if d.when is None:
                lines.append(f"  procesregisseur of case {d.pseudonym}")
            else:
                day = d.when.astimezone(AMSTERDAM).strftime("%Y-%m-%d %H:%M")
                lines.append(f"  invited to the meeting of case {d.pseudonym} on {day}")
        return "\n".join(lines)

    _admin(work)


@user.command("activate")
@click.option("--email", required=True)
def user_activate(email: str) -> None:
    """Let a deactivated person log in again."""
    from keerpunt.platform.admin import activate_user

    async def work(db: AsyncSession) -> str:
        return (await activate_user(db, email=email)).message

    _admin(work)


@user.command("roles")
@click.option("--email", required=True)
@_ROLES
@click.option("--discipline", help="unchanged when left out")
def user_roles(email: str, roles: tuple[str, ...], discipline: str | None) -> None:
    """A new job: set the person's roles (all of them); their logins end, so the next one
    works with the new rights."""
    from keerpunt.platform.admin import set_roles

    async def work(db: AsyncSession) -> str:
        return (await set_roles(db, email=email, roles=roles, discipline=discipline)).message

    _admin(work)


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


@keys.command("encrypt-plain")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Steps per transaction.",
)
def keys_encrypt_plain(batch_size: int) -> None:
    """Encrypt the "spoke with" text of dispute steps stored in plain text by older versions
    with the case keys, and blank the plain column (the app also does this itself after it
    starts). Safe to run again: it reports 0 when nothing is left."""
    from keerpunt.platform.runtime import Runtime
    from keerpunt.triage import plain_text

    async def run() -> plain_text.PlainTextMoved:
        rt = Runtime.build(_settings(), pool=False)
        try:
            return await plain_text.encrypt_plain_spoke_with(rt, batch_size=batch_size)
        finally:
            await rt.engine.dispose()

    done = asyncio.run(run())
    click.echo(
        f"{done.moved} dispute step(s) moved out of plain text: {done.encrypted} encrypted, "
        f"{done.blanked} blanked (already encrypted, or the case was shredded)."
    )


@main.group()
def retention() -> None:
    """Retention: destroy personal data on schedule (bewaartermijnen)."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Only report what would happen; change nothing.")
@click.option(
    "--lang",
    type=click.Choice(["nl", "en"]),
    help="Language of the report (default: KEERPUNT_LOCALE, Dutch).",
)
def retention_run(dry_run: bool, lang: str | None) -> None:
    """Shred the personal data of cases past their retention and of all cases after the pilot;
    keep non-personal KPI data, and delete that too when its term is over."""
    from keerpunt.consent import retention as rules
    from keerpunt.platform import i18n
    from keerpunt.platform.runtime import Runtime
    from keerpunt.triage import realtime as _rooms  # noqa: F401 - the rooms shredding tells

    settings = _settings()
    policy = rules.RetentionPolicy.from_settings(settings)
    today = dt.datetime.now(i18n.AMSTERDAM).date()

    async def run() -> rules.RetentionReport:
        rt = Runtime.build(settings, pool=False)
        try:
            return await rules.run(
                rt, policy, today=today, dry_run=dry_run, activity=_triage_activity
            )
        finally:
            await rt.engine.dispose()

    report = asyncio.run(run())
    i18n.current_locale.set(lang or settings.default_locale)
    for line in rules.report_lines(report, policy):
        click.echo(line)


@retention.command("shred")
@click.argument("case_id", type=int)
@click.option("--lang", type=click.Choice(["nl", "en"]), help="Language of the report.")
@click.confirmation_option(
    prompt="Destroy this case's personal data now, for good? It cannot be undone."
)
def retention_shred(case_id: int, lang: str | None) -> None:
    """Destroy one case's personal data now, at the family's request (vernietigen op verzoek)."""
    from keerpunt.consent import retention as rules
    from keerpunt.platform import i18n
    from keerpunt.platform.runtime import Runtime
    from keerpunt.triage import realtime as _rooms  # noqa: F401 - the rooms shredding tells

    settings = _settings()
    policy = rules.RetentionPolicy.from_settings(settings)
    today = dt.datetime.now(i18n.AMSTERDAM).date()

    async def run() -> rules.ShredLine | None:
        rt = Runtime.build(settings, pool=False)
        try:
            return await rules.shred_on_request(
                rt, policy, case_id, today=today, activity=_triage_activity
            )
        finally:
            await rt.engine.dispose()

    line = asyncio.run(run())
    if line is None:
        raise click.ClickException(f"Case {case_id} does not exist or was already shredded.")
    i18n.current_locale.set(lang or settings.default_locale)
    click.echo(rules.shred_line_text(line, policy))


async def _triage_activity(db: AsyncSession, case_id: int) -> CaseActivity:
    """What the KPI record keeps of a case's triage: its fixed arrangement (non-personal by
    design), read through triage's public service (consent itself imports no other domain)."""
    from keerpunt.consent.retention import ActivityLine, CaseActivity
    from keerpunt.triage import service as triage

    lines = [
        ln
        for ln in await triage.fixed_arrangement_lines(db, dt.date.min, dt.date.max)
        if ln.case_id == case_id
    ]
    return CaseActivity(
        sessions=len({ln.session_id for ln in lines}),
        lines=tuple(
            ActivityLine(
                ln.provider_id,
                ln.help_form,
                ln.product_code,
                ln.minutes_per_week,
                ln.start_date,
                ln.end_date,
            )
            for ln in lines
        ),
    )


@main.group()
def consent() -> None:
    """Consent commands."""


@consent.command("export-fhir")
@click.argument("case_id", type=int)
@click.option("--output", type=click.File("w", encoding="utf-8"), default="-", show_default=True)
def consent_export_fhir(case_id: int, output: TextIO) -> None:
    """Write a case's consents as a FHIR R4 Bundle of Consent resources (pseudonymous)."""
    import json

    from keerpunt.consent import fhir
    from keerpunt.platform import audit as audit_log
    from keerpunt.platform.models import Case
    from keerpunt.platform.principal import SYSTEM
    from keerpunt.platform.runtime import Runtime

    settings = _settings()

    async def run() -> dict[str, object] | None:
        rt = Runtime.build(settings, pool=False)
        try:
            async with rt.unit_of_work(SYSTEM) as uow:
                case = await uow.db.get(Case, case_id)
                if case is None:
                    return None
                bundle = await fhir.consent_bundle(uow, case, base_url=settings.base_url)
                await audit_log.record(
                    uow.db,
                    None,
                    "consent.exported",
                    case_id=case.id,
                    purpose="consent_export",
                    detail=f"format=fhir-r4 records={bundle['total']} via=cli",
                )
                return bundle
        finally:
            await rt.engine.dispose()

    bundle = asyncio.run(run())
    if bundle is None:
        raise click.ClickException(f"There is no case {case_id}.")
    output.write(json.dumps(bundle, ensure_ascii=False, indent=2) + "\n")


@consent.command("daily")
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=31,
    show_default=True,
    help="How many days back to look (the days nobody ran it).",
)
def consent_daily(days: int) -> None:
    """Tell the session screens of every case whose consent the calendar changed: a 12th or
    16th birthday, or a consent past its end date (for cron; the app also does it itself
    shortly after midnight). A case told since that midnight is not told again. What this saves
    reaches the open screens of a running app through its relay within a second."""
    from keerpunt.consent import daily
    from keerpunt.platform import i18n
    from keerpunt.platform.runtime import Runtime
    from keerpunt.triage import realtime as _rooms  # noqa: F401 - registers the session rooms

    settings = _settings()
    today = i18n.today()

    async def run() -> list[int]:
        rt = Runtime.build(settings, pool=False)
        try:
            return await daily.tell_screens(rt, day=today, after=today - dt.timedelta(days=days))
        finally:
            await rt.engine.dispose()

    told = asyncio.run(run())
    click.echo(f"Screens of {len(told)} case(s) told: {', '.join(map(str, told)) or '-'}.")
