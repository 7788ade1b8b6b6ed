"""Triage-team time: hours × discipline rate, per line, against the year's budget."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from keerpunt.settlement.triage_hours import (
    DISCIPLINE_RATES,
    TRIAGE_BUDGETS,
    DisciplineRate,
    TriageBudget,
    budget_for,
    budget_status,
    line_amount,
    price_team_time,
    rate_on,
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
    rate = rate_on(DISCIPLINE_RATES, discipline, DAY)
    assert rate is not None and rate.cents_per_hour == cents


def test_social_domain_has_no_rate_yet() -> None:
    assert rate_on(DISCIPLINE_RATES, "sociaal_domein", DAY) is None


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
    result = price_team_time(lines)
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
    result = price_team_time(lines)
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
    result = price_team_time([Line(3, "Tactus", "sociaal_domein", 120)])
    assert result.amount_cents == 0
    assert result.minutes == 120
    (problem,) = result.unpriced
    assert (problem.provider_name, problem.discipline, problem.minutes) == (
        "Tactus",
        "sociaal_domein",
        120,
    )


@pytest.mark.parametrize(
    ("region", "year", "expected"),
    [
        ("IJsselland", 2026, 110_000_00),
        ("ijsselland ", 2026, 110_000_00),
        ("IJsselland", 2030, None),
        ("Rijnmond", 2026, None),
        (None, 2026, None),
    ],
)
def test_budget_per_region_and_year(region: str | None, year: int, expected: int | None) -> None:
    budget = budget_for(TRIAGE_BUDGETS, region, year)
    assert (budget.cents if budget else None) == expected


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
