"""Triage-team time: hours × discipline rate, per line, against the year's budget."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from keerpunt.platform.errors import InvalidInput
from keerpunt.settlement.triage_hours import (
    PILOT_RATES,
    RATE_IN_CLOSED,
    RATE_OVERLAP,
    RATE_USED_IN_CLOSED,
    YEAR_CLOSED,
    BudgetDraft,
    DisciplineRate,
    TriageBudget,
    budget_status,
    check_budget_year,
    line_amount,
    plan_new_rate,
    plan_rate_removal,
    price_team_time,
    rate_on,
    read_budget_form,
    read_rate_form,
)

DAY = dt.date(2026, 8, 12)


@dataclass(frozen=True)
class Line:
    provider_id: int
    provider_name: str
    discipline: str
    minutes: int
    day: dt.date = DAY


@pytest.mark.parametrize(
    ("discipline", "cents"),
    [
        ("ervaringsdeskundige", 75_00),
        ("onderwijsconsulent", 100_00),
        ("regiebehandelaar", 140_00),
        ("systeembehandelaar", 120_00),
        ("gezinsbehandelaar", 120_00),
        ("gedragswetenschapper", 120_00),
    ],
)
def test_the_rates_of_the_domain_brief(discipline: str, cents: int) -> None:
    rate = rate_on(PILOT_RATES, discipline, DAY)
    assert rate is not None and rate.cents_per_hour == cents


def test_social_domain_has_no_rate_yet() -> None:
    assert rate_on(PILOT_RATES, "sociaal_domein", DAY) is None


@pytest.mark.parametrize(
    ("minutes", "cents_per_hour", "expected"),
    [
        (240, 140_00, 560_00),  # 4 hours regiebehandelaar
        (90, 75_00, 112_50),
        (1, 100_00, 167),  # 166.67 -> 167
        (1, 75_00, 125),  # exactly 125
        (1, 130, 2),  # 2.1666 -> 2
        (3, 10, 1),  # 0.5 -> 1: half away from zero
        (9, 10, 2),  # 1.5 -> 2
        (0, 140_00, 0),
    ],
)
def test_line_amount_rounds_half_away_from_zero_once(
    minutes: int, cents_per_hour: int, expected: int
) -> None:
    assert line_amount(minutes, cents_per_hour) == expected


def test_indexation_applies_by_the_session_date() -> None:
    rates = (
        DisciplineRate("regiebehandelaar", 140_00, dt.date(2023, 1, 1), dt.date(2026, 6, 30)),
        DisciplineRate("regiebehandelaar", 145_00, dt.date(2026, 7, 1)),
    )
    lines = [
        Line(1, "Accare", "regiebehandelaar", 60, dt.date(2026, 6, 30)),
        Line(1, "Accare", "regiebehandelaar", 60, dt.date(2026, 7, 1)),
    ]
    result = price_team_time(lines, rates)
    (provider,) = result.providers
    assert [(d.cents_per_hour, d.amount_cents) for d in provider.disciplines] == [
        (140_00, 140_00),
        (145_00, 145_00),
    ]
    assert result.amount_cents == 285_00


def test_totals_are_sums_of_rounded_lines() -> None:
    # three lines of one minute at € 100: 3 × 167 = 501, not round(3 × 166,67) = 500
    lines = [Line(1, "Pluryn", "onderwijsconsulent", 1) for _ in range(3)]
    result = price_team_time(lines, PILOT_RATES)
    assert result.amount_cents == 501
    (provider,) = result.providers
    assert provider.disciplines[0].minutes == 3
    assert provider.disciplines[0].lines == 3


def test_grouped_per_provider_and_discipline_sorted_by_name() -> None:
    lines = [
        Line(2, "Trias", "gezinsbehandelaar", 240),
        Line(1, "accare", "regiebehandelaar", 240),
        Line(1, "accare", "ervaringsdeskundige", 180),
        Line(1, "accare", "regiebehandelaar", 120),
        Line(2, "Trias", "gezinsbehandelaar", 0),  # absent: nothing to pay
    ]
    result = price_team_time(lines, PILOT_RATES)
    assert [p.provider_name for p in result.providers] == ["accare", "Trias"]
    accare = result.providers[0]
    assert [(d.discipline, d.minutes, d.amount_cents) for d in accare.disciplines] == [
        ("ervaringsdeskundige", 180, 225_00),
        ("regiebehandelaar", 360, 840_00),
    ]
    assert result.providers[1].amount_cents == 480_00
    assert result.minutes == 780
    assert result.minutes_by_discipline() == {
        "ervaringsdeskundige": 180,
        "gezinsbehandelaar": 240,
        "regiebehandelaar": 360,
    }


def test_time_without_a_rate_is_listed_and_costs_nothing() -> None:
    result = price_team_time([Line(3, "Tactus", "sociaal_domein", 120)], PILOT_RATES)
    assert result.amount_cents == 0
    assert result.minutes == 120
    (problem,) = result.unpriced
    assert (problem.provider_name, problem.discipline, problem.minutes) == (
        "Tactus",
        "sociaal_domein",
        120,
    )


@pytest.mark.parametrize(
    ("budget", "used", "left", "percent", "over"),
    [
        (110_000_00, 27_500_00, 82_500_00, 25, False),
        (110_000_00, 110_000_00, 0, 100, False),
        (110_000_00, 120_000_00, -10_000_00, 109, True),
        (200, 1, 199, 1, False),  # 0.5 % -> 1 %
        (None, 5_00, None, None, False),
    ],
)
def test_budget_used_and_left(
    budget: int | None, used: int, left: int | None, percent: int | None, over: bool
) -> None:
    status = budget_status(None if budget is None else TriageBudget("X", 2026, budget), used)
    assert status.left_cents == left
    assert status.used_percent == percent
    assert status.over is over


# ---- keeping rates: a new rate from a date (indexering) ----

D = dt.date
REGIE = DisciplineRate("regiebehandelaar", 140_00, D(2023, 1, 1), id=1)
SYSTEEM = DisciplineRate("systeembehandelaar", 120_00, D(2023, 1, 1), id=2)


def test_a_new_rate_from_a_date_ends_the_running_one_the_day_before() -> None:
    new = DisciplineRate("regiebehandelaar", 145_00, D(2027, 1, 1))
    change = plan_new_rate([REGIE, SYSTEEM], new, closed_until=D(2026, 9, 30))
    assert change.new == new
    assert change.ends == REGIE  # the other discipline is left alone
    # hours before the date keep the old rate, hours from the date get the new one
    after = [
        DisciplineRate(REGIE.discipline, REGIE.cents_per_hour, REGIE.valid_from, D(2026, 12, 31)),
        new,
    ]
    assert [
        rate_on(after, "regiebehandelaar", day) for day in (D(2026, 12, 31), D(2027, 1, 1))
    ] == after


def test_a_first_rate_for_a_discipline_without_one() -> None:
    new = DisciplineRate("sociaal_domein", 90_00, D(2027, 1, 1))
    assert plan_new_rate([REGIE], new, None).ends is None


@pytest.mark.parametrize(
    "new",
    [
        # the same first day as the running rate: that would be an edit, not a new period
        DisciplineRate("regiebehandelaar", 150_00, D(2023, 1, 1)),
        # before a rate that is already planned
        DisciplineRate("regiebehandelaar", 150_00, D(2027, 3, 1)),
        # a closed period that reaches into the planned one
        DisciplineRate("regiebehandelaar", 150_00, D(2026, 12, 1), D(2027, 7, 1)),
    ],
)
def test_overlapping_periods_are_refused(new: DisciplineRate) -> None:
    planned = [
        DisciplineRate("regiebehandelaar", 140_00, D(2023, 1, 1), D(2027, 5, 31), id=1),
        DisciplineRate("regiebehandelaar", 148_00, D(2027, 6, 1), id=3),
    ]
    with pytest.raises(InvalidInput) as exc:
        plan_new_rate(planned, new, None)
    assert exc.value.errors == {"valid_from": RATE_OVERLAP}


def test_a_gap_between_rates_may_be_filled() -> None:
    rates = [
        DisciplineRate("regiebehandelaar", 140_00, D(2023, 1, 1), D(2026, 12, 31), id=1),
        DisciplineRate("regiebehandelaar", 148_00, D(2027, 6, 1), id=3),
    ]
    new = DisciplineRate("regiebehandelaar", 145_00, D(2027, 1, 1), D(2027, 5, 31))
    assert plan_new_rate(rates, new, None).ends is None


@pytest.mark.parametrize(
    ("valid_from", "refused"),
    [(D(2026, 9, 30), True), (D(2026, 7, 1), True), (D(2026, 10, 1), False)],
)
def test_a_rate_may_not_start_in_a_closed_quarter(valid_from: dt.date, refused: bool) -> None:
    """Closed quarters are priced as they were settled: a later rate never reaches back."""
    new = DisciplineRate("regiebehandelaar", 150_00, valid_from)
    if refused:
        with pytest.raises(InvalidInput) as exc:
            plan_new_rate([REGIE], new, closed_until=D(2026, 9, 30))
        assert exc.value.errors == {"valid_from": RATE_IN_CLOSED}
    else:
        assert plan_new_rate([REGIE], new, closed_until=D(2026, 9, 30)).ends == REGIE


def test_a_wrong_rate_is_removed_and_the_one_before_runs_on() -> None:
    old = DisciplineRate("regiebehandelaar", 140_00, D(2023, 1, 1), D(2026, 12, 31), id=1)
    typo = DisciplineRate("regiebehandelaar", 1450_00, D(2027, 1, 1), id=2)
    other = DisciplineRate("systeembehandelaar", 120_00, D(2023, 1, 1), D(2026, 12, 31), id=3)
    removal = plan_rate_removal([old, typo, other], typo, closed_until=D(2026, 9, 30))
    assert removal.runs_on == old  # and gets the typo's last day: none
    # a rate after a gap leaves the one before alone
    later = DisciplineRate("regiebehandelaar", 150_00, D(2027, 3, 1), id=4)
    assert plan_rate_removal([old, later], later, None).runs_on is None


def test_a_rate_used_in_a_closed_quarter_stays() -> None:
    with pytest.raises(InvalidInput) as exc:
        plan_rate_removal([REGIE], REGIE, closed_until=D(2026, 9, 30))
    assert exc.value.errors == {"remove": RATE_USED_IN_CLOSED}


@pytest.mark.parametrize(
    ("year", "closed_until", "refused"),
    [
        (2026, D(2026, 9, 30), False),  # Q4 is still open
        (2026, D(2026, 12, 31), True),
        (2025, D(2026, 3, 31), True),
        (2028, D(2026, 12, 31), False),
        (2026, None, False),
    ],
)
def test_a_years_budget_stands_once_the_whole_year_is_closed(
    year: int, closed_until: dt.date | None, refused: bool
) -> None:
    if refused:
        with pytest.raises(InvalidInput) as exc:
            check_budget_year(year, closed_until)
        assert exc.value.errors == {"year": YEAR_CLOSED}
    else:
        check_budget_year(year, closed_until)


# ---- reading the forms ----


@pytest.mark.parametrize(
    ("typed", "cents"),
    [("120,00", 120_00), ("120", 120_00), ("€ 87,5", 87_50), ("1.234,56", 1_234_56), ("0", 0)],
)
def test_rate_in_euros_with_a_comma(typed: str, cents: int) -> None:
    rate = read_rate_form(
        {"discipline": "regiebehandelaar", "rate": typed, "valid_from": "2027-01-01"}
    )
    assert rate == DisciplineRate("regiebehandelaar", cents, D(2027, 1, 1), None)


def test_dutch_date_is_read_too() -> None:
    rate = read_rate_form(
        {
            "discipline": "ervaringsdeskundige",
            "rate": "80",
            "valid_from": "1-1-2027",
            "valid_to": "31-12-2027",
        }
    )
    assert (rate.valid_from, rate.valid_to) == (D(2027, 1, 1), D(2027, 12, 31))


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        (
            {"discipline": "", "rate": "", "valid_from": ""},
            {
                "discipline": "Kies een discipline.",
                "rate": "Vul een bedrag in euro's in, zoals 120,00.",
                "valid_from": "Vul een datum in, bijvoorbeeld 1-1-2026.",
            },
        ),
        (
            {"discipline": "kok", "rate": "-120,00", "valid_from": "2027-02-30"},
            {
                "discipline": "Kies een discipline.",
                "rate": "Een bedrag kan niet negatief zijn. Vul een bedrag in zoals 120,00.",
                "valid_from": "Vul een datum in, bijvoorbeeld 1-1-2026.",
            },
        ),
        (
            {
                "discipline": "regiebehandelaar",
                "rate": "120,001",
                "valid_from": "2027-01-01",
                "valid_to": "2026-12-31",
            },
            {
                "rate": "Vul een bedrag in euro's in, zoals 120,00.",
                "valid_to": "De einddatum ligt vóór de begindatum.",
            },
        ),
        (
            {"discipline": "regiebehandelaar", "rate": "2.000.000,00", "valid_from": "2027-01-01"},
            {"rate": "Dit bedrag is te hoog. Kijk of het goed is ingevuld."},
        ),
    ],
)
def test_bad_rate_input_names_every_field(form: dict[str, str], errors: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as exc:
        read_rate_form(form)
    assert exc.value.errors == errors


def test_budget_form() -> None:
    assert read_budget_form({"year": "2028", "budget": "110.000,00"}) == BudgetDraft(
        2028, 110_000_00
    )
    with pytest.raises(InvalidInput) as exc:
        read_budget_form({"year": "28", "budget": "-5"})
    assert exc.value.errors == {
        "year": "Vul een jaartal in, bijvoorbeeld 2028.",
        "budget": "Een bedrag kan niet negatief zijn. Vul een bedrag in zoals 120,00.",
    }
