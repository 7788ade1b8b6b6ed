"""The quarterly run (kwartaalafsluiting) in the database: close a quarter into an immutable run,
and read a run's statement. Inside the caller's unit of work; never commits.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select

from keerpunt.platform import audit
from keerpunt.platform.errors import DomainError, NotFound
from keerpunt.platform.i18n import AMSTERDAM, N_
from keerpunt.platform.models import Organisation, User
from keerpunt.platform.principal import Principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_finance_access
from keerpunt.settlement.declaration import Direction, OutLine, settle
from keerpunt.settlement.jw323 import Sender, declaration_files
from keerpunt.settlement.models import SettlementRun, SettlementRunLine
from keerpunt.settlement.records import load_until
from keerpunt.settlement.rules import Quarter, parse_quarter
from keerpunt.settlement.statement import digest, statement_csv

__all__ = [
    "PHASE_CHECK",
    "PHASE_LOAD",
    "PHASE_WRITE",
    "HolderTotal",
    "LaterQuarterClosed",
    "Progress",
    "QuarterNotOver",
    "RejectedLine",
    "RunPage",
    "RunSummary",
    "cli_principal",
    "close_as",
    "close_quarter",
    "run_declarations",
    "run_page",
    "run_statement",
]


class QuarterNotOver(DomainError):
    status_code = 409
    message = N_("Dit kwartaal is nog niet voorbij. U kunt het afsluiten vanaf de dag erna.")


class LaterQuarterClosed(DomainError):
    status_code = 409
    message = N_(
        "Een later kwartaal is al afgesloten. Correcties komen in de afrekening van het "
        "volgende kwartaal."
    )


# The phases of closing, in order, for whoever shows progress: ``progress(phase, done, total)``
# is called at the start and end of each phase (and may be called per chunk within one).
PHASE_LOAD = "load"  # reading deliveries, allocations, tariffs and agreements
PHASE_CHECK = "check"  # checking every delivery line (done/total: lines)
PHASE_WRITE = "write"  # writing the run's lines (done/total: lines)
Progress = Callable[[str, int, int], None]


def _quiet(phase: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class RunSummary:
    quarter: str
    created: bool  # False: the quarter was already closed (e.g. two people pressed at once)
    line_count: int
    rejected_count: int
    total_cents: int
    digest: str


def _line(row: SettlementRunLine) -> OutLine:
    return OutLine(
        delivery_id=row.delivery_id,
        allocation_number=row.allocation_number,
        holder_id=row.holder_id,
        provider_id=row.provider_id,
        municipality_id=row.municipality_id,
        product_category=row.product_category,
        product_code=row.product_code,
        start=row.start_date,
        end=row.end_date,
        volume=row.volume,
        unit=row.unit,
        tariff_cents=row.tariff_cents,
        amount_cents=row.amount_cents,
        direction=Direction(row.direction),
        revision=row.revision,
    )


def _summary(run: SettlementRun, *, created: bool) -> RunSummary:
    return RunSummary(
        run.quarter, created, run.line_count, run.rejected_count, run.total_cents, run.digest
    )


async def _names(uow: UnitOfWork, lines: Iterable[OutLine]) -> dict[int, str]:
    lines = list(lines)
    return await _names_of(uow, {x.holder_id for x in lines} | {x.provider_id for x in lines})


async def _run_lines(uow: UnitOfWork, run_ids: Iterable[int]) -> list[OutLine]:
    rows = await uow.db.scalars(
        select(SettlementRunLine)
        .where(SettlementRunLine.run_id.in_(list(run_ids)))
        .order_by(SettlementRunLine.run_id, SettlementRunLine.seq)
    )
    return [_line(r) for r in rows]


async def close_quarter(
    uow: UnitOfWork, quarter: Quarter, today: dt.date, *, progress: Progress | None = None
) -> RunSummary:
    """Close a quarter into an immutable run: every delivery up to its last day is checked;
    what earlier runs declared and still stands is not declared again, changed lines are
    credited in full and declared anew. Closing a closed quarter returns that run, so two
    people pressing at once get one run. A quarter closes only after its last day and never
    before a later one. ``progress`` hears of each phase (see :data:`PHASE_LOAD`)."""
    report = progress or _quiet
    penvoerder = await check_finance_access(uow)
    if today <= quarter.end:
        raise QuarterNotOver()
    # One closing at a time: lock the penvoerder's row (SQLite's write lock does the same).
    await uow.db.execute(
        select(Organisation.id).where(Organisation.id == penvoerder.id).with_for_update()
    )
    runs = list(await uow.db.scalars(select(SettlementRun).order_by(SettlementRun.id)))
    for run in runs:
        if run.quarter == quarter.code:
            return _summary(run, created=False)
    if any(parse_quarter(r.quarter).start > quarter.start for r in runs):
        raise LaterQuarterClosed()
    report(PHASE_LOAD, 0, 0)
    previous = await _run_lines(uow, [r.id for r in runs])
    deliveries, allocations, contracts, agreements = await load_until(uow, quarter.end)
    report(PHASE_CHECK, 0, len(deliveries))
    result = settle(deliveries, allocations, contracts, agreements, previous)
    report(PHASE_CHECK, len(deliveries), len(deliveries))
    report(PHASE_WRITE, 0, len(result.lines))
    data = statement_csv(quarter.code, result.lines, await _names(uow, result.lines))
    run = SettlementRun(
        quarter=quarter.code,
        closed_by_id=uow.who.user_id,
        line_count=len(result.lines),
        rejected_count=len(result.rejected),
        total_cents=result.total_cents,
        digest=digest(data),
    )
    uow.db.add(run)
    await uow.db.flush()
    uow.db.add_all(
        SettlementRunLine(
            run_id=run.id,
            seq=seq,
            delivery_id=x.delivery_id,
            revision=x.revision,
            direction=x.direction.value,
            allocation_number=x.allocation_number,
            holder_id=x.holder_id,
            provider_id=x.provider_id,
            municipality_id=x.municipality_id,
            product_category=x.product_category,
            product_code=x.product_code,
            start_date=x.start,
            end_date=x.end,
            volume=x.volume,
            unit=x.unit,
            tariff_cents=x.tariff_cents,
            amount_cents=x.amount_cents,
        )
        for seq, x in enumerate(result.lines, 1)
    )
    await uow.db.flush()
    report(PHASE_WRITE, len(result.lines), len(result.lines))
    await audit.record(
        uow.db,
        uow.who,
        "settlement.run.close",
        purpose="settlement",
        detail=(
            f"run={run.id} quarter={quarter.code} lines={run.line_count} "
            f"rejected={run.rejected_count} total_cents={run.total_cents} digest={run.digest}"
        ),
    )
    return _summary(run, created=True)


async def run_statement(uow: UnitOfWork, quarter: Quarter, provider_id: int | None = None) -> bytes:
    """The statement of a closed quarter as CSV: all lines, or those one provider declared or
    delivered. Built only from the run's own lines, so it never changes."""
    await check_finance_access(uow)
    run = await uow.db.scalar(select(SettlementRun).where(SettlementRun.quarter == quarter.code))
    if run is None:
        raise NotFound()
    lines = await _run_lines(uow, [run.id])
    if provider_id is not None:
        lines = [x for x in lines if provider_id in (x.holder_id, x.provider_id)]
    return statement_csv(quarter.code, lines, await _names(uow, lines))


