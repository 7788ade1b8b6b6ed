"""Retention (bewaren en vernietigen, seed 003 §5.4): personal data no longer than needed.

A case's personal data is destroyed by crypto-shredding when the case has been closed for the
retention period, or when the pilot has ended: its data key is deleted and every ``*_enc``
column of its rows is emptied (see :meth:`keerpunt.platform.vault.Vault.shred`). What stays is
a non-personal KPI record for the monitor (age band, months of the phases, the arrangement's
providers, forms and durations); it is deleted in turn after two years.

The rules are pure functions; :func:`run` applies them, one transaction per case, and is safe
to run twice at once: a case is claimed by an ``UPDATE … WHERE shredded_at IS NULL``, so the
second run finds nothing left to do.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keerpunt.consent.models import KpiArrangementLine, KpiRecord
from keerpunt.platform import audit
from keerpunt.platform.db import utcnow
from keerpunt.platform.i18n import AMSTERDAM, N_, gettext
from keerpunt.platform.models import Case, CaseMember, Invitation, LoginSession, User
from keerpunt.platform.principal import SYSTEM
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.settings import Settings
from keerpunt.platform.uow import CONSENT_CHANGED, UnitOfWork
from keerpunt.platform.vault import Vault, case_rows

__all__ = [
    "ActivityLine",
    "ActivitySource",
    "CaseActivity",
    "RetentionPolicy",
    "RetentionReport",
    "ShredReason",
    "kpi_expired",
    "kpi_keep_until",
    "month_of",
    "report_lines",
    "run",
    "shred_due",
    "shred_line_text",
    "shred_on_request",
]


class ShredReason(enum.StrEnum):
    CASE_CLOSED = "case_closed"  # afgesloten en de bewaartermijn is voorbij
    PILOT_ENDED = "pilot_ended"  # de pilot is voorbij
    REQUESTED = "requested"  # op verzoek van de jeugdige of ouders (recht op vernietiging)


REASON_LABELS = {
    ShredReason.CASE_CLOSED: N_(
        "afgesloten op %(date)s; de bewaartermijn van %(days)s dagen is voorbij"
    ),
    ShredReason.PILOT_ENDED: N_("de pilot is geëindigd op %(date)s"),
    ShredReason.REQUESTED: N_("het gezin heeft op %(date)s gevraagd de gegevens te vernietigen"),
}


@dataclass(frozen=True)
class RetentionPolicy:
    days_after_close: int
    pilot_end: dt.date | None  # the pilot's last day; None while it has no end date
    kpi_months: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            settings.retention_days_after_close, settings.pilot_end, settings.kpi_retention_months
        )


# -- the rules (pure) ---------------------------------------------------------------------------


def shred_due(
    *, closed_on: dt.date | None, shredded: bool, today: dt.date, policy: RetentionPolicy
) -> ShredReason | None:
    """Why a case's personal data must be destroyed today, or None to keep it.

    Closed cases keep it ``days_after_close`` days (the day of closing is day 0); from the day
    after the pilot's last day no case keeps it, open or closed.
    """
    if shredded:
        return None
    if closed_on is not None and today >= closed_on + dt.timedelta(days=policy.days_after_close):
        return ShredReason.CASE_CLOSED
    if policy.pilot_end is not None and today > policy.pilot_end:
        return ShredReason.PILOT_ENDED
    return None


def kpi_keep_until(shredded_on: dt.date, policy: RetentionPolicy) -> dt.date:
    """The last day a KPI record is kept: ``kpi_months`` later, to the end of that month (so
    the record holds no exact date, and is kept at least the full term)."""
    months = shredded_on.year * 12 + shredded_on.month - 1 + policy.kpi_months
    year, month = divmod(months, 12)
    return dt.date(year, month + 1, calendar.monthrange(year, month + 1)[1])


def kpi_expired(keep_until: dt.date, today: dt.date) -> bool:
    return today > keep_until


def month_of(day: dt.date | None) -> dt.date | None:
    """A date coarsened to its month: KPI records never hold a day that could single out a case."""
    return None if day is None else day.replace(day=1)


# -- what triage knows about a case, non-personal ------------------------------------------------


@dataclass(frozen=True)
class ActivityLine:
    provider_id: int
    help_form: str
    product_code: str
    minutes_per_week: int
    start_date: dt.date
    end_date: dt.date


@dataclass(frozen=True)
class CaseActivity:
    sessions: int = 0
    lines: tuple[ActivityLine, ...] = ()


# Consent imports no other domain: the edge (the CLI) passes in how to read a case's activity.
ActivitySource = Callable[[AsyncSession, int], Awaitable[CaseActivity]]


async def _no_activity(_db: AsyncSession, _case_id: int) -> CaseActivity:
    return CaseActivity()


# -- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShredLine:
    case_id: int
    pseudonym: str
    reason: ShredReason
    since: dt.date  # the closing day, or the pilot's last day


@dataclass(frozen=True)
class KpiExpiry:
    kpi_id: str
    keep_until: dt.date


@dataclass(frozen=True)
class RetentionReport:
    dry_run: bool
    today: dt.date
    cases: tuple[ShredLine, ...]
    kpis: tuple[KpiExpiry, ...]
    # Closed (status) without a closing moment: their term cannot start; the operator is told.
    no_end_date: tuple[tuple[int, str], ...] = ()


def _local_day(moment: dt.datetime | None) -> dt.date | None:
    return None if moment is None else moment.astimezone(AMSTERDAM).date()


def _shred_line(
    case_id: int,
    pseudonym: str,
    reason: ShredReason,
    closed_on: dt.date | None,
    policy: RetentionPolicy,
) -> ShredLine:
    since = closed_on if reason is ShredReason.CASE_CLOSED else policy.pilot_end
    assert since is not None  # shred_due gives CASE_CLOSED only with a closing day
    return ShredLine(case_id, pseudonym, reason, since)


async def run(
    rt: Runtime,
    policy: RetentionPolicy,
    *,
    today: dt.date,
    dry_run: bool = False,
    activity: ActivitySource = _no_activity,
) -> RetentionReport:
    """Shred every case that is due and delete every expired KPI record (``keerpunt retention
    run``); with ``dry_run`` nothing changes and the report says what would happen."""
    sessionmaker = rt.sessionmaker
    async with sessionmaker() as db:
        rows = (
            await db.execute(
                select(Case.id, Case.pseudonym, Case.closed_at, Case.status).where(
                    Case.shredded_at.is_(None)
                )
            )
        ).all()
    due: list[ShredLine] = []
    no_end_date = tuple(
        (case_id, pseudonym)
        for case_id, pseudonym, closed_at, status in rows
        if status == "closed" and closed_at is None
    )
    for case_id, pseudonym, closed_at, _status in rows:
        closed_on = _local_day(closed_at)
        reason = shred_due(closed_on=closed_on, shredded=False, today=today, policy=policy)
        if reason is None:
            continue
        due.append(_shred_line(case_id, pseudonym, reason, closed_on, policy))
    done: list[ShredLine] = []
    for line in due:
        if dry_run:
            done.append(line)
            continue
        async with sessionmaker() as db, db.begin():
            shredded = await _shred_case(db, rt.vault, line, policy, today, activity)
        if shredded is not None:
            done.append(shredded)
    kpis = await _expire_kpis(sessionmaker, today, dry_run)
    if not dry_run and done:
        await _checkpoint(rt.engine)
    return RetentionReport(dry_run, today, tuple(done), kpis, no_end_date)


async def _shred_case(
    db: AsyncSession,
    vault: Vault,
    line: ShredLine,
    policy: RetentionPolicy,
    today: dt.date,
    activity: ActivitySource,
    *,
    requested: bool = False,
) -> ShredLine | None:
    await _wipe_freed_space(db)
    # Lock the case and decide again on what is stored now: a concurrent second run waits for
    # the lock and then finds it shredded (PostgreSQL row lock; SQLite's BEGIN IMMEDIATE
    # serialises writers anyway); a case reopened meanwhile is kept.
    case = await db.scalar(select(Case).where(Case.id == line.case_id).with_for_update())
    if case is None:
        return None
    reason = shred_due(
        closed_on=_local_day(case.closed_at),
        shredded=case.shredded_at is not None,
        today=today,
        policy=policy,
    )
    if requested and case.shredded_at is None:
        line = ShredLine(case.id, case.pseudonym, ShredReason.REQUESTED, today)
    elif reason is None:
        return None
    else:
        line = _shred_line(case.id, case.pseudonym, reason, _local_day(case.closed_at), policy)
    facts = await activity(db, case.id)
    referrer_org = await db.scalar(
        select(User.organisation_id).where(User.id == case.registered_by_id)
    )
    kpi = KpiRecord(
        id=secrets.token_hex(16),
        age_band=case.age_band,
        municipality_id=case.municipality_id,
        referrer_org_id=referrer_org,
        legal_basis=case.legal_basis,
        final_status=case.status,
        registered_month=month_of(_local_day(case.registered_at)),
        closed_month=month_of(_local_day(case.closed_at)),
        arrangement_start_month=month_of(min((ln.start_date for ln in facts.lines), default=None)),
        sessions=facts.sessions,
        reason=line.reason.value,
        keep_until=kpi_keep_until(today, policy),
    )
    db.add(kpi)
    await db.flush()
    for ln in facts.lines:
        db.add(
            KpiArrangementLine(
                kpi_id=kpi.id,
                provider_id=ln.provider_id,
                help_form=ln.help_form,
                product_code=ln.product_code,
                minutes_per_week=ln.minutes_per_week,
                days=(ln.end_date - ln.start_date).days + 1,
            )
        )
    await vault.shred(db, case.id)
    await _blank_legacy_plain_text(db, case.id)
    # Open screens of the case must not keep the names (the shredding wrote past the ORM).
    await UnitOfWork(db=db, vault=vault, who=SYSTEM).emit_to_case(case.id, CONSENT_CHANGED)
    # Nobody of the family logs in to a case that no longer holds their data.
    members = select(CaseMember.id).where(CaseMember.case_id == case.id)
    now = utcnow()
    await db.execute(
        update(Invitation)
        .where(Invitation.member_id.in_(members), Invitation.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await db.execute(
        update(LoginSession)
        .where(LoginSession.member_id.in_(members), LoginSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    # No KPI id here: the audit row names the case, and the KPI record must not lead back to it.
    await audit.record(
        db,
        None,
        "case.shredded",
        case_id=case.id,
        purpose="retention",
        detail=f"reason={line.reason}",
    )
    return line


# Free text of a case stored in plain columns before it was encrypted (``*_enc``); new rows
# no longer write them. Shredding blanks them too (table name -> columns).
_LEGACY_PLAIN_TEXT = {"allocation_dispute_step": ("spoke_with",)}


async def _blank_legacy_plain_text(db: AsyncSession, case_id: int) -> None:
    from keerpunt.platform.schema import metadata  # every domain's tables, as the vault does

    for name, columns in _LEGACY_PLAIN_TEXT.items():
        table = metadata.tables[name]
        where = case_rows(table, case_id)
        assert where is not None  # the table leads to the case by its foreign keys
        await db.execute(update(table).where(where).values(dict.fromkeys(columns, "")))


async def shred_on_request(
    rt: Runtime,
    policy: RetentionPolicy,
    case_id: int,
    *,
    today: dt.date,
    activity: ActivitySource = _no_activity,
) -> ShredLine | None:
    """Destroy one case's personal data now, at the family's request (vernietigen op verzoek),
    the same way as on schedule; None when it was already shredded or does not exist."""
    async with rt.sessionmaker() as db, db.begin():
        pseudonym = await db.scalar(select(Case.pseudonym).where(Case.id == case_id))
        if pseudonym is None:
            return None
        placeholder = ShredLine(case_id, pseudonym, ShredReason.REQUESTED, today)
        line = await _shred_case(db, rt.vault, placeholder, policy, today, activity, requested=True)
    if line is not None:
        await _checkpoint(rt.engine)
    return line


async def _expire_kpis(
    sessionmaker: async_sessionmaker[AsyncSession], today: dt.date, dry_run: bool
) -> tuple[KpiExpiry, ...]:
    async with sessionmaker() as db, db.begin():
        if dry_run:
            rows = (
                await db.execute(
                    select(KpiRecord.id, KpiRecord.keep_until)
                    .where(KpiRecord.keep_until < today)
                    .order_by(KpiRecord.keep_until, KpiRecord.id)
                )
            ).all()
            return tuple(KpiExpiry(i, d) for i, d in rows)
        await _wipe_freed_space(db)
        expired = select(KpiRecord.id).where(KpiRecord.keep_until < today)
        await db.execute(delete(KpiArrangementLine).where(KpiArrangementLine.kpi_id.in_(expired)))
        rows = (
            await db.execute(
                delete(KpiRecord)
                .where(KpiRecord.keep_until < today)
                .returning(KpiRecord.id, KpiRecord.keep_until)
            )
        ).all()
        if rows:
            await audit.record(
                db, None, "kpi.expired", purpose="retention", detail=f"deleted={len(rows)}"
            )
        return tuple(
            sorted((KpiExpiry(i, d) for i, d in rows), key=lambda k: (k.keep_until, k.kpi_id))
        )


async def _wipe_freed_space(db: AsyncSession) -> None:
    """SQLite keeps deleted and overwritten bytes in free space until reused; secure_delete
    zeroes them at once, so a shredded value is not left in the file. (PostgreSQL: a dump
    holds only live rows; old row versions are unreadable without the deleted key.)"""
    if db.get_bind().dialect.name == "sqlite":
        await db.execute(text("PRAGMA secure_delete=ON"))


async def _checkpoint(engine: AsyncEngine) -> None:
    """SQLite in WAL mode: copy the log into the database file and empty it, so no old page
    with a shredded value stays in the -wal file. Outside any transaction, on the driver's
    connection (a checkpoint cannot run inside one)."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# -- the report -----------------------------------------------------------------------------------


