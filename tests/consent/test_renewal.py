"""A 12th or 16th birthday during the case calls for new consent before the next session."""

from __future__ import annotations

import datetime as dt

import pytest

from keerpunt.consent.rules import Consenter, LegalBasis, birthday, renewal_due

D = dt.date
FAMILY = [Consenter(1, "youth"), Consenter(2, "parent"), Consenter(3, "parent")]


@pytest.mark.parametrize(
    ("birth", "age", "day"),
    [
        (D(2014, 5, 10), 12, D(2026, 5, 10)),
        (D(2012, 2, 29), 12, D(2024, 2, 29)),  # leap year: the 29th itself
        (D(2088, 2, 29), 12, D(2100, 3, 1)),  # 2100 is no leap year: 1 March
        (D(2010, 12, 31), 16, D(2026, 12, 31)),
    ],
)
def test_birthday(birth: dt.date, age: int, day: dt.date) -> None:
    assert birthday(birth, age) == day


def due(
    birth: dt.date,
    started: dt.date,
    today: dt.date,
    next_session: dt.date | None,
    decided: list[tuple[int, dt.date]] | None = None,
    basis: LegalBasis = LegalBasis.CONSENT,
) -> tuple[int, dt.date] | None:
    task = renewal_due(
        birth=birth,
        case_started_on=started,
        today=today,
        next_session_on=next_session,
        consenters=FAMILY,
        decided_on=decided or [],
        basis=basis,
    )
    return (task.age, task.birthday) if task else None


BIRTH = D(2014, 5, 10)  # 12 on 10 May 2026


@pytest.mark.parametrize(
    ("started", "today", "next_session", "expected"),
    [
        # the birthday falls before the next session: a task now, before it happens
        (D(2026, 4, 1), D(2026, 5, 1), D(2026, 5, 11), (12, D(2026, 5, 10))),
        # the session is on the birthday itself: age on the day of processing is 12
        (D(2026, 4, 1), D(2026, 5, 1), D(2026, 5, 10), (12, D(2026, 5, 10))),
        # the session is the day before the birthday: not yet
        (D(2026, 4, 1), D(2026, 5, 1), D(2026, 5, 9), None),
        # no session planned: due once the birthday has come
        (D(2026, 4, 1), D(2026, 5, 9), None, None),
        (D(2026, 4, 1), D(2026, 5, 10), None, (12, D(2026, 5, 10))),
        # the case began on the birthday: consent was asked at that age already
        (D(2026, 5, 10), D(2026, 5, 12), D(2026, 6, 1), None),
        (D(2026, 5, 9), D(2026, 5, 12), D(2026, 6, 1), (12, D(2026, 5, 10))),
        # a session in the past does not hide a birthday that has come
        (D(2026, 4, 1), D(2026, 5, 20), D(2026, 5, 2), (12, D(2026, 5, 10))),
    ],
)
def test_a_12th_birthday_during_the_case(
    started: dt.date, today: dt.date, next_session: dt.date | None, expected: object
) -> None:
    assert due(BIRTH, started, today, next_session) == expected


def test_a_16th_birthday_during_the_case() -> None:
    birth = D(2010, 5, 10)
    assert due(birth, D(2026, 1, 5), D(2026, 5, 1), D(2026, 5, 10)) == (16, D(2026, 5, 10))
    assert due(birth, D(2026, 1, 5), D(2026, 5, 1), D(2026, 5, 9)) is None


def test_a_leap_day_child_turns_twelve_on_29_february() -> None:
    birth = D(2012, 2, 29)
    assert due(birth, D(2024, 1, 5), D(2024, 2, 1), D(2024, 2, 28)) is None
    assert due(birth, D(2024, 1, 5), D(2024, 2, 1), D(2024, 2, 29)) == (12, D(2024, 2, 29))


def test_only_the_latest_birthday_counts_in_a_long_case() -> None:
    birth = D(2010, 5, 10)  # 12 in 2022, 16 in 2026
    assert due(birth, D(2021, 1, 1), D(2026, 6, 1), None) == (16, D(2026, 5, 10))


@pytest.mark.parametrize(
    ("decided", "expected"),
    [
        ([], (12, D(2026, 5, 10))),
        ([(1, D(2026, 5, 10))], (12, D(2026, 5, 10))),  # the youth, but not the parents yet
        ([(1, D(2026, 5, 10)), (2, D(2026, 5, 11))], (12, D(2026, 5, 10))),  # one parent
        ([(1, D(2026, 5, 10)), (2, D(2026, 5, 11)), (3, D(2026, 5, 11))], None),  # renewed
        ([(1, D(2026, 5, 9)), (2, D(2026, 5, 11)), (3, D(2026, 5, 11))], (12, D(2026, 5, 10))),
    ],
)
def test_renewed_when_everyone_now_required_decided_on_or_after_the_birthday(
    decided: list[tuple[int, dt.date]], expected: object
) -> None:
    assert due(BIRTH, D(2026, 4, 1), D(2026, 5, 12), None, decided) == expected


def test_at_16_only_the_youth_needs_to_renew() -> None:
    birth = D(2010, 5, 10)
    assert due(birth, D(2026, 1, 5), D(2026, 5, 12), None, [(1, D(2026, 5, 11))]) is None
    assert due(birth, D(2026, 1, 5), D(2026, 5, 12), None, [(2, D(2026, 5, 11))]) == (
        16,
        D(2026, 5, 10),
    )


@pytest.mark.parametrize(
    "basis",
    [LegalBasis.CHILD_PROTECTION_ORDER, LegalBasis.SECURE_CARE, LegalBasis.JUVENILE_PROBATION],
)
def test_no_renewal_under_a_legal_order(basis: LegalBasis) -> None:
    assert due(BIRTH, D(2026, 4, 1), D(2026, 5, 12), None, basis=basis) is None