async def close_as(
    rt: Runtime,
    email: str,
    quarter_text: str,
    today: dt.date,
    *,
    progress: Progress | None = None,
) -> tuple[RunSummary, bytes]:
    """``keerpunt settle``: close a quarter in the name of a finance user (audited as them),
    then read its statement in a second transaction, after the run is committed."""
    who = await cli_principal(rt, email)
    quarter = parse_quarter(quarter_text)
    async with rt.unit_of_work(who) as uow:
        summary = await close_quarter(uow, quarter, today, progress=progress)
    async with rt.unit_of_work(who) as uow:
        return summary, await run_statement(uow, quarter)


async def cli_principal(rt: Runtime, email: str) -> Principal:
    """The active staff user with this e-mail, acting from the command line."""
    async with rt.sessionmaker() as db:
        user = await db.scalar(select(User).where(User.email == email, User.active))
    if user is None:
        raise NotFound()
    return staff_principal(user, session_id="cli")


@dataclass(frozen=True)
class RejectedLine:
    provider_name: str
    allocation_number: str
    product_code: str
    start: dt.date
    end: dt.date
    volume: int
    reason: str  # already in the viewer's language


@dataclass(frozen=True)
class HolderTotal:
    provider_id: int
    name: str
    line_count: int
    total_cents: int


