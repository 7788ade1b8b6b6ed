"""The quarterly run (kwartaalafsluiting) in the database: close a quarter into an immutable run,
and read a run's statement. Inside the caller's unit of work; never commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keerpunt.platform import audit
from keerpunt.platform.errors import DomainError, NotFound
from keerpunt.platform.i18n import AMSTERDAM, N_
from keerpunt.platform.models import Organisation, User
from keerpunt.platform.principal import Principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_finance_access
from keerpunt.settlement.declaration import (
    DeliveryFields,
    Direction,
    Margin,
    MarginKind,
    OutLine,
    OutOfOrder,
    Rejection,
    SubProviderAgreement,
    settle_rows,
)
from keerpunt.settlement.jw323 import Sender, declaration_files
from keerpunt.settlement.kassier import agreement_index, line_margin
from keerpunt.settlement.models import Allocation as AllocationRow
from keerpunt.settlement.models import Contract, SettlementRun, SettlementRunLine
from keerpunt.settlement.models import Delivery as DeliveryRow
from keerpunt.settlement.models import SubProviderAgreement as AgreementRow
from keerpunt.settlement.records import allocation_terms, contract_terms, sub_provider_terms
from keerpunt.settlement.rules import Quarter, parse_quarter
from keerpunt.settlement.statement import statement_csv, statement_parts

__all__ = [
    "MARGIN_COLUMNS",
    "PHASE_CHECK",
    "PHASE_LOAD",
    "PHASE_WRITE",
    "RUN_LINE_COLUMNS",
    "HolderTotal",
    "LaterQuarterClosed",
    "Progress",
    "QuarterNotOver",
    "RejectedLine",
    "RunPage",
    "RunSummary",
    "StoredMargin",
    "cli_principal",
    "close_quarter",
    "closed_run",
    "run_declarations",
    "run_line",
    "run_page",
    "run_statement",
    "stored_margin",
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
# is called at the start and end of each phase, and per chunk of lines while checking (then
# ``total`` is 0: the lines are streamed, their number is known only at the end).
PHASE_LOAD = "load"  # reading earlier runs, allocations, tariffs and agreements
PHASE_CHECK = "check"  # checking every delivery line (done/total: lines)
PHASE_WRITE = "write"  # writing the run's lines (done/total: lines)
Progress = Callable[[str, int, int], None]
_CHUNK = 10_000  # lines checked between two progress reports


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


# A run line's columns in the order of OutLine's fields (read without ORM objects).
RUN_LINE_COLUMNS = (
    SettlementRunLine.delivery_id,
    SettlementRunLine.allocation_number,
    SettlementRunLine.holder_id,
    SettlementRunLine.provider_id,
    SettlementRunLine.municipality_id,
    SettlementRunLine.product_category,
    SettlementRunLine.product_code,
    SettlementRunLine.start_date,
    SettlementRunLine.end_date,
    SettlementRunLine.volume,
    SettlementRunLine.unit,
    SettlementRunLine.tariff_cents,
    SettlementRunLine.amount_cents,
    SettlementRunLine.direction,
    SettlementRunLine.revision,
)


def run_line(row: Sequence[Any]) -> OutLine:
    (delivery_id, number, holder_id, provider_id, municipality_id, category, code, start, end,
     volume, unit, tariff_cents, amount_cents, direction, revision) = row  # fmt: skip
    return OutLine(
        delivery_id, number, holder_id, provider_id, municipality_id, category, code, start,
        end, volume, unit, tariff_cents, amount_cents, _DIRECTIONS[direction], revision,
    )  # fmt: skip


_DIRECTIONS = {d.value: d for d in Direction}  # as Direction(letter), without a call per line


# The kassier's margin stored with a run line (see SettlementRunLine.margin_cents).
MARGIN_COLUMNS = (
    SettlementRunLine.margin_cents,
    SettlementRunLine.agreement_id,
    SettlementRunLine.margin_kind,
    SettlementRunLine.margin_value,
)


@dataclass(frozen=True)
class StoredMargin:
    """The kassier's margin on a run line as stored when the run closed, and the agreement's
    margin it came from (None on the kassier's own line)."""

    margin_cents: int
    agreement_id: int | None
    margin: Margin | None


def stored_margin(row: Sequence[Any]) -> StoredMargin | None:
    """A run line's :data:`MARGIN_COLUMNS` read back; None when no margin was stored."""
    cents, agreement_id, kind, value = row
    if cents is None:
        return None
    margin = None if kind is None else Margin(MarginKind(kind), value)
    return StoredMargin(cents, agreement_id, margin)


def closed_run(runs: Sequence[SettlementRun], quarter: Quarter) -> RunSummary | None:
    """The run of ``quarter`` among ``runs`` when it is closed already (nothing to do), else
    None; refused when a later quarter is closed (its corrections belong to the next run)."""
    for run in runs:
        if run.quarter == quarter.code:
            return _summary(run, created=False)
    if any(parse_quarter(r.quarter).start > quarter.start for r in runs):
        raise LaterQuarterClosed()
    return None


def _summary(run: SettlementRun, *, created: bool) -> RunSummary:
    return RunSummary(
        run.quarter, created, run.line_count, run.rejected_count, run.total_cents, run.digest
    )


async def _names(uow: UnitOfWork, lines: Iterable[OutLine]) -> dict[int, str]:
    lines = list(lines)
    return await organisation_names(
        uow, {x.holder_id for x in lines} | {x.provider_id for x in lines}
    )


async def _run_lines(uow: UnitOfWork, run_ids: Iterable[int]) -> list[OutLine]:
    # Through Core, not the ORM session: a later quarter reads every line of the runs
    # before it, and the ORM's row handling cost a third of that.
    rows = await (await uow.db.connection()).execute(
        select(*RUN_LINE_COLUMNS)
        .where(SettlementRunLine.run_id.in_(list(run_ids)))
        .order_by(SettlementRunLine.run_id, SettlementRunLine.seq)
    )
    return [run_line(r) for r in rows]


async def _settle_until(
    uow: UnitOfWork,
    last_day: dt.date,
    previous: Sequence[OutLine],
    report: Progress = _quiet,
    with_ids: Sequence[tuple[int, SubProviderAgreement]] | None = None,
) -> tuple[tuple[OutLine, ...], tuple[Rejection, ...]]:
    """Settle every delivery up to ``last_day`` against ``previous``: the pure rules of
    :mod:`~keerpunt.settlement.declaration` over the lines streamed from the database in
    their canonical order, so no million delivery objects are held at once."""
    rows = list(await uow.db.scalars(select(AllocationRow)))
    allocations = [allocation_terms(a) for a in rows]
    numbers = {row.id: a.number for row, a in zip(rows, allocations, strict=True)}
    del rows
    contracts = [contract_terms(c) for c in await uow.db.scalars(select(Contract))]
    if with_ids is None:
        with_ids = await _agreements(uow)
    agreements = [g for _id, g in with_ids]

    def run(db: Session) -> tuple[tuple[OutLine, ...], tuple[Rejection, ...]]:
        try:
            return settle_rows(
                _deliveries(db, last_day, numbers, report), allocations, contracts, agreements,
                previous, ordered=True,
            )  # fmt: skip
        except OutOfOrder:  # the database sorted text differently: let the rules sort
            return settle_rows(
                _deliveries(db, last_day, numbers, report), allocations, contracts, agreements,
                previous,
            )  # fmt: skip

    return await uow.db.run_sync(run)


async def _agreements(uow: UnitOfWork) -> list[tuple[int, SubProviderAgreement]]:
    """Every sub-provider agreement with its id, in the order of their ids."""
    rows = await uow.db.scalars(select(AgreementRow).order_by(AgreementRow.id))
    return [(g.id, sub_provider_terms(g)) for g in rows]


# What is stored of the kassier's margin per line: (cents, agreement id, kind, value).
StoredRow = tuple[int | None, int | None, str | None, int | None]


def _margins(
    lines: Sequence[OutLine],
    agreements: Sequence[tuple[int, SubProviderAgreement]],
    credited: dict[tuple[int, int], StoredRow] | None = None,
) -> Iterator[StoredRow]:
    """Per line, what is stored of the kassier's margin, by the kassier ledger's own rule
    (:func:`~keerpunt.settlement.kassier.line_margin`). A kassier is a holder with agreements
    or with lines others delivered; its own lines it keeps whole. A credit of a line whose
    margin an earlier run stored (``credited``, by delivery and revision) takes back exactly
    that margin, whatever the agreement says now. Nothing for the lines of other holders, nor
    for a sub-provider's line without agreement (the kassier page names it)."""
    index = agreement_index(g for _id, g in agreements)
    ids = {id(g): i for i, g in agreements}
    kassiers = {g.kassier_id for _id, g in agreements}
    kassiers |= {x.holder_id for x in lines if x.holder_id != x.provider_id}
    credited = credited or {}
    nothing = (None, None, None, None)
    for x in lines:
        if x.holder_id not in kassiers:
            yield nothing
        elif x.provider_id == x.holder_id:
            yield (x.signed_cents, None, None, None)
        elif (
            x.direction is Direction.CREDIT
            and (was := credited.get((x.delivery_id, x.revision))) is not None
        ):
            cents, agreement_id, kind, value = was
            yield (None if cents is None else -cents, agreement_id, kind, value)
        elif (found := line_margin(x, index)) is None:
            yield nothing
        else:
            g = found.agreement
            yield (found.margin_cents, ids[id(g)], g.margin.kind.value, g.margin.value)


async def _credited_margins(
    uow: UnitOfWork, run_ids: Sequence[int], lines: Sequence[OutLine]
) -> dict[tuple[int, int], StoredRow]:
    """The margins earlier runs stored on the sub-providers' debits that ``lines`` credit,
    by (delivery, revision): a few queries for all of them, none per line."""
    wanted = {
        (x.delivery_id, x.revision)
        for x in lines
        if x.direction is Direction.CREDIT and x.holder_id != x.provider_id
    }
    if not wanted or not run_ids:
        return {}
    L = SettlementRunLine
    found: dict[tuple[int, int], StoredRow] = {}
    deliveries = sorted({d for d, _r in wanted})
    for i in range(0, len(deliveries), 5_000):
        rows = await uow.db.execute(
            select(L.delivery_id, L.revision, *MARGIN_COLUMNS)
            .where(
                L.run_id.in_(run_ids),
                L.delivery_id.in_(deliveries[i : i + 5_000]),
                L.direction == Direction.DEBIT.value,
                L.margin_cents.is_not(None),
            )
            .order_by(L.run_id, L.seq)
        )
        for delivery_id, revision, cents, agreement_id, kind, value in rows:
            if (delivery_id, revision) in wanted:
                found[delivery_id, revision] = (cents, agreement_id, kind, value)
    return found


def _deliveries(
    db: Session, last_day: dt.date, numbers: dict[int, str], report: Progress
) -> Iterator[DeliveryFields]:
    """Deliveries starting on or before ``last_day`` in canonical order
    (:attr:`Delivery.order_key`), streamed as plain tuples (:data:`DeliveryFields`): the
    driver's own rows, taken from the cursor in chunks, without an ORM object, a result row
    or a :class:`Delivery` per line. ``report`` hears every :data:`_CHUNK` lines how many
    were read (see :data:`PHASE_CHECK`). Repeated values (numbers, codes, days) are shared
    objects, so a quarter of lines stays small in memory."""
    D, A = DeliveryRow, AllocationRow
    binary = db.get_bind().dialect.name == "postgresql"  # order text as Python does

    def text(column: Any) -> Any:
        return column.collate("C") if binary else column

    query = (
        select(
            D.id, D.provider_id, D.allocation_id, D.product_category, D.product_code,
            D.start_date, D.end_date, D.volume,
        )
        .join(A, A.id == D.allocation_id)
        .where(D.start_date <= last_day)
        .order_by(
            text(A.number), D.start_date, D.end_date, D.provider_id, text(D.product_code),
            D.volume, D.id,
        )
    )  # fmt: skip
    conn = db.connection()
    # The one parameter is a date, rendered by the dialect's own Date literal.
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.dbapi_connection.cursor(server_side=True)  # type: ignore[union-attr]
    # The driver's rows: SQLite gives a day as its ISO text (as SQLAlchemy's Date stored it),
    # PostgreSQL as a date. Either way each distinct day becomes one shared date object.
    days: dict[Any, dt.date] = {}
    shared: dict[str, str] = {}
    same = shared.setdefault
    done = 0
    report(PHASE_CHECK, 0, 0)
    try:
        cursor.execute(sql)
        while chunk := cursor.fetchmany(_CHUNK):
            for id_, provider_id, allocation_id, category, code, start, end, volume in chunk:
                if (first := days.get(start)) is None:
                    first = days[start] = _as_date(start)
                if (last := days.get(end)) is None:
                    last = days[end] = _as_date(end)
                yield (
                    id_, provider_id, numbers[allocation_id], same(category, category),
                    same(code, code), first, last, volume,
                )  # fmt: skip
            done += len(chunk)
            if done % _CHUNK == 0:
                report(PHASE_CHECK, done, 0)
    finally:
        cursor.close()
    report(PHASE_CHECK, done, done)


def _as_date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


_STORED = (
    "run_id",
    "seq",
    "delivery_id",
    "revision",
    "direction",
    "allocation_number",
    "holder_id",
    "provider_id",
    "municipality_id",
    "product_category",
    "product_code",
    "start_date",
    "end_date",
    "volume",
    "unit",
    "tariff_cents",
    "amount_cents",
    "margin_cents",
    "agreement_id",
    "margin_kind",
    "margin_value",
)


async def _store_lines(
    uow: UnitOfWork,
    run_id: int,
    lines: Sequence[OutLine],
    agreements: Sequence[tuple[int, SubProviderAgreement]],
    credited: dict[tuple[int, int], StoredRow] | None = None,
) -> None:
    """Insert a run's lines with the driver's bulk path, in the unit of work's transaction:
    COPY on PostgreSQL, one executemany per batch on SQLite. No ORM object or parameter dict
    per line: for a quarter of a million lines that is most of the cost of writing them.
    The kassier's margin of each line is worked out in the same pass (:func:`_margins`)."""
    conn = await uow.db.connection()
    raw: Any = (await conn.get_raw_connection()).driver_connection
    table = SettlementRunLine.__tablename__
    margins = _margins(lines, agreements, credited)
    if conn.dialect.name == "postgresql":
        rows = _run_rows(run_id, lines, margins, _same_day)
        await raw.copy_records_to_table(table, records=rows, columns=_STORED)
        return
    # SQLite: dates as ISO text, as SQLAlchemy's Date type stores them there.
    rows = _run_rows(run_id, lines, margins, dt.date.isoformat)
    names, marks = ", ".join(_STORED), ", ".join("?" * len(_STORED))
    sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 - constant names
    # The next batch is made while SQLite writes the one before in aiosqlite's thread.
    writing: asyncio.Task[Any] | None = None
    try:
        while batch := list(islice(rows, 20_000)):
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(raw.executemany(sql, batch))
            await asyncio.sleep(0)  # hand the batch to the thread before making the next
        if writing is not None:
            await writing
    except BaseException:
        if writing is not None and not writing.done():
            await asyncio.wait([writing])  # never leave a write running on a failed unit
        raise


def _same_day(day: dt.date) -> dt.date:
    return day


def _run_rows(
    run_id: int,
    lines: Sequence[OutLine],
    margins: Iterable[StoredRow],
    day: Callable[[dt.date], Any],
) -> Iterator[tuple[Any, ...]]:
    """A run's lines as rows of :data:`_STORED`, each day as ``day`` gives it (worked out
    once per day)."""
    letter = {d: d.value for d in Direction}
    days: dict[dt.date, Any] = {}
    for seq, (x, margin) in enumerate(zip(lines, margins, strict=True), 1):
        if (start := days.get(x.start)) is None:
            start = days[x.start] = day(x.start)
        if (end := days.get(x.end)) is None:
            end = days[x.end] = day(x.end)
        yield (
            run_id, seq, x.delivery_id, x.revision, letter[x.direction], x.allocation_number,
            x.holder_id, x.provider_id, x.municipality_id, x.product_category, x.product_code,
            start, end, x.volume, x.unit, x.tariff_cents, x.amount_cents, *margin,
        )  # fmt: skip


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """Python's cycle collector paused while a run is checked and written. A national run
    makes millions of objects that live to the end (lines, rows), none of them in a cycle,
    and each full collection walks them all again: 18 of them took 2.5 of 8.3 s of CPU at
    1,000,000 lines (bench/settlement.py). Reference counting still frees everything; cyclic
    garbage of other threads waits until the run is done. Left off when it already was."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


async def _digest_meanwhile(quarter: str, lines: Sequence[OutLine], names: dict[int, str]) -> str:
    """:func:`~keerpunt.settlement.statement.statement_digest`, a part at a time, with the
    event loop let run between parts: PostgreSQL takes in the run's lines (COPY) in its own
    process meanwhile, so the digest costs the run (almost) no time of its own there."""
    h = hashlib.sha256()
    for part in statement_parts(quarter, lines, names):
        await asyncio.sleep(0)
        h.update(part)
    return h.hexdigest()


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
    if (closed := closed_run(runs, quarter)) is not None:
        return closed
    with _cycle_collection_paused():  # see there: about a quarter of the run's time
        report(PHASE_LOAD, 0, 0)
        previous = await _run_lines(uow, [r.id for r in runs])
        agreements = await _agreements(uow)  # the same for checking and for the margins
        lines, rejected = await _settle_until(uow, quarter.end, previous, report, agreements)
        report(PHASE_WRITE, 0, len(lines))
        run = SettlementRun(
            quarter=quarter.code,
            closed_by_id=uow.who.user_id,
            line_count=len(lines),
            rejected_count=len(rejected),
            total_cents=sum(x.signed_cents for x in lines),
            digest="",  # worked out below while the lines are written, set in this transaction
            margins_stored=True,
        )
        names = await _names(uow, lines)
        uow.db.add(run)
        await uow.db.flush()
        stored = [r.id for r in runs if r.margins_stored]
        credited = await _credited_margins(uow, stored, lines)
        writing = asyncio.ensure_future(_store_lines(uow, run.id, lines, agreements, credited))
        try:
            digest = await _digest_meanwhile(quarter.code, lines, names)
        finally:
            await writing  # its failure, if any, is the one that counts
        run.digest = digest
        report(PHASE_WRITE, len(lines), len(lines))
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
        settled, refused = await _settle_until(uow, quarter.end, previous)
        lines = list(settled)
        names = await organisation_names(uow, {r.delivery.provider_id for r in refused})
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
            for r in refused
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


async def organisation_names(uow: UnitOfWork, ids: set[int]) -> dict[int, str]:
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
