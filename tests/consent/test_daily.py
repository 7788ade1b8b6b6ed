"""At midnight the calendar alone can change what consent allows: a 12th or 16th birthday, or a
consent whose end date has passed. The daily job tells those cases' screens; which cases is a
pure function, the job's timing is tested with a fake clock, never by sleeping."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from keerpunt.consent import daily
from keerpunt.consent.models import ConsentRecord
from keerpunt.consent.rules import disclosure_turns
from keerpunt.platform.i18n import AMSTERDAM, today
from keerpunt.platform.models import Case, RoomEvent
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import realtime as _rooms  # noqa: F401 - registers the session rooms
from tests.conftest import LiveServer
from tests.consent.test_live import _open
from tests.triage.factories import World, build_world

D = dt.date


# -- which cases, on which day (pure) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "after", "upto", "expected"),
    [
        (D(2014, 5, 10), D(2026, 5, 9), D(2026, 5, 10), D(2026, 5, 10)),  # 12 today
        (D(2010, 5, 10), D(2026, 5, 9), D(2026, 5, 10), D(2026, 5, 10)),  # 16 today
        (D(2012, 5, 10), D(2026, 5, 9), D(2026, 5, 10), None),  # 14: nothing changes
        (D(2014, 5, 11), D(2026, 5, 9), D(2026, 5, 10), None),  # 12 tomorrow
        (D(2014, 5, 9), D(2026, 5, 9), D(2026, 5, 10), None),  # 12 yesterday: told then
        (D(2014, 5, 9), D(2026, 5, 8), D(2026, 5, 10), D(2026, 5, 9)),  # caught up after a gap
        (D(2014, 12, 31), D(2026, 12, 31), D(2027, 1, 1), None),  # new year's eve is not it
        (D(2015, 1, 1), D(2026, 12, 31), D(2027, 1, 1), D(2027, 1, 1)),
        # 29 February: in a leap year on the day, in a common year (2100) on 1 March, as
        # consent.rules.age_on counts
        (D(2012, 2, 29), D(2024, 2, 28), D(2024, 2, 29), D(2024, 2, 29)),
        (D(2088, 2, 29), D(2100, 2, 28), D(2100, 3, 1), D(2100, 3, 1)),
        (D(2088, 2, 29), D(2100, 2, 27), D(2100, 2, 28), None),
    ],
)
def test_a_12th_or_16th_birthday_in_the_window_turns_the_case(
    birth: dt.date, after: dt.date, upto: dt.date, expected: dt.date | None
) -> None:
    turns = disclosure_turns(births={7: birth}, record_ends=[], after=after, upto=upto)
    assert turns.get(7) == expected


@pytest.mark.parametrize(
    ("valid_until", "expected"),
    [
        (D(2026, 5, 9), D(2026, 5, 10)),  # last day yesterday: no longer holds today
        (D(2026, 5, 10), None),  # holds today still
        (D(2026, 5, 8), None),  # ended a day earlier: told then
    ],
)
def test_a_consent_that_stops_holding_turns_the_case(
    valid_until: dt.date, expected: dt.date | None
) -> None:
    turns = disclosure_turns(
        births={}, record_ends=[(3, valid_until)], after=D(2026, 5, 9), upto=D(2026, 5, 10)
    )
    assert turns.get(3) == expected


def test_the_latest_turn_of_a_case_counts() -> None:
    turns = disclosure_turns(
        births={1: D(2014, 5, 8)},
        record_ends=[(1, D(2026, 5, 9)), (2, D(2026, 5, 7))],
        after=D(2026, 5, 1),
        upto=D(2026, 5, 10),
    )
    assert turns == {1: D(2026, 5, 10), 2: D(2026, 5, 8)}


# -- when the job runs (fake clock) -----------------------------------------------------------


def _at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=AMSTERDAM)


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (_at(D(2026, 5, 10), 23, 0), 3600 + 60),
        (_at(D(2026, 5, 10), 0, 0, 30), 30),  # just before the run
        (_at(D(2026, 5, 10), 0, 1), 24 * 3600),  # at the run: the next night
        (_at(D(2026, 10, 25), 0, 30), 25 * 3600 - 29 * 60),  # clocks go back: a 25-hour day
        (_at(D(2026, 3, 29), 0, 30), 23 * 3600 - 29 * 60),  # clocks go forward: 23 hours
        (dt.datetime(2026, 5, 10, 21, 30, tzinfo=dt.UTC), 31 * 60),  # 23:30 in summer time
    ],
)
def test_the_next_run_is_shortly_after_midnight_in_the_netherlands(
    now: dt.datetime, seconds: int
) -> None:
    assert daily.seconds_until_next_run(now) == seconds


class _Clock:
    def __init__(self, start: dt.datetime, nights: int) -> None:
        self.t = start
        self.slept: list[float] = []
        self.nights = nights

    def now(self) -> dt.datetime:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if len(self.slept) == self.nights:
            raise asyncio.CancelledError  # the app stops
        self.slept.append(seconds)
        self.t += dt.timedelta(seconds=seconds)


@pytest.mark.anyio
async def test_the_job_catches_up_at_start_then_runs_each_night() -> None:
    clock = _Clock(_at(D(2026, 5, 10), 15, 0), nights=2)
    told: list[tuple[dt.date, dt.date]] = []

    async def tell(day: dt.date, after: dt.date) -> None:
        told.append((day, after))

    with pytest.raises(asyncio.CancelledError):
        await daily.run_daily(tell, now=clock.now, sleep=clock.sleep)
    start = D(2026, 5, 10) - dt.timedelta(days=daily.CATCH_UP_DAYS)
    assert told == [
        (D(2026, 5, 10), start),  # at start: the days the app may have been down
        (D(2026, 5, 11), D(2026, 5, 10)),
        (D(2026, 5, 12), D(2026, 5, 11)),
    ]
    assert clock.slept[0] == 9 * 3600 + 60  # 15:00 until 00:01
    assert clock.t == _at(D(2026, 5, 12), 0, 1)


@pytest.mark.anyio
async def test_a_failed_night_is_tried_again_and_catches_up() -> None:
    clock = _Clock(_at(D(2026, 5, 10), 23, 59), nights=2)
    told: list[tuple[dt.date, dt.date]] = []
    failures = [RuntimeError("database away")]

    async def tell(day: dt.date, after: dt.date) -> None:
        if day == D(2026, 5, 11) and failures:
            raise failures.pop()
        told.append((day, after))

    with pytest.raises(asyncio.CancelledError):
        await daily.run_daily(tell, now=clock.now, sleep=clock.sleep)
    assert told[1:] == [(D(2026, 5, 11), D(2026, 5, 10))]  # the same window, once it works
    assert clock.slept[1] == daily.RETRY_SECONDS


# -- telling the screens (database, live server) ----------------------------------------------


async def _set_birth(rt: Runtime, world: World, birth: dt.date) -> None:
    """As if the youth was registered with this birth date (no change to tell about)."""
    async with rt.sessionmaker() as db, db.begin():
        cipher = await rt.vault.cipher(db, world.case_id)
        await db.execute(
            update(Case)
            .where(Case.id == world.case_id)
            .values(birth_date_enc=cipher.encrypt("case.birth_date", birth.isoformat()))
        )


async def _told(rt: Runtime, world: World) -> int:
    async with rt.sessionmaker() as db:
        return len(
            (
                await db.scalars(
                    select(RoomEvent.id).where(
                        RoomEvent.room == f"triage:{world.session_id}",
                        RoomEvent.kind == "consent.changed",
                    )
                )
            ).all()
        )


def _years_ago(years: int) -> dt.date:
    t = today()
    try:
        return t.replace(year=t.year - years)
    except ValueError:  # today is 29 February
        return D(t.year - years, 3, 1)


@pytest.mark.anyio
async def test_a_youth_turning_12_today_is_told_once(runtime: Runtime) -> None:
    world = await build_world(runtime)
    await _set_birth(runtime, world, _years_ago(12))
    before = await _told(runtime, world)
    day = today()
    assert await daily.tell_screens(runtime, day=day, after=day - dt.timedelta(days=1)) == [
        world.case_id
    ]
    assert await _told(runtime, world) == before + 1
    # Again (a restart, or the command beside the app): told since midnight, not again.
    assert await daily.tell_screens(runtime, day=day, after=day - dt.timedelta(days=31)) == []
    assert await _told(runtime, world) == before + 1


@pytest.mark.anyio
async def test_a_youth_of_14_without_end_dates_is_left_alone(runtime: Runtime) -> None:
    world = await build_world(runtime)
    day = today()
    assert await daily.tell_screens(runtime, day=day, after=day - dt.timedelta(days=31)) == []
    assert await _told(runtime, world) == 0


@pytest.mark.anyio
async def test_a_consent_that_ended_yesterday_is_told(runtime: Runtime) -> None:
    world = await build_world(runtime)
    day = today()
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(
            update(ConsentRecord)
            .where(ConsentRecord.case_id == world.case_id)
            .values(valid_until=day - dt.timedelta(days=1))
        )
    assert await daily.tell_screens(runtime, day=day, after=day - dt.timedelta(days=1)) == [
        world.case_id
    ]


@pytest.mark.anyio
async def test_on_the_12th_birthday_a_resuming_screen_shows_the_pseudonym(
    runtime: Runtime, live_server: LiveServer
) -> None:
    """Until yesterday (11) the parent's consent was enough; from today (12) the youth's is
    needed too, and the youth never gave it: the expert's screen must not keep the name."""
    world = await build_world(runtime)
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(
            update(ConsentRecord)
            .where(ConsentRecord.subject_member_id == world.members["youth"])
            .values(withdrawn_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
        )
        seen = await db.scalar(
            select(RoomEvent.seq)
            .where(RoomEvent.room == f"triage:{world.session_id}")
            .order_by(RoomEvent.seq.desc())
            .limit(1)
        )
        pseudonym = (await db.get(Case, world.case_id)).pseudonym  # type: ignore[union-attr]
    await _set_birth(runtime, world, _years_ago(12))
    day = today()
    await daily.tell_screens(runtime, day=day, after=day - dt.timedelta(days=1))
    expert = await _open(
        live_server, runtime, world.session_id, after=seen or 0, user_id=world.expert.id
    )
    pushed = await expert.until('id="kp-title"')
    title = pushed.split('id="kp-title"', 1)[1][:200]
    assert pseudonym in title and "Sem Canarie" not in title
    await expert.ws.close()


@pytest.mark.anyio
async def test_on_the_12th_birthday_the_command_redraws_an_open_screen(
    runtime: Runtime, live_server: LiveServer
) -> None:
    """``keerpunt consent daily`` from cron, beside the running app (the test's runtime is
    that other process): the expert's open screen turns to the pseudonym at once."""
    world = await build_world(runtime)
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(
            update(ConsentRecord)
            .where(ConsentRecord.subject_member_id == world.members["youth"])
            .values(withdrawn_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
        )
        seen = await db.scalar(
            select(RoomEvent.seq)
            .where(RoomEvent.room == f"triage:{world.session_id}")
            .order_by(RoomEvent.seq.desc())
            .limit(1)
        )
        pseudonym = (await db.get(Case, world.case_id)).pseudonym  # type: ignore[union-attr]
    expert = await _open(
        live_server, runtime, world.session_id, after=seen or 0, user_id=world.expert.id
    )
    await _set_birth(runtime, world, _years_ago(12))
    day = today()
    await daily.tell_screens(runtime, day=day, after=day - dt.timedelta(days=1))
    pushed = await expert.until('id="kp-title"', within=3.0)
    title = pushed.split('id="kp-title"', 1)[1][:200]
    assert pseudonym in title and "Sem Canarie" not in title
    await expert.ws.close()


def _command(runtime: Runtime) -> subprocess.CompletedProcess[str]:
    s = runtime.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEERPUNT_")},
        "KEERPUNT_DATABASE_URL": s.database_url,
        "KEERPUNT_SECRET_KEY": str(s.secret_key),
        "KEERPUNT_MASTER_KEYS": str(s.master_keys),
        "KEERPUNT_BSN_INDEX_KEY": str(s.bsn_index_key),
    }
    keerpunt = str(Path(sys.executable).with_name("keerpunt"))
    return subprocess.run(
        [keerpunt, "consent", "daily"], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.anyio
async def test_the_command_tells_the_same_cases_once(runtime: Runtime) -> None:
    """``keerpunt consent daily`` for cron: the same as the app's job, and harmless twice."""
    world = await build_world(runtime)
    await _set_birth(runtime, world, _years_ago(16))
    outs = [_command(runtime) for _ in range(2)]
    assert outs[0].returncode == 0, outs[0].stderr
    assert f"Screens of 1 case(s) told: {world.case_id}." in outs[0].stdout
    assert "Screens of 0 case(s) told: -." in outs[1].stdout
    assert await _told(runtime, world) == 1
