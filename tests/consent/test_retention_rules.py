"""Retention rules (bewaren en vernietigen, seed 003 §5.4) as a table: no database needed."""

from __future__ import annotations

import datetime as dt

import pytest

from keerpunt.consent.retention import (
    RetentionPolicy,
    ShredReason,
    kpi_expired,
    kpi_keep_until,
    month_of,
    shred_due,
)

D = dt.date
POLICY = RetentionPolicy(days_after_close=90, pilot_end=D(2024, 12, 31), kpi_months=24)
NO_PILOT_END = RetentionPolicy(days_after_close=90, pilot_end=None, kpi_months=24)


@pytest.mark.parametrize(
    ("closed_on", "shredded", "today", "policy", "expected"),
    [
        # an open case keeps its data while the pilot runs
        (None, False, D(2024, 6, 1), POLICY, None),
        (None, False, D(2030, 1, 1), NO_PILOT_END, None),
        # just closed: the retention period has only started
        (D(2024, 6, 1), False, D(2024, 6, 1), POLICY, None),
        # the period boundary: day 89 keeps, day 90 shreds, later shreds too
        (D(2024, 6, 1), False, D(2024, 8, 29), POLICY, None),
        (D(2024, 6, 1), False, D(2024, 8, 30), POLICY, ShredReason.CASE_CLOSED),
        (D(2024, 6, 1), False, D(2024, 10, 1), POLICY, ShredReason.CASE_CLOSED),
        # the pilot's last day still keeps; the day after, every case goes, open or closed
        (None, False, D(2024, 12, 31), POLICY, None),
        (None, False, D(2025, 1, 1), POLICY, ShredReason.PILOT_ENDED),
        (D(2024, 12, 1), False, D(2025, 1, 1), POLICY, ShredReason.PILOT_ENDED),
        # both apply: the case's own end is the reason given
        (D(2024, 6, 1), False, D(2025, 1, 1), POLICY, ShredReason.CASE_CLOSED),
        # already shredded: nothing more to do, whatever the dates
        (D(2024, 6, 1), True, D(2025, 1, 1), POLICY, None),
        (None, True, D(2025, 1, 1), POLICY, None),
        # a zero-day period shreds on the closing day itself
        (
            D(2024, 6, 1),
            False,
            D(2024, 6, 1),
            RetentionPolicy(0, None, 24),
            ShredReason.CASE_CLOSED,
        ),
    ],
)
def test_when_personal_data_is_shredded(
    closed_on: dt.date | None,
    shredded: bool,
    today: dt.date,
    policy: RetentionPolicy,
    expected: ShredReason | None,
) -> None:
    assert shred_due(closed_on=closed_on, shredded=shredded, today=today, policy=policy) == expected


@pytest.mark.parametrize(
    ("shredded_on", "months", "keep_until"),
    [
        (D(2025, 3, 15), 24, D(2027, 3, 31)),  # at least two years, to the end of that month
        (D(2025, 3, 1), 24, D(2027, 3, 31)),
        (D(2024, 2, 29), 24, D(2026, 2, 28)),  # leap day
        (D(2025, 12, 31), 1, D(2026, 1, 31)),  # across a year
        (D(2025, 1, 31), 1, D(2025, 2, 28)),
    ],
)
def test_kpi_rows_are_kept_two_years_to_the_month(
    shredded_on: dt.date, months: int, keep_until: dt.date
) -> None:
    assert kpi_keep_until(shredded_on, RetentionPolicy(90, None, months)) == keep_until


@pytest.mark.parametrize(
    ("keep_until", "today", "expired"),
    [
        (D(2027, 3, 31), D(2027, 3, 30), False),
        (D(2027, 3, 31), D(2027, 3, 31), False),  # the last day it is kept
        (D(2027, 3, 31), D(2027, 4, 1), True),
        (D(2027, 3, 31), D(2030, 1, 1), True),
    ],
)
def test_kpi_expiry(keep_until: dt.date, today: dt.date, expired: bool) -> None:
    assert kpi_expired(keep_until, today) is expired


def test_dates_in_kpi_rows_are_coarsened_to_the_month() -> None:
    assert month_of(D(2025, 3, 17)) == D(2025, 3, 1)
    assert month_of(None) is None