def shred_line_text(c: ShredLine, policy: RetentionPolicy, *, dry_run: bool = False) -> str:
    """One shredded (or, in a dry run, to be shredded) case, and why."""
    why = gettext(REASON_LABELS[c.reason]) % {
        "date": c.since.isoformat(),
        "days": policy.days_after_close,
    }
    return gettext(
        N_("Casus %(id)s (%(pseudonym)s): persoonsgegevens gaan weg, want %(why)s.")
        if dry_run
        else N_("Casus %(id)s (%(pseudonym)s): persoonsgegevens vernietigd, want %(why)s.")
    ) % {"id": c.case_id, "pseudonym": c.pseudonym, "why": why}


def report_lines(report: RetentionReport, policy: RetentionPolicy) -> list[str]:
    """The report of a run, in the current language (Dutch unless English was asked for)."""
    lines = [
        gettext(
            N_("Bewaartermijnen op %(date)s: proefrun, er is niets veranderd.")
            if report.dry_run
            else N_("Bewaartermijnen op %(date)s: uitgevoerd.")
        )
        % {"date": report.today.isoformat()}
    ]
    if not report.cases:
        lines.append(gettext(N_("Geen casussen waarvan de persoonsgegevens weg moeten.")))
    lines.extend(shred_line_text(c, policy, dry_run=report.dry_run) for c in report.cases)
    for case_id, pseudonym in report.no_end_date:
        lines.append(
            gettext(
                N_(
                    "Let op: casus %(id)s (%(pseudonym)s) is afgesloten maar heeft geen "
                    "einddatum, dus de bewaartermijn kan niet ingaan."
                )
            )
            % {"id": case_id, "pseudonym": pseudonym}
        )
    if not report.kpis:
        lines.append(gettext(N_("Geen KPI-gegevens waarvan de bewaartermijn voorbij is.")))
    for k in report.kpis:
        lines.append(
            gettext(
                N_("KPI-gegevens %(id)s (bewaard tot en met %(date)s) worden verwijderd.")
                if report.dry_run
                else N_("KPI-gegevens %(id)s (bewaard tot en met %(date)s) verwijderd.")
            )
            % {"id": k.kpi_id, "date": k.keep_until.isoformat()}
        )
    return lines
