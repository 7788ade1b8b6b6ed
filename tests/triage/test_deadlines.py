"""Deadlines as data: working days with Dutch holidays, month ends, the 9-month review, the
RET triggers and the consent renewal around a 12th or 16th birthday."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keerpunt.consent.service import age_on
from keerpunt.triage.deadlines import (
    CaseFacts,
    DatedStep,
    DeadlineRules,
    Holiday,
    add_months,
    add_working_days,
    birthday,
    deadlines,
    easter,
    holidays_in,
    is_working_day,
)
from keerpunt.triage.lifecycle import Status

D = dt.date
S = Status


@pytest.mark.parametrize(
    ("year", "sunday"),
    [(2024, D(2024, 3, 31)), (2025, D(2025, 4, 20)), (2026, D(2026, 4, 5)), (2027, D(2027, 3, 28))],
)
def test_easter(year: int, sunday: dt.date) -> None:
    assert easter(year) == sunday


def test_dutch_holidays_2026_and_koningsdag_on_a_sunday() -> None:
    assert holidays_in(2026) == {
        D(2026, 1, 1): "Nieuwjaarsdag",
        D(2026, 4, 6): "Tweede Paasdag",
        D(2026, 4, 27): "Koningsdag",
        D(2026, 5, 5): "Bevrijdingsdag",
        D(2026, 5, 14): "Hemelvaartsdag",
        D(2026, 5, 25): "Tweede Pinksterdag",
        D(2026, 12, 25): "Eerste Kerstdag",
        D(2026, 12, 26): "Tweede Kerstdag",
    }
    assert D(2025, 4, 26) in holidays_in(2025)  # 27 April 2025 was a Sunday
    assert D(2025, 4, 27) not in holidays_in(2025)


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (D(2026, 11, 23), 5, D(2026, 11, 30)),  # Monday: the next Monday
        (D(2026, 11, 27), 5, D(2026, 12, 4)),  # Friday: over the weekend
        (D(2026, 11, 28), 5, D(2026, 12, 4)),  # Saturday counts from Monday
        (D(2026, 12, 22), 5, D(2026, 12, 30)),  # Christmas (Fri 25, Sat 26) skipped
        (D(2026, 12, 29), 5, D(2027, 1, 6)),  # over New Year
        (D(2026, 4, 2), 5, D(2026, 4, 10)),  # Easter Monday 6 April skipped
        (D(2026, 4, 24), 5, D(2026, 5, 4)),  # Koningsdag Mon 27 April skipped
        (D(2026, 5, 11), 5, D(2026, 5, 19)),  # Ascension Thu 14 May skipped
        (D(2026, 1, 30), 5, D(2026, 2, 6)),  # month end
        (D(2026, 11, 23), 0, D(2026, 11, 23)),
    ],
)
def test_working_days(start: dt.date, days: int, due: dt.date) -> None:
    assert add_working_days(start, days) == due


def test_holidays_are_data_a_region_can_change() -> None:
    good_friday = (*DeadlineRules().holidays, Holiday("Goede Vrijdag", easter_offset=-2))
    assert is_working_day(D(2026, 4, 3))
    assert not is_working_day(D(2026, 4, 3), good_friday)
    assert add_working_days(D(2026, 4, 2), 1, good_friday) == D(2026, 4, 7)


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (D(2026, 1, 31), 1, D(2026, 2, 28)),
        (D(2027, 5, 31), 9, D(2028, 2, 29)),  # leap year
        (D(2026, 3, 15), 9, D(2026, 12, 15)),
        (D(2026, 5, 31), 9, D(2027, 2, 28)),
        (D(2026, 12, 1), 1, D(2027, 1, 1)),
    ],
)
def test_add_months_keeps_the_day_or_takes_the_month_end(
    start: dt.date, months: int, end: dt.date
) -> None:
    assert add_months(start, months) == end


@given(st.dates(D(1990, 1, 1), D(2030, 12, 31)), st.sampled_from([12, 16]))
def test_birthday_agrees_with_how_consent_counts_age(birth: dt.date, age: int) -> None:
    day = birthday(birth, age)
    assert age_on(birth, day) == age
    assert age_on(birth, day - dt.timedelta(days=1)) == age - 1


def test_birthday_on_29_february() -> None:
    assert birthday(D(2012, 2, 29), 13) == D(2025, 3, 1)
    assert birthday(D(2012, 2, 29), 12) == D(2024, 2, 29)


TODAY = D(2026, 11, 24)


def _kinds(facts: CaseFacts, today: dt.date = TODAY) -> list[tuple[str, dt.date]]:
    return [(d.kind, d.due) for d in deadlines(facts, today)]


def test_ret_trigger_after_4_weeks_at_the_tables() -> None:
    facts = CaseFacts(registered_on=D(2026, 10, 30), status=S.SCHEDULED)
    [d] = deadlines(facts, TODAY)
    assert (d.kind, d.due, d.warn_from) == ("ret_tables", D(2026, 11, 27), D(2026, 11, 20))
    assert not d.overdue(TODAY) and d.days_left(TODAY) == 3
    assert d.overdue(D(2026, 11, 28))


def test_care_starts_within_5_working_days_of_the_allocation() -> None:
    steps = (
        DatedStep(S.REGISTERED, S.SCHEDULED, D(2026, 12, 1)),
        DatedStep(S.SCHEDULED, S.IN_TRIAGE, D(2026, 12, 15)),
        DatedStep(S.IN_TRIAGE, S.ARRANGEMENT_AGREED, D(2026, 12, 22)),
    )
    facts = CaseFacts(D(2026, 12, 1), S.ARRANGEMENT_AGREED, steps)
    assert _kinds(facts) == [("care_start", D(2026, 12, 30))]


def test_the_ret_allocation_also_starts_the_5_days() -> None:
    steps = (
        DatedStep(S.REGISTERED, S.RET, D(2026, 11, 2)),
        DatedStep(S.RET, S.ARRANGEMENT_AGREED, D(2026, 11, 20)),  # a Friday
    )
    assert _kinds(CaseFacts(D(2026, 11, 1), S.ARRANGEMENT_AGREED, steps)) == [
        ("care_start", D(2026, 11, 27))
    ]


def test_review_after_9_months_and_after_an_extension() -> None:
    running = (
        DatedStep(S.IN_TRIAGE, S.ARRANGEMENT_AGREED, D(2026, 5, 26)),
        DatedStep(S.ARRANGEMENT_AGREED, S.RUNNING, D(2026, 5, 31)),
    )
    assert _kinds(CaseFacts(D(2026, 5, 1), S.RUNNING, running)) == [("review", D(2027, 2, 28))]
    extended = (*running, DatedStep(S.RUNNING, S.EXTENDED, D(2027, 2, 26)))
    assert _kinds(CaseFacts(D(2026, 5, 1), S.EXTENDED, extended)) == [
        ("extension_review", D(2027, 5, 26))
    ]


def test_a_crisis_placement_goes_to_the_ret_after_28_days() -> None:
    steps = (DatedStep(S.RUNNING, S.CRISIS_PAUSE, D(2026, 11, 1)),)
    [d] = deadlines(CaseFacts(D(2026, 3, 1), S.CRISIS_PAUSE, steps), TODAY)
    assert (d.kind, d.due, d.overdue(D(2026, 11, 30))) == ("ret_crisis", D(2026, 11, 29), True)


def test_a_closed_case_has_no_deadlines() -> None:
    assert deadlines(CaseFacts(D(2026, 1, 1), S.CLOSED, birth_date=D(2014, 12, 1)), TODAY) == []


def test_consent_renewal_before_the_next_session_after_a_12th_birthday() -> None:
    facts = CaseFacts(
        D(2026, 10, 1),
        S.SCHEDULED,
        birth_date=D(2014, 12, 10),
        sessions=(D(2026, 12, 1), D(2026, 12, 15)),
    )
    found = {d.kind: d for d in deadlines(facts, TODAY)}
    consent = found["consent"]
    assert (consent.due, consent.since, consent.params) == (
        D(2026, 12, 15),
        D(2026, 12, 10),
        {"age": 12},
    )
    # No session planned after the birthday: the birthday itself.
    alone = CaseFacts(D(2026, 10, 1), S.RUNNING, birth_date=D(2010, 12, 31))
    assert [(d.due, d.params) for d in deadlines(alone, TODAY) if d.kind == "consent"] == [
        (D(2026, 12, 31), {"age": 16})
    ]


@pytest.mark.parametrize(
    ("birth", "consents", "shown"),
    [
        (D(2014, 9, 1), (), False),  # turned 12 before registration: consent already asked
        (D(2014, 12, 10), (D(2026, 11, 11),), True),  # consent too early (before the 4 weeks)
        (D(2014, 12, 10), (D(2026, 11, 12),), False),  # 28 days before: counts
        (D(2014, 12, 10), (D(2026, 11, 20),), False),
        (D(2015, 12, 10), (), False),  # 12th birthday more than a year ahead
        (D(2019, 1, 1), (), False),  # 7 years old: nothing in the case
        (D(2010, 11, 24), (), True),  # 16 today, registered before: renewal due today
    ],
)
def test_consent_renewal_edges(birth: dt.date, consents: tuple[dt.date, ...], shown: bool) -> None:
    facts = CaseFacts(D(2026, 10, 1), S.RUNNING, birth_date=birth, consents_on=consents)
    assert any(d.kind == "consent" for d in deadlines(facts, TODAY)) is shown