@dataclass(frozen=True)
class RunPage:
    """What the penvoerder sees before and after closing a quarter: for an open quarter what
    closing would declare and reject; for a closed one the run and its statements."""

    quarter: Quarter
    run: RunSummary | None
    can_close: bool
    totals: tuple[HolderTotal, ...]
    rejected: tuple[RejectedLine, ...]

    @property
    def total_cents(self) -> int:
        return sum(t.total_cents for t in self.totals)


async def run_page(uow: UnitOfWork, quarter: Quarter, today: dt.date) -> RunPage:
    """The quarterly run page (kwartaalafsluiting): a check first, then the closed run."""
    await check_finance_access(uow)
    runs = list(await uow.db.scalars(select(SettlementRun).order_by(SettlementRun.id)))
    closed = next((r for r in runs if r.quarter == quarter.code), None)
    if closed is not None:
        lines = await _run_lines(uow, [closed.id])
        rejected: tuple[RejectedLine, ...] = ()
    else:
        previous = await _run_lines(uow, [r.id for r in runs])
        deliveries, allocations, contracts, agreements = await load_until(uow, quarter.end)
        result = settle(deliveries, allocations, contracts, agreements, previous)
        lines = list(result.lines)
        names = await _names_of(uow, {r.delivery.provider_id for r in result.rejected})
        rejected = tuple(
            RejectedLine(
                names.get(r.delivery.provider_id, ""),
                r.delivery.allocation_number,
                r.delivery.product_code,
                r.delivery.start,
                r.delivery.end,
                r.delivery.volume,
                r.text(),
            )
            for r in result.rejected
        )
    names = await _names(uow, lines)
    per_holder: dict[int, list[OutLine]] = {}
    for x in lines:
        per_holder.setdefault(x.holder_id, []).append(x)
    totals = tuple(
        sorted(
            (
                HolderTotal(pid, names.get(pid, ""), len(xs), sum(x.signed_cents for x in xs))
                for pid, xs in per_holder.items()
            ),
            key=lambda t: (t.name.casefold(), t.provider_id),
        )
    )
    later_closed = any(parse_quarter(r.quarter).start > quarter.start for r in runs)
    return RunPage(
        quarter=quarter,
        run=_summary(closed, created=False) if closed else None,
        can_close=closed is None and today > quarter.end and not later_closed,
        totals=totals,
        rejected=rejected,
    )


async def _names_of(uow: UnitOfWork, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await uow.db.execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(ids))
    )
    return {org_id: name for org_id, name in rows}


async def run_declarations(uow: UnitOfWork, quarter: Quarter) -> bytes:
    """The JW323-shaped declaration files of a closed quarter, one per declaring provider,
    municipality and month, in one ZIP. Dated on the day the run closed and built only from
    the run's lines, so the same run gives the same bytes."""
    await check_finance_access(uow)
    run = await uow.db.scalar(select(SettlementRun).where(SettlementRun.quarter == quarter.code))
    if run is None:
        raise NotFound()
    lines = await _run_lines(uow, [run.id])
    ids = {x.holder_id for x in lines} | {x.municipality_id for x in lines}
    orgs = {
        o.id: o for o in await uow.db.scalars(select(Organisation).where(Organisation.id.in_(ids)))
    }
    senders = {o.id: Sender(o.id, o.agb_code or f"#{o.id}", o.name) for o in orgs.values()}
    codes = {o.id: o.cbs_code or f"#{o.id}" for o in orgs.values()}
    closed_on = local_day(run.closed_at)
    files = declaration_files(lines, senders, codes, closed_on)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for f in files:
            info = zipfile.ZipInfo(f.filename, date_time=(*closed_on.timetuple()[:3], 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, f.to_xml())
    return buffer.getvalue()


def local_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(AMSTERDAM).date()
