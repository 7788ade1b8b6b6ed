"""Closing a quarter with several server processes on one database: every process shows the
closing under way (never the preview and the button meanwhile), a failure, and an attempt a
stopped process left unfinished; pressing while one runs anywhere joins it. Two apps, each with
its own runtime, play two ``keerpunt serve`` processes."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import select, update

from keerpunt.platform.app import create_app
from keerpunt.platform.db import READ_ONLY, utcnow
from keerpunt.platform.models import AuditEntry
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.settings import Settings
from keerpunt.settlement import closing
from keerpunt.settlement.closing import (
    CLOSE_FAILED,
    CLOSE_INTERRUPTED,
    PHASE_DONE,
    PHASE_FAILED,
    PHASE_WAIT,
    STALE_WITH_HEARTBEAT,
    STALE_WITHOUT_HEARTBEAT,
    Attempt,
    Closer,
    Heartbeat,
    begin_closing,
    state_of,
)
from keerpunt.settlement.models import SettlementClosing
from keerpunt.settlement.rules import parse_quarter
from keerpunt.settlement.runs import PHASE_CHECK, PHASE_WRITE, LaterQuarterClosed, close_quarter
from tests.helpers import login
from tests.settlement.factories import principal
from tests.settlement.test_routes import text_of
from tests.settlement.test_run_routes import finish_closing, runs
from tests.settlement.test_statements import AFTER_Q3, Q3, kassier_world

pytestmark = pytest.mark.anyio

HTMX = {"HX-Request": "true"}
BUTTON = "Kwartaal afsluiten</button>"
PREVIEW = "Hieronder ziet u wat afsluiten nu zou declareren."
ALERT_FAILED = re.compile(r'role="alert"[^>]*>\s*Het afsluiten is mislukt\.')
ALERT_UNFINISHED = re.compile(
    r'role="alert"[^>]*>\s*De vorige poging om dit kwartaal af te sluiten is niet afgemaakt\. '
    r"Er is niets opgeslagen\."
)


@dataclass
class Process:
    """Another server process on the same database: its own app and runtime."""

    app: Any
    runtime: Runtime
    settings: Settings

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def other(settings: Settings) -> AsyncIterator[Process]:
    rt = Runtime.build(settings, pool=False)
    yield Process(create_app(settings, runtime=rt), rt, settings)
    await rt.engine.dispose()


@pytest.fixture
async def client2(other: Process) -> AsyncIterator[httpx.AsyncClient]:
    async with other.client() as c:
        yield c


@dataclass
class Pause:
    """The closing stops when it starts writing its lines (inside its transaction, holding the
    penvoerder's row, and on SQLite the write lock) until the test lets it go on."""

    reached: threading.Event
    release: threading.Event

    async def wait_reached(self) -> None:
        assert await anyio.to_thread.run_sync(self.reached.wait, 30), "the closing never began"


@pytest.fixture
def paused(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pause]:
    pause = Pause(threading.Event(), threading.Event())

    async def pausing(uow: Any, quarter: Any, today: Any, *, progress: Any = None) -> Any:
        def report(phase: str, done: int, total: int) -> None:
            if progress is not None:
                progress(phase, done, total)
            if phase == PHASE_WRITE and not pause.reached.is_set():
                pause.reached.set()
                pause.release.wait(30)

        return await close_quarter(uow, quarter, today, progress=report)

    monkeypatch.setattr(closing, "close_quarter", pausing)
    # A fast heartbeat, so the test need not wait a second for it.
    app.state.settlement_closer = Closer(app.state.runtime, heartbeat_seconds=0.05)
    yield pause
    pause.release.set()  # never leave a worker waiting, whatever the test did
    finish_closing(app)


def postgresql(rt: Runtime) -> bool:
    return rt.engine.dialect.name == "postgresql"


async def closings(rt: Runtime) -> list[SettlementClosing]:
    # Only reads: on SQLite a closing under way holds the write lock.
    async with rt.sessionmaker(execution_options={READ_ONLY: True}) as db:
        return list(await db.scalars(select(SettlementClosing).order_by(SettlementClosing.id)))


async def actions(rt: Runtime) -> list[str]:
    async with rt.sessionmaker() as db:
        return list(await db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


async def press(c: httpx.AsyncClient, csrf: str) -> httpx.Response:
    return await c.post(
        "/settlement/run", data={"q": "2026Q3"}, headers={"X-CSRF-Token": csrf, **HTMX}
    )


async def poll_until(c: httpx.AsyncClient, *texts: str, seen: str = "wait") -> str:
    """The progress poll's text once it says all of ``texts`` (the heartbeat is a thread)."""
    deadline = time.monotonic() + 10
    while True:
        r = await c.get(f"/settlement/run/2026Q3/progress?seen={seen}", headers=HTMX)
        assert r.status_code == 200
        page = text_of(r.text)
        if all(t in page for t in texts) or time.monotonic() > deadline:
            return page
        await anyio.sleep(0.05)


async def test_a_closing_in_one_process_shows_as_progress_in_the_other(
    client: httpx.AsyncClient,
    client2: httpx.AsyncClient,
    other: Process,
    runtime: Runtime,
    app: Any,
    paused: Pause,
) -> None:
    w = await kassier_world(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    await login(client2, runtime, user_id=w.region.finance.id)
    async with other.client() as outsider:
        await login(outsider, runtime, user_id=w.region.other_finance.id)
        assert (await press(client, csrf)).status_code == 200
        await paused.wait_reached()

        # The process that closes shows how far it is from memory.
        r = await client.get("/settlement/run/2026Q3/progress?seen=write", headers=HTMX)
        assert "0 van 2 regels opgeslagen" in text_of(r.text)

        # The other shows it from the database: progress, no preview, no button.
        r = await client2.get("/settlement/run?q=2026Q3")
        assert r.status_code == 200
        page = text_of(r.text)
        assert "Bezig met afsluiten" in page and 'hx-trigger="every 1s"' in r.text
        assert PREVIEW not in page and "Wordt afgewezen" not in page and BUTTON not in r.text
        if postgresql(runtime):
            # The heartbeat brings phase and counts into the row.
            page = await poll_until(client2, "Stap 3 van 3", "0 van 2 regels opgeslagen")
            assert "Stap 3 van 3: de afrekening wordt opgeslagen." in page
            assert "0 van 2 regels opgeslagen" in page
        else:
            # The closing holds the write lock: the row keeps its first phase, no counts.
            page = await poll_until(client2, "Het afsluiten is begonnen.")
            assert "Het afsluiten is begonnen." in page and "regels" not in page
        assert "hx-retarget" not in r.headers

        # Finance of an organisation that is not the penvoerder sees nothing of it.
        for url in ("/settlement/run?q=2026Q3", "/settlement/run/2026Q3/progress?seen=wait"):
            r = await outsider.get(url, headers=HTMX)
            assert r.status_code == 403 and "Bezig met afsluiten" not in r.text

    paused.release.set()
    finish_closing(app)
    r = await client2.get("/settlement/run/2026Q3/progress?seen=write", headers=HTMX)
    assert r.headers["hx-retarget"] == "#kp-run"
    page = text_of(r.text)
    assert "Dit kwartaal is afgesloten: 2 regels, 0 afgewezen, totaal € 624,00." in page
    assert "Klaar: het kwartaal is afgesloten." in page
    (row,) = await closings(runtime)
    assert row.phase == PHASE_DONE and row.finished_at is not None and row.error is None
    assert (row.done, row.total) == (2, 2)
    assert row.organisation_id == w.region.penvoerder.id
    assert row.started_by_id == w.region.finance.id


async def test_pressing_while_it_closes_elsewhere_joins_that_closing(
    client: httpx.AsyncClient,
    client2: httpx.AsyncClient,
    other: Process,
    runtime: Runtime,
    app: Any,
    paused: Pause,
) -> None:
    w = await kassier_world(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    csrf2 = await login(client2, runtime, user_id=w.region.finance.id)
    await press(client, csrf)
    await paused.wait_reached()

    r = await press(client2, csrf2)
    assert r.status_code == 200
    page = text_of(r.text)
    assert "Bezig met afsluiten" in page and BUTTON not in r.text and PREVIEW not in page
    # Without htmx: to the run page, which shows the same closing.
    r = await client2.post("/settlement/run", data={"q": "2026Q3"}, headers={"X-CSRF-Token": csrf2})
    assert r.status_code == 303
    assert "Bezig met afsluiten" in text_of((await client2.get(r.headers["location"])).text)
    # No second worker, no second attempt.
    assert other.app.state.settlement_closer.get("2026Q3") is None
    assert len(await closings(runtime)) == 1

    paused.release.set()
    finish_closing(app)
    assert await runs(runtime) == 1
    assert [(c.phase, c.finished_at is not None) for c in await closings(runtime)] == [
        (PHASE_DONE, True)
    ]


async def test_a_failed_closing_is_shown_in_every_process_until_the_next_attempt(
    client: httpx.AsyncClient,
    client2: httpx.AsyncClient,
    other: Process,
    runtime: Runtime,
    app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = await kassier_world(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    csrf2 = await login(client2, runtime, user_id=w.region.finance.id)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(closing, "close_quarter", broken)
    await press(client, csrf)
    finish_closing(app)
    # In the other process, and in this one, and again: not shown once and forgotten.
    for c in (client2, client, client2):
        r = await c.get("/settlement/run?q=2026Q3")
        assert ALERT_FAILED.search(r.text), r.text
        assert BUTTON in r.text and PREVIEW in text_of(r.text)  # try again
    (row,) = await closings(runtime)
    assert (row.phase, row.error) == (PHASE_FAILED, CLOSE_FAILED)
    assert row.finished_at is not None
    assert await runs(runtime) == 0
    audited = await actions(runtime)
    assert "settlement.closing.start" in audited and "settlement.closing.failed" in audited

    # The next attempt, from the other process: the alert goes, the run comes.
    monkeypatch.undo()
    r = await press(client2, csrf2)
    assert r.status_code == 200 and not ALERT_FAILED.search(r.text)
    finish_closing(other.app)
    for c in (client, client2):
        r = await c.get("/settlement/run?q=2026Q3")
        assert not ALERT_FAILED.search(r.text)
        assert "Dit kwartaal is afgesloten: 2 regels" in text_of(r.text)
    assert [c.phase for c in await closings(runtime)] == [PHASE_FAILED, PHASE_DONE]


async def test_an_attempt_a_stopped_process_left_says_so_and_offers_the_button(
    client: httpx.AsyncClient, runtime: Runtime, app: Any
) -> None:
    w = await kassier_world(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    # Another process began and was updated just now: it counts as running.
    async with runtime.unit_of_work(principal(w.region.finance)) as uow:
        attempt = await begin_closing(uow, Q3, AFTER_Q3)
    assert isinstance(attempt, Attempt) and attempt.new
    r = await client.get("/settlement/run?q=2026Q3")
    assert "Bezig met afsluiten" in text_of(r.text) and BUTTON not in r.text

    # Then that process stopped: no update for longer than the limit of this database.
    limit = STALE_WITH_HEARTBEAT if postgresql(runtime) else STALE_WITHOUT_HEARTBEAT
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(
            update(SettlementClosing).values(updated_at=utcnow() - limit - dt.timedelta(seconds=1))
        )
    r = await client.get("/settlement/run/2026Q3/progress?seen=wait", headers=HTMX)
    assert r.headers["hx-retarget"] == "#kp-run"  # the poll gives way to the page
    assert ALERT_UNFINISHED.search(r.text) and BUTTON in r.text
    assert "Klaar" not in text_of(r.text)
    r = await client.get("/settlement/run?q=2026Q3")
    assert ALERT_UNFINISHED.search(r.text) and BUTTON in r.text and PREVIEW in text_of(r.text)

    # Pressing again starts a new attempt; once it is done the message is gone.
    assert (await press(client, csrf)).status_code == 200
    finish_closing(app)
    r = await client.get("/settlement/run?q=2026Q3")
    assert not ALERT_UNFINISHED.search(r.text)
    assert "Dit kwartaal is afgesloten: 2 regels" in text_of(r.text)
    old, new = await closings(runtime)
    assert old.finished_at is None and (new.phase, new.finished_at is not None) == (
        PHASE_DONE,
        True,
    )


async def test_the_heartbeat_writes_phase_and_counts_on_postgresql(
    client2: httpx.AsyncClient, runtime: Runtime, settings: Settings
) -> None:
    if not postgresql(runtime):
        pytest.skip("SQLite: the closing holds the write lock, nothing is written meanwhile")
    w = await kassier_world(runtime)
    await login(client2, runtime, user_id=w.region.finance.id)
    async with runtime.unit_of_work(principal(w.region.finance)) as uow:
        attempt = await begin_closing(uow, Q3, AFTER_Q3)
    assert isinstance(attempt, Attempt) and attempt.job.closing_id is not None
    snapshot = dataclasses.replace(attempt.job, phase=PHASE_CHECK, done=12_000, total=40_000)
    (before,) = await closings(runtime)

    heartbeat = Heartbeat(settings.database_url, attempt.job.closing_id, lambda: snapshot, 0.05)
    heartbeat.start()
    try:
        page = await poll_until(client2, "12.000 van 40.000 regels gecontroleerd")
    finally:
        heartbeat.stop()
    assert "Stap 2 van 3: de regels worden gecontroleerd." in page
    assert "12.000 van 40.000 regels gecontroleerd" in page
    (row,) = await closings(runtime)
    assert (row.phase, row.done, row.total) == (PHASE_CHECK, 12_000, 40_000)
    assert row.updated_at > before.updated_at and row.finished_at is None
    # Stopped means stopped: nothing more is written.
    await anyio.sleep(0.2)
    assert (await closings(runtime))[0].updated_at == row.updated_at


async def test_two_presses_in_one_process_make_one_attempt(
    client: httpx.AsyncClient, runtime: Runtime, app: Any
) -> None:
    w = await kassier_world(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    one, two = await asyncio.gather(press(client, csrf), press(client, csrf))
    assert one.status_code == two.status_code == 200
    finish_closing(app)
    assert await runs(runtime) == 1
    assert [c.phase for c in await closings(runtime)] == [PHASE_DONE]


# The rule itself, without a database.

NOW = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC)
LIMIT = dt.timedelta(seconds=30)


def attempt_row(
    id_: int, *, age: float = 0, phase: str = PHASE_WAIT, finished: bool = False, **more: Any
) -> SettlementClosing:
    at = NOW - dt.timedelta(seconds=age)
    return SettlementClosing(
        id=id_,
        quarter="2026Q3",
        organisation_id=1,
        phase=phase,
        done=more.pop("done", 0),
        total=more.pop("total", 0),
        error=more.pop("error", None),
        started_at=at,
        updated_at=at,
        finished_at=at if finished else None,
    )


def test_an_attempt_runs_while_unfinished_and_fresh() -> None:
    state = state_of([attempt_row(1, age=29, phase=PHASE_CHECK, done=10)], NOW, LIMIT, False)
    assert state.running is not None and state.error is None
    assert (state.running.phase, state.running.done, state.running.closing_id) == (
        PHASE_CHECK,
        10,
        1,
    )
    state = state_of([attempt_row(1, age=31)], NOW, LIMIT, False)
    assert state.running is None and state.error == CLOSE_INTERRUPTED
    # Closed meanwhile (its last write failed, or the command line closed it): nothing to say.
    assert state_of([attempt_row(1, age=31)], NOW, LIMIT, True).error is None


def test_the_newest_attempt_says_how_the_last_one_ended() -> None:
    failed = attempt_row(1, age=60, phase=PHASE_FAILED, finished=True, error="X")
    assert state_of([failed], NOW, LIMIT, False).error == "X"
    assert state_of([failed], NOW, LIMIT, True).error is None  # a run exists
    done = attempt_row(2, age=10, phase=PHASE_DONE, finished=True)
    assert state_of([failed, done], NOW, LIMIT, False).error is None
    running = attempt_row(3, age=1)
    state = state_of([failed, running], NOW, LIMIT, False)
    assert state.running is not None and state.error is None
    assert state_of([], NOW, LIMIT, False) == closing.ClosingState()


async def test_the_command_line_waits_for_a_closing_under_way_elsewhere(
    client: httpx.AsyncClient, other: Process, runtime: Runtime, app: Any, paused: Pause
) -> None:
    """``keerpunt settle`` while the button's closing runs in a server process: it starts no
    second one, waits, and ends with that run."""
    w = await kassier_world(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    assert (await press(client, csrf)).status_code == 200
    await paused.wait_reached()
    waiting = asyncio.ensure_future(
        Closer(other.runtime).close_and_wait(principal(w.region.finance), Q3, AFTER_Q3, poll=0.05)
    )
    await anyio.sleep(0.3)
    assert not waiting.done()
    paused.release.set()
    summary = await asyncio.wait_for(waiting, 30)
    assert (summary.quarter, summary.created, summary.line_count) == ("2026Q3", False, 2)
    assert [c.phase for c in await closings(runtime)] == [PHASE_DONE]
    assert await runs(runtime) == 1


async def test_the_command_line_closes_as_the_button_does(runtime: Runtime) -> None:
    """Its own closing is a row too (shown by open screens), audited; a failure says why."""
    w = await kassier_world(runtime)
    told: list[str] = []
    closer = Closer(runtime, progress=lambda phase, done, total: told.append(phase))
    summary = await closer.close_and_wait(principal(w.region.finance), Q3, AFTER_Q3)
    assert summary.created and summary.line_count == 2
    assert told[0] == "load" and told[-1] == PHASE_WRITE
    (row,) = await closings(runtime)
    assert row.phase == PHASE_DONE and row.finished_at is not None
    assert "settlement.closing.start" in await actions(runtime)
    again = await Closer(runtime).close_and_wait(principal(w.region.finance), Q3, AFTER_Q3)
    assert not again.created and again.digest == summary.digest
    with pytest.raises(LaterQuarterClosed):
        await Closer(runtime).close_and_wait(
            principal(w.region.finance), parse_quarter("2026Q2"), AFTER_Q3
        )
