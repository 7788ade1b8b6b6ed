"""What consent allows can change at midnight without anyone writing anything: on the youth's
12th or 16th birthday the law changes who must consent (age on the day of processing), and a
consent with an end date stops holding the day after. Open session screens (and screens that
reconnect) must then not keep showing what yesterday allowed.

Shortly after midnight in the Netherlands the app saves ``consent.changed`` in every room of
each such case (:func:`tell_screens`), and at start-up it catches up on the last
:data:`CATCH_UP_DAYS` days. A case whose screens were told since that midnight (by this job,
another process running it, or any change to its consent) is not told again, so running it
twice, or from ``keerpunt consent daily`` beside the app, does no harm.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

from keerpunt.consent.models import ConsentRecord
from keerpunt.consent.rules import disclosure_turns
from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import Case, RoomEvent
from keerpunt.platform.principal import SYSTEM
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import CONSENT_CHANGED

__all__ = [
    "CATCH_UP_DAYS",
    "RUN_AT",
    "run_daily",
    "seconds_until_next_run",
    "start",
    "tell_screens",
]

log = logging.getLogger(__name__)

RUN_AT = dt.time(0, 1)  # shortly after midnight, Europe/Amsterdam
CATCH_UP_DAYS = 31  # at start-up: changes of the days the app may have been down
RETRY_SECONDS = 300.0  # after a failed run (e.g. the database was away)


def seconds_until_next_run(now: dt.datetime) -> float:
    """Seconds from ``now`` (tz-aware) to the next :data:`RUN_AT` in the Netherlands, in
    real time (a night with a clock change is 23 or 25 hours long)."""
    local = now.astimezone(AMSTERDAM)
    target = dt.datetime.combine(local.date(), RUN_AT, AMSTERDAM)
    if target <= local:
        target = dt.datetime.combine(local.date() + dt.timedelta(days=1), RUN_AT, AMSTERDAM)
    # Aware datetimes in one zone subtract as wall clocks: compare in UTC.
    return (target.astimezone(dt.UTC) - now.astimezone(dt.UTC)).total_seconds()


def _midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), AMSTERDAM).astimezone(dt.UTC)


async def _due(rt: Runtime, after: dt.date, upto: dt.date) -> list[int]:
    """The cases to tell: their disclosure turned by the calendar in (after, upto] and no
    ``consent.changed`` was saved for them since that day's midnight. Only reads."""
    async with rt.sessionmaker() as db:
        births: dict[int, dt.date] = {}
        cases = await db.execute(
            select(Case.id, Case.birth_date_enc).where(Case.shredded_at.is_(None))
        )
        for case_id, birth_enc in cases.all():
            cipher = await rt.vault.cipher(db, case_id)
            raw = None if cipher.shredded else cipher.decrypt("case.birth_date", birth_enc)
            if raw:
                births[case_id] = dt.date.fromisoformat(raw)
        ends = await db.execute(
            select(ConsentRecord.case_id, ConsentRecord.valid_until)
            .join(Case, Case.id == ConsentRecord.case_id)
            .where(
                ConsentRecord.valid_until.is_not(None),
                ConsentRecord.valid_until >= after - dt.timedelta(days=1),
                ConsentRecord.valid_until < upto,
                ConsentRecord.withdrawn_at.is_(None),
                Case.shredded_at.is_(None),
            )
        )
        turns = disclosure_turns(
            births=births,
            record_ends=[(c, d) for c, d in ends.all() if d is not None],
            after=after,
            upto=upto,
        )
        if not turns:
            return []
        told = dict(
            (
                await db.execute(
                    select(RoomEvent.subject_id, func.max(RoomEvent.at))
                    .where(
                        RoomEvent.kind == CONSENT_CHANGED,
                        RoomEvent.subject_id.in_(turns),
                    )
                    .group_by(RoomEvent.subject_id)
                )
            ).all()
        )
    return sorted(
        case_id
        for case_id, day in turns.items()
        if (last := told.get(case_id)) is None or last < _midnight_utc(day)
    )


async def tell_screens(rt: Runtime, *, day: dt.date, after: dt.date) -> list[int]:
    """Save ``consent.changed`` in every room of each case whose disclosure the calendar
    changed after ``after`` up to ``day`` and whose screens were not told since; the running
    app's hub draws its open screens at once, a reconnecting screen replays it. Returns the
    case ids told."""
    due = await _due(rt, after, day)
    if due:
        async with rt.unit_of_work(SYSTEM) as uow:
            for case_id in due:
                await uow.emit_to_case(case_id, CONSENT_CHANGED)
    return due


Tell = Callable[[dt.date, dt.date], Awaitable[object]]  # (day, after)


async def run_daily(
    tell: Tell,
    *,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Catch up at start, then tell the screens shortly after each midnight, until cancelled.
    A failed run is logged and tried again a little later; the job itself never stops."""
    done = now().astimezone(AMSTERDAM).date() - dt.timedelta(days=CATCH_UP_DAYS)
    while True:
        day = now().astimezone(AMSTERDAM).date()
        if day > done:
            try:
                await tell(day, done)
            except Exception:  # the app keeps running; the next attempt catches up
                log.exception("consent: telling screens about %s failed", day)
                await sleep(RETRY_SECONDS)
                continue
            done = day
        await sleep(seconds_until_next_run(now()))


def start(rt: Runtime) -> asyncio.Task[None]:
    """Start the daily job in the running event loop (the app's lifespan cancels it)."""

    async def tell(day: dt.date, after: dt.date) -> None:
        told = await tell_screens(rt, day=day, after=after)
        if told:
            log.info("consent: screens of %d case(s) redrawn for %s", len(told), day)

    return asyncio.create_task(run_daily(tell), name="consent-daily")
