"""Closing a quarter in the background while the penvoerder watches the progress, from any
server process.

Checking a national quarter takes a while and is mostly Python work, so it runs in a worker
thread with its own event loop and its own database connection: the server keeps answering
(the progress polls among them) while it works. The close itself is one transaction
(:func:`runs.close_quarter`): it commits whole or not at all.

Every attempt is a row (:class:`~keerpunt.settlement.models.SettlementClosing`), written in short
transactions of its own beside the closing's, never in it: made and committed when the button
starts the work (:func:`begin_closing`), marked done or failed after the closing committed or
rolled back. The process that runs the closing shows its progress from memory (:class:`Closer`);
every other process (several ``keerpunt serve`` may share one database) shows it from the row
(:func:`closing_state`), and never works out the preview of a quarter being closed. On
PostgreSQL a thread of its own writes the phase and counts into the row about once a second
(:class:`Heartbeat`). On SQLite the closing holds the write lock from start to end, so the row
keeps its first phase until the end. A row neither finished nor updated for a while was left by
a process that stopped: nothing of it was saved, and the button is offered again. A failure
stays on the run page, in every process, until a later attempt starts or the quarter is closed.

One closing per quarter at a time: pressing while one runs anywhere joins it, and starts in
one process take turns; ``keerpunt settle`` makes its attempt the same way
(:meth:`Closer.close_and_wait`). Two presses at the very same moment in two processes may both
start; the row lock in ``close_quarter`` makes them one run, and both attempts end done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from keerpunt.platform import audit
from keerpunt.platform.db import make_engine, utcnow
from keerpunt.platform.errors import DomainError
from keerpunt.platform.i18n import N_, gettext
from keerpunt.platform.principal import Principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_finance_access
from keerpunt.settlement.models import SettlementClosing, SettlementRun
from keerpunt.settlement.rules import Quarter
from keerpunt.settlement.runs import (
    PHASE_CHECK,
    PHASE_LOAD,
    PHASE_WRITE,
    Progress,
    QuarterNotOver,
    RunSummary,
    close_quarter,
    closed_run,
)

__all__ = [
    "CLOSE_FAILED",
    "CLOSE_INTERRUPTED",
    "COUNT_TEXT",
    "HEARTBEAT_SECONDS",
    "PHASE_DONE",
    "PHASE_FAILED",
    "PHASE_TEXT",
    "PHASE_WAIT",
    "STALE_WITHOUT_HEARTBEAT",
    "STALE_WITH_HEARTBEAT",
    "Attempt",
    "CloseJob",
    "Closer",
    "ClosingState",
    "Heartbeat",
    "begin_closing",
    "check_close",
    "closing_state",
    "count_text",
    "finish_closing",
    "state_of",
    "write_progress",
]

log = logging.getLogger(__name__)

PHASE_WAIT = "wait"  # started, waiting for the database (another closing may hold the lock)
PHASE_DONE = "done"
PHASE_FAILED = "failed"

HEARTBEAT_SECONDS = 1.0  # PostgreSQL: how often the row hears how far the closing is
# How long an unfinished attempt still counts as running without an update of its row. On
# PostgreSQL the heartbeat updates it every second: half a minute without one means its process
# is gone (the slack is for a busy database or a machine that paused). On SQLite nothing can be
# written while the closing holds the write lock, so the row is as old as the closing itself:
# a national quarter takes about 11 s there; a quarter of an hour is far beyond any real one.
STALE_WITH_HEARTBEAT = dt.timedelta(seconds=30)
STALE_WITHOUT_HEARTBEAT = dt.timedelta(minutes=15)

CLOSE_FAILED = N_(
    "Het afsluiten is mislukt. Er is niets opgeslagen. Probeer het opnieuw; lukt het weer "
    "niet, vraag dan de beheerder om hulp."
)
CLOSE_INTERRUPTED = N_(
    "De vorige poging om dit kwartaal af te sluiten is niet afgemaakt. Er is niets opgeslagen. "
    "U kunt het opnieuw proberen."
)

# What the penvoerder hears, once per phase (the counts change on screen, not out loud).
PHASE_TEXT = {
    PHASE_WAIT: N_("Het afsluiten is begonnen."),
    PHASE_LOAD: N_("Stap 1 van 3: de gegevens worden opgehaald."),
    PHASE_CHECK: N_("Stap 2 van 3: de regels worden gecontroleerd."),
    PHASE_WRITE: N_("Stap 3 van 3: de afrekening wordt opgeslagen."),
    PHASE_DONE: N_(
        "Klaar: het kwartaal is afgesloten. De overzichten per aanbieder staan hieronder."
    ),
}
COUNT_TEXT = {
    PHASE_CHECK: N_("%(done)s van %(total)s regels gecontroleerd"),
    PHASE_WRITE: N_("%(done)s van %(total)s regels opgeslagen"),
}
# While checking, the lines are streamed: their number is known only at the end.
COUNT_SO_FAR = N_("%(done)s regels gecontroleerd")


def count_text(phase: str, done: int, total: int, number: Callable[[int], str]) -> str:
    """How far a phase is, in words ("12.000 van 40.000 regels gecontroleerd"), or ""."""
    if phase in COUNT_TEXT and total:
        return gettext(COUNT_TEXT[phase]) % {"done": number(done), "total": number(total)}
    if phase == PHASE_CHECK and done:
        return gettext(COUNT_SO_FAR) % {"done": number(done)}
    return ""


@dataclass(frozen=True)
class CloseJob:
    """A snapshot of one closing: its phase and how far it is (``done`` of ``total`` lines)."""

    quarter: str
    phase: str
    organisation_id: int | None = None  # the penvoerder whose finance started it
    done: int = 0
    total: int = 0
    error: str | None = None  # Dutch message id, when it failed
    summary: RunSummary | None = None  # when it is done
    closing_id: int | None = None  # its row (SettlementClosing)

    @property
    def finished(self) -> bool:
        return self.phase in (PHASE_DONE, PHASE_FAILED)


def _job(row: SettlementClosing) -> CloseJob:
    return CloseJob(
        row.quarter,
        row.phase,
        row.organisation_id,
        row.done,
        row.total,
        row.error,
        closing_id=row.id,
    )


@dataclass(frozen=True)
class ClosingState:
    """What the run page shows of the attempts to close a quarter, in any process."""

    running: CloseJob | None = None  # under way: show only its progress
    error: str | None = None  # message id: why the last attempt did not close the quarter


def state_of(
    rows: Sequence[SettlementClosing], now: dt.datetime, stale_after: dt.timedelta, closed: bool
) -> ClosingState:
    """The rule. An attempt runs while it is not finished and its row was updated within
    ``stale_after`` (the first to start, when two began at once: they make one run).
    Otherwise, while the quarter is not ``closed``, the newest attempt says why: it failed (its
    message), or a process that stopped left it unfinished (:data:`CLOSE_INTERRUPTED`)."""
    ordered = sorted(rows, key=lambda r: (r.started_at, r.id))
    for row in ordered:
        if row.finished_at is None and now - row.updated_at <= stale_after:
            return ClosingState(running=_job(row))
    if closed or not ordered:
        return ClosingState()
    last = ordered[-1]
    if last.finished_at is None:
        return ClosingState(error=CLOSE_INTERRUPTED)
    if last.phase == PHASE_FAILED:
        return ClosingState(error=last.error or CLOSE_FAILED)
    return ClosingState()


def _heartbeat(dialect: str) -> bool:
    # SQLite: the closing holds the write lock for its whole run; a write would wait and fail.
    return dialect == "postgresql"


async def closing_state(uow: UnitOfWork, quarter: Quarter) -> ClosingState:
    """The attempts to close ``quarter`` as the run page shows them (:func:`state_of`), for
    finance of the penvoerder only. Only reads, so it may run beside a closing on SQLite."""
    await check_finance_access(uow)
    rows = list(
        await uow.db.scalars(
            select(SettlementClosing).where(SettlementClosing.quarter == quarter.code)
        )
    )
    if not rows:
        return ClosingState()
    closed = await uow.db.scalar(
        select(func.count()).select_from(SettlementRun).where(SettlementRun.quarter == quarter.code)
    )
    dialect = (await uow.db.connection()).dialect.name
    stale_after = STALE_WITH_HEARTBEAT if _heartbeat(dialect) else STALE_WITHOUT_HEARTBEAT
    return state_of(rows, utcnow(), stale_after, bool(closed))


async def check_close(uow: UnitOfWork, quarter: Quarter, today: dt.date) -> RunSummary | None:
    """Whether this viewer may close ``quarter`` now, before any work starts: finance of the
    penvoerder, the quarter is over and no later one is closed. Returns the run when the
    quarter is closed already (nothing to do)."""
    await check_finance_access(uow)
    if today <= quarter.end:
        raise QuarterNotOver()
    return closed_run(list(await uow.db.scalars(select(SettlementRun))), quarter)


@dataclass(frozen=True)
class Attempt:
    """What :func:`begin_closing` found: a ``new`` attempt to run, or the one under way."""

    job: CloseJob
    new: bool


async def begin_closing(uow: UnitOfWork, quarter: Quarter, today: dt.date) -> RunSummary | Attempt:
    """Record a new attempt to close ``quarter`` (audited), after :func:`check_close`; or
    return what is there already: the run when the quarter is closed, the attempt under way
    when one runs in any process (pressing again joins it). The caller commits before the work
    starts, so every process sees the attempt."""
    closed = await check_close(uow, quarter, today)
    if closed is not None:
        return closed
    running = (await closing_state(uow, quarter)).running
    if running is not None:
        return Attempt(running, new=False)
    who = uow.who
    assert who.organisation_id is not None  # check_close: finance of the penvoerder
    row = SettlementClosing(
        quarter=quarter.code,
        organisation_id=who.organisation_id,
        started_by_id=who.user_id,
        phase=PHASE_WAIT,
    )
    uow.db.add(row)
    await uow.db.flush()
    await audit.record(
        uow.db,
        who,
        "settlement.closing.start",
        purpose="settlement",
        detail=f"closing={row.id} quarter={quarter.code}",
    )
    return Attempt(_job(row), new=True)


async def finish_closing(uow: UnitOfWork, job: CloseJob) -> None:
    """Mark the attempt of ``job`` finished as it ended (done, or failed with its message),
    after the closing committed or rolled back. A failure is audited: the closing's own audit
    row went with its transaction."""
    row = await uow.db.get(SettlementClosing, job.closing_id)
    if row is None:
        return
    now = utcnow()
    row.phase, row.done, row.total, row.error = job.phase, job.done, job.total, job.error
    row.updated_at = row.finished_at = now
    if job.phase == PHASE_FAILED:
        await audit.record(
            uow.db,
            uow.who,
            "settlement.closing.failed",
            purpose="settlement",
            detail=f"closing={row.id} quarter={row.quarter} error={job.error}",
        )


async def write_progress(conn: AsyncConnection, closing_id: int, job: CloseJob) -> None:
    """One heartbeat: the phase and counts of ``job`` into its row, with the time, in a short
    transaction of its own on ``conn``. A finished row is left as it is (a late beat never
    undoes the end)."""
    async with conn.begin():
        await conn.execute(
            update(SettlementClosing)
            .where(SettlementClosing.id == closing_id, SettlementClosing.finished_at.is_(None))
            .values(phase=job.phase, done=job.done, total=job.total, updated_at=utcnow())
        )


class Heartbeat:
    """PostgreSQL: while a closing runs, a thread and a connection of its own write how far it
    is into its row every ``seconds`` (:func:`write_progress`), which also tells every process
    it is alive. A thread, not a task: the worker's event loop is blocked while the rules run
    inside ``run_sync``. ``snapshot`` gives the job as it is now (None: nothing to write)."""

    def __init__(
        self,
        database_url: str,
        closing_id: int,
        snapshot: Callable[[], CloseJob | None],
        seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self._url = database_url
        self._closing_id = closing_id
        self._snapshot = snapshot
        self._seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"closing-heartbeat-{closing_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop writing; returns when the last write is over (a stuck one is left behind: the
        row's end is written without waiting for it, and a late beat leaves it alone)."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._beat())

    async def _beat(self) -> None:
        engine = make_engine(self._url, pool=False)
        try:
            while not self._stop.is_set():
                try:
                    async with engine.connect() as conn:
                        while not self._stop.is_set():
                            job = self._snapshot()
                            if job is not None:
                                await write_progress(conn, self._closing_id, job)
                            # This loop runs nothing else: waiting here holds up no one, and
                            # ends at once when stopped.
                            self._stop.wait(self._seconds)
                except Exception:  # the database went away: try again, the row goes stale
                    log.exception("closing %s: heartbeat failed", self._closing_id)
                    self._stop.wait(self._seconds)
        finally:
            await engine.dispose()


class Closer:
    """The closings of one server process, by quarter code, and how they start."""

    def __init__(
        self,
        rt: Runtime,
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        progress: Progress | None = None,
    ) -> None:
        self._rt = rt
        self._heartbeat_seconds = heartbeat_seconds
        self._progress = progress  # also told of every step, from the worker (the CLI's stderr)
        self._lock = threading.Lock()
        self._starting = asyncio.Lock()
        self._jobs: dict[str, CloseJob] = {}
        self._finished: dict[str, threading.Event] = {}

    def get(self, quarter: str) -> CloseJob | None:
        with self._lock:
            return self._jobs.get(quarter)

    def running(self, quarter: str, who: Principal) -> CloseJob | None:
        """The closing of ``quarter`` under way in this process, if the viewer's organisation
        started it: shown from memory, with its counts, without asking the database."""
        job = self.get(quarter)
        if job is None or job.finished or job.organisation_id != who.organisation_id:
            return None
        return job

    async def start(
        self, who: Principal, quarter: Quarter, today: dt.date
    ) -> RunSummary | CloseJob:
        """Start closing ``quarter`` in a worker thread (:func:`begin_closing` first), or return
        what is there already: the run when it is closed, the closing under way when one runs
        here or in another process (two people pressing watch the same one)."""
        # Starts in this process take turns: the second finds the first one's job in memory,
        # and on SQLite never waits for the write lock that job's closing holds.
        async with self._starting:
            job = self.running(quarter.code, who)
            if job is not None:
                return job
            # Only reads: on SQLite a closing in another process holds the write lock.
            async with self._rt.read_only(who) as uow:
                job = (await closing_state(uow, quarter)).running
            if job is not None:
                return job
            async with self._rt.unit_of_work(who) as uow:
                begun = await begin_closing(uow, quarter, today)
            if isinstance(begun, RunSummary):
                return begun
            if begun.new:
                self.launch(who, quarter, today, begun.job)
            return begun.job

    async def close_and_wait(
        self, who: Principal, quarter: Quarter, today: dt.date, *, poll: float = 1.0
    ) -> RunSummary:
        """``keerpunt settle``: the same attempt as the button (its row for every server process
        to show, audited), run in this process until it ends; a closing already under way in
        another process is waited for. A failure raises its message."""
        started = await self.start(who, quarter, today)
        if isinstance(started, RunSummary):
            return started
        if started.closing_id is not None and self._current(started) is not None:
            ended = await asyncio.to_thread(self.wait, quarter.code, None)
            if ended is not None and ended.summary is not None and ended.phase == PHASE_DONE:
                return ended.summary
            raise DomainError(ended.error if ended is not None and ended.error else CLOSE_FAILED)
        while True:  # another process closes it: watch its row
            await asyncio.sleep(poll)
            async with self._rt.read_only(who) as uow:
                state = await closing_state(uow, quarter)
                if state.running is None:
                    summary = await check_close(uow, quarter, today)
                    if summary is not None:
                        return summary
                    raise DomainError(state.error or CLOSE_INTERRUPTED)

    def launch(self, who: Principal, quarter: Quarter, today: dt.date, job: CloseJob) -> None:
        """Run the attempt ``job`` (its row made by :func:`begin_closing` and committed) in a
        worker thread of this process."""
        assert job.closing_id is not None
        with self._lock:
            self._jobs[quarter.code] = job
            self._finished[quarter.code] = threading.Event()
        worker = threading.Thread(
            target=self._work,
            args=(who, quarter, today, job),
            name=f"close-{quarter.code}",
            daemon=True,
        )
        worker.start()

    def wait(self, quarter: str, timeout: float | None) -> CloseJob | None:
        """Block until the closing of ``quarter`` has finished (for the CLI and tests)."""
        with self._lock:
            event = self._finished.get(quarter)
        if event is not None:
            event.wait(timeout)
        return self.get(quarter)

    def _current(self, job: CloseJob) -> CloseJob | None:
        # The job in memory, while it is this attempt's (a later one may have replaced it).
        with self._lock:
            now = self._jobs.get(job.quarter)
        return now if now is not None and now.closing_id == job.closing_id else None

    def _set(self, job: CloseJob, new: CloseJob) -> None:
        with self._lock:
            now = self._jobs.get(job.quarter)
            if now is not None and now.closing_id == job.closing_id:
                self._jobs[job.quarter] = new

    def _work(self, who: Principal, quarter: Quarter, today: dt.date, job: CloseJob) -> None:
        try:
            asyncio.run(self._run(who, job, quarter, today))
        finally:
            with self._lock:
                event = self._finished.get(quarter.code)
            if event is not None:
                event.set()

    async def _run(self, who: Principal, job: CloseJob, quarter: Quarter, today: dt.date) -> None:
        rt = Runtime.build(self._rt.settings, pool=False)
        try:
            ended = await self._close(rt, who, job, quarter, today)
            try:
                # Its own short transaction, after the closing's committed or rolled back.
                async with rt.unit_of_work(who) as uow:
                    await finish_closing(uow, ended)
            except Exception:
                # The row then goes stale: the run page shows the run if there is one, else
                # that the attempt did not finish and nothing was saved (both true).
                log.exception("closing %s: its end could not be recorded", quarter.code)
            # Only now in memory: until then this process shows the progress, not the row
            # that still says it runs.
            self._set(job, ended)
        finally:
            await rt.engine.dispose()

    async def _close(
        self, rt: Runtime, who: Principal, job: CloseJob, quarter: Quarter, today: dt.date
    ) -> CloseJob:
        """Close in one transaction, with the heartbeat on PostgreSQL; the attempt as it
        ended, done or failed."""

        def progress(phase: str, done: int, total: int) -> None:
            now = self._current(job) or job
            self._set(job, dataclasses.replace(now, phase=phase, done=done, total=total))
            if self._progress is not None:
                self._progress(phase, done, total)

        assert job.closing_id is not None
        heartbeat = None
        if _heartbeat(rt.engine.dialect.name):
            heartbeat = Heartbeat(
                rt.settings.database_url,
                job.closing_id,
                lambda: self._current(job),
                self._heartbeat_seconds,
            )
            heartbeat.start()
        try:
            # One transaction: an error anywhere rolls everything back.
            async with rt.unit_of_work(who) as uow:
                summary = await close_quarter(uow, quarter, today, progress=progress)
        except DomainError as exc:
            return self._ended(job, PHASE_FAILED, error=exc.message)
        except Exception:
            log.exception("closing %s failed", quarter.code)
            return self._ended(job, PHASE_FAILED, error=CLOSE_FAILED)
        finally:
            if heartbeat is not None:
                heartbeat.stop()
        return self._ended(job, PHASE_DONE, summary=summary)

    def _ended(
        self,
        job: CloseJob,
        phase: str,
        *,
        error: str | None = None,
        summary: RunSummary | None = None,
    ) -> CloseJob:
        # With the counts as far as they got.
        now = self._current(job) or job
        return dataclasses.replace(now, phase=phase, error=error, summary=summary)
