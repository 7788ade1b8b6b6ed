"""Closing a quarter in the background while the penvoerder watches the progress.

Checking a national quarter takes a while and is mostly Python work, so it runs in a worker
thread with its own event loop and its own database connection: the server keeps answering
(the progress polls among them) while it works. The close itself is one transaction
(:func:`runs.close_quarter`): it commits whole or not at all. One job per quarter at a time in
this process; the row lock in ``close_quarter`` makes two closings anywhere still one run.

Progress lives in memory only. After a restart the run page reads the database again: a run is
there or it is not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from keerpunt.platform.errors import DomainError
from keerpunt.platform.i18n import N_, gettext
from keerpunt.platform.principal import Principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.settings import Settings
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_finance_access
from keerpunt.settlement.models import SettlementRun
from keerpunt.settlement.rules import Quarter, parse_quarter
from keerpunt.settlement.runs import (
    PHASE_CHECK,
    PHASE_LOAD,
    PHASE_WRITE,
    LaterQuarterClosed,
    QuarterNotOver,
    RunSummary,
    close_quarter,
)

__all__ = [
    "CLOSE_FAILED",
    "COUNT_TEXT",
    "PHASE_DONE",
    "PHASE_FAILED",
    "PHASE_TEXT",
    "PHASE_WAIT",
    "CloseJob",
    "Closer",
    "check_close",
    "count_text",
]

log = logging.getLogger(__name__)

PHASE_WAIT = "wait"  # started, waiting for the database (another closing may hold the lock)
PHASE_DONE = "done"
PHASE_FAILED = "failed"

CLOSE_FAILED = N_(
    "Het afsluiten is mislukt. Er is niets opgeslagen. Probeer het opnieuw; lukt het weer "
    "niet, vraag dan de beheerder om hulp."
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

    @property
    def finished(self) -> bool:
        return self.phase in (PHASE_DONE, PHASE_FAILED)


async def check_close(uow: UnitOfWork, quarter: Quarter, today: dt.date) -> RunSummary | None:
    """Whether this viewer may close ``quarter`` now, before any work starts: finance of the
    penvoerder, the quarter is over and no later one is closed. Returns the run when the
    quarter is closed already (nothing to do)."""
    await check_finance_access(uow)
    if today <= quarter.end:
        raise QuarterNotOver()
    runs = list(await uow.db.scalars(select(SettlementRun)))
    for run in runs:
        if run.quarter == quarter.code:
            return RunSummary(
                run.quarter, False, run.line_count, run.rejected_count, run.total_cents, run.digest
            )
    if any(parse_quarter(r.quarter).start > quarter.start for r in runs):
        raise LaterQuarterClosed()
    return None


class Closer:
    """The closings of one server process, by quarter code."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._jobs: dict[str, CloseJob] = {}
        self._finished: dict[str, threading.Event] = {}

    def get(self, quarter: str) -> CloseJob | None:
        with self._lock:
            return self._jobs.get(quarter)

    def running(self, quarter: str, who: Principal) -> CloseJob | None:
        """The closing of ``quarter`` under way, if the viewer's organisation started it:
        showing it needs no database (which is busy with the closing)."""
        job = self.get(quarter)
        if job is None or job.finished or job.organisation_id != who.organisation_id:
            return None
        return job

    def start(self, who: Principal, quarter: Quarter, today: dt.date) -> CloseJob:
        """Start closing ``quarter``, or return the closing already under way (two people
        pressing at once watch the same one)."""
        with self._lock:
            job = self._jobs.get(quarter.code)
            if job is not None and not job.finished:
                return job
            job = CloseJob(quarter.code, PHASE_WAIT, who.organisation_id)
            self._jobs[quarter.code] = job
            self._finished[quarter.code] = threading.Event()
        worker = threading.Thread(
            target=self._work,
            args=(who, quarter, today),
            name=f"close-{quarter.code}",
            daemon=True,
        )
        worker.start()
        return job

    def wait(self, quarter: str, timeout: float) -> CloseJob | None:
        """Block until the closing of ``quarter`` has finished (for the CLI and tests)."""
        with self._lock:
            event = self._finished.get(quarter)
        if event is not None:
            event.wait(timeout)
        return self.get(quarter)

    def outcome(self, quarter: str, who: Principal) -> CloseJob | None:
        """The finished closing of ``quarter`` by the viewer's organisation, once: it is
        forgotten when shown (the run page reads the database after that)."""
        with self._lock:
            job = self._jobs.get(quarter)
            if job is None or not job.finished or job.organisation_id != who.organisation_id:
                return None
            del self._jobs[quarter]
            return job

    def _set(self, quarter: str, **changes: object) -> None:
        with self._lock:
            self._jobs[quarter] = dataclasses.replace(self._jobs[quarter], **changes)  # type: ignore[arg-type]

    def _work(self, who: Principal, quarter: Quarter, today: dt.date) -> None:
        try:
            summary = asyncio.run(self._close(who, quarter, today))
        except DomainError as exc:
            self._set(quarter.code, phase=PHASE_FAILED, error=exc.message)
        except Exception:
            log.exception("closing %s failed", quarter.code)
            self._set(quarter.code, phase=PHASE_FAILED, error=CLOSE_FAILED)
        else:
            self._set(quarter.code, phase=PHASE_DONE, summary=summary)
        finally:
            with self._lock:
                self._finished[quarter.code].set()

    async def _close(self, who: Principal, quarter: Quarter, today: dt.date) -> RunSummary:
        rt = Runtime.build(self._settings, pool=False)

        def progress(phase: str, done: int, total: int) -> None:
            self._set(quarter.code, phase=phase, done=done, total=total)

        try:
            # One transaction: an error anywhere rolls everything back.
            async with rt.unit_of_work(who) as uow:
                return await close_quarter(uow, quarter, today, progress=progress)
        finally:
            await rt.engine.dispose()
