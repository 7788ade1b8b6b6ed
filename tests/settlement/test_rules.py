"""The pure rules of settlement: quarters, rounding, pricing a line over a quarter (no database)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keerpunt.platform.errors import InvalidInput
from keerpunt.settlement.rules import (
    ContractTerms,
    DateRange,
    InvalidAmount,
    InvalidQuarter,
    ProblemKind,
    ProviderInfo,
    Quarter,
    UnpriceableUnit,
    assemble_overview,
    find_overlap,
    parse_euros,
    parse_quarter,
    price_line,
    quarter_of,
    read_contract_form,
    round_half_away_from_zero,
)

D = dt.date
START_2026, END_2026, LONG_AGO = D(2026, 1, 1), D(2026, 12, 31), D(2020, 1, 1)


@dataclass(frozen=True)
class Line:
    """Stands in for triage's FixedArrangementLine."""

    provider_id: int = 1
    product_code: str = "45A52"
    minutes_per_week: int = 120
    start_date: dt.date = START_2026
    end_date: dt.date = END_2026
    line_id: int = 1
    case_id: int = 1
    case_pseudonym: str = "Casus-Ooievaar"
    session_id: int = 1
    help_form: str = "ambulant"


def hourly(
    tariff_cents: int,
    valid_from: dt.date = LONG_AGO,
    valid_to: dt.date | None = None,
    *,
    provider_id: int = 1,
    product_code: str = "45A52",
    unit: str = "04",
) -> ContractTerms:
    return ContractTerms(
        provider_id=provider_id,
        product_code=product_code,
        unit=unit,
        tariff_cents=tariff_cents,
        valid_from=valid_from,
        valid_to=valid_to,
        description="Ambulante jeugdhulp",
    )


Q3_2026 = parse_quarter("2026Q3")

# ---- quarters ----


@pytest.mark.parametrize(
    ("text", "year", "q", "start", "end"),
    [
        ("2026Q3", 2026, 3, D(2026, 7, 1), D(2026, 9, 30)),
        ("2026K3", 2026, 3, D(2026, 7, 1), D(2026, 9, 30)),
        ("2026k1", 2026, 1, D(2026, 1, 1), D(2026, 3, 31)),
        (" 2026-q2 ", 2026, 2, D(2026, 4, 1), D(2026, 6, 30)),
        ("2026 K4", 2026, 4, D(2026, 10, 1), D(2026, 12, 31)),
        ("2024Q1", 2024, 1, D(2024, 1, 1), D(2024, 3, 31)),
    ],
)
def test_parse_quarter(text: str, year: int, q: int, start: dt.date, end: dt.date) -> None:
    quarter = parse_quarter(text)
    assert quarter == Quarter(year, q, start, end)
    assert quarter.code == f"{year}Q{q}"


@pytest.mark.parametrize("text", ["", "2026", "2026Q0", "2026Q5", "Q3 2026", "26Q3", "2026Q3x"])
def test_bad_quarter_is_refused_in_dutch(text: str) -> None:
    with pytest.raises(InvalidQuarter) as info:
        parse_quarter(text)
    assert info.value.message == "Kies een kwartaal zoals 2026K3."


@pytest.mark.parametrize(
    ("day", "code"),
    [
        (D(2026, 1, 1), "2026Q1"),
        (D(2026, 3, 31), "2026Q1"),
        (D(2026, 4, 1), "2026Q2"),
        (D(2026, 9, 30), "2026Q3"),
        (D(2026, 12, 31), "2026Q4"),
    ],
)
def test_quarter_of_a_day(day: dt.date, code: str) -> None:
    assert quarter_of(day).code == code


def test_quarters_step_over_year_ends() -> None:
    assert parse_quarter("2026Q4").next.code == "2027Q1"
    assert parse_quarter("2026Q1").previous.code == "2025Q4"


# ---- rounding ----


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        (Fraction(0), 0),
        (Fraction(1, 2), 1),
        (Fraction(-1, 2), -1),
        (Fraction(3, 2), 2),
        (Fraction(5, 2), 3),  # not banker's rounding
        (Fraction(-5, 2), -3),
        (Fraction(249, 100), 2),
        (Fraction(-249, 100), -2),
        (Fraction(251, 100), 3),
        (Fraction(1, 3), 0),
        (Fraction(2, 3), 1),
        (Fraction(-2, 3), -1),
        (Fraction(10), 10),
        (Fraction(-10), -10),
        (Fraction(499_999, 1_000_000), 0),
    ],
)
def test_round_half_away_from_zero(value: Fraction, rounded: int) -> None:
    assert round_half_away_from_zero(value) == rounded


# ---- overlap days ----


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (D(2026, 7, 1), D(2026, 9, 30), 92),  # the whole quarter
        (D(2026, 1, 1), D(2026, 12, 31), 92),
        (D(2026, 6, 30), D(2026, 7, 1), 1),  # one day in, at the start edge
        (D(2026, 9, 30), D(2026, 10, 31), 1),  # one day in, at the end edge
        (D(2026, 7, 15), D(2026, 7, 15), 1),
        (D(2026, 1, 1), D(2026, 6, 30), 0),  # ends the day before
        (D(2026, 10, 1), D(2026, 12, 31), 0),  # starts the day after
    ],
)
def test_overlap_days_at_quarter_edges(start: dt.date, end: dt.date, days: int) -> None:
    span = DateRange(start, end).clip(Q3_2026.period)
    assert (span.days if span else 0) == days


@pytest.mark.parametrize(
    ("code", "days"),
    [("2024Q1", 91), ("2025Q1", 90), ("2000Q1", 91), ("2100Q1", 90), ("2026Q2", 91)],
)
def test_quarter_length_counts_leap_days(code: str, days: int) -> None:
    assert parse_quarter(code).period.days == days


def test_leap_day_is_priced() -> None:
    # 7 minutes a week over one day (29 February) is one minute, at 100 cents a minute.
    line = Line(minutes_per_week=7, start_date=D(2024, 2, 29), end_date=D(2024, 2, 29))
    price = price_line(line, [hourly(100, unit="01")], parse_quarter("2024Q1").period)
    assert price.days == 1
    assert price.amount_cents == 100


# ---- pricing a line ----


def test_whole_quarter_at_one_tariff() -> None:
    # 2 hours a week for 92 days = 184/7 hours at € 100,00 = 2628571.43 cents
    price = price_line(Line(minutes_per_week=120), [hourly(10_000)], Q3_2026.period)
    assert price.days == 92
    assert price.exact_cents == Fraction(120 * 92, 7) / 60 * 10_000
    assert price.amount_cents == 262_857
    assert price.gaps == ()
    assert [(p.start, p.end, p.tariff_cents) for p in price.parts] == [
        (D(2026, 7, 1), D(2026, 9, 30), 10_000)
    ]


def test_minute_unit() -> None:
    price = price_line(Line(minutes_per_week=70), [hourly(150, unit="01")], Q3_2026.period)
    # 70 minutes a week × 92/7 weeks = 920 minutes at 150 cents
    assert price.parts[0].volume == 920
    assert price.amount_cents == 138_000


def test_tariff_change_mid_quarter_splits_the_line() -> None:
    contracts = [
        hourly(10_000, D(2025, 1, 1), D(2026, 8, 15)),
        hourly(10_500, D(2026, 8, 16)),  # indexation from 16 August
    ]
    price = price_line(Line(minutes_per_week=60), contracts, Q3_2026.period)
    assert [(p.start, p.end, p.days, p.tariff_cents) for p in price.parts] == [
        (D(2026, 7, 1), D(2026, 8, 15), 46, 10_000),
        (D(2026, 8, 16), D(2026, 9, 30), 46, 10_500),
    ]
    exact = Fraction(46, 7) * 10_000 + Fraction(46, 7) * 10_500
    assert price.exact_cents == exact
    # rounded once: 65714.28… + 69000 = 134714.2857… -> 134714
    assert price.amount_cents == 134_714


def test_rounding_happens_once_per_line_not_per_part() -> None:
    # 7 minutes a week is 1/60 hour a day; at 30 cents an hour each day costs exactly ½ cent.
    contracts = [hourly(30, D(2026, 1, 1), D(2026, 7, 1)), hourly(30, D(2026, 7, 2))]
    line = Line(minutes_per_week=7, start_date=D(2026, 7, 1), end_date=D(2026, 7, 2))
    price = price_line(line, contracts, Q3_2026.period)
    assert [p.exact_cents for p in price.parts] == [Fraction(1, 2), Fraction(1, 2)]
    assert price.amount_cents == 1  # not 1 + 1 from rounding each part


def test_days_without_contract_are_a_gap_and_not_priced() -> None:
    contracts = [
        hourly(10_000, D(2025, 1, 1), D(2026, 7, 31)),
        hourly(11_000, D(2026, 9, 1)),  # nothing for August
    ]
    price = price_line(Line(minutes_per_week=70), contracts, Q3_2026.period)
    assert price.gaps == (DateRange(D(2026, 8, 1), D(2026, 8, 31)),)
    assert sum(p.days for p in price.parts) == 92 - 31
    assert (
        price.exact_cents == Fraction(70 * 31, 7 * 60) * 10_000 + Fraction(70 * 30, 7 * 60) * 11_000
    )


def test_no_contract_at_all_is_one_gap() -> None:
    price = price_line(Line(), [hourly(10_000, provider_id=2)], Q3_2026.period)
    assert price.parts == ()
    assert price.gaps == (Q3_2026.period,)
    assert price.amount_cents == 0


def test_other_products_and_providers_are_ignored() -> None:
    contracts = [hourly(1, product_code="45A53"), hourly(2, provider_id=9), hourly(10_000)]
    price = price_line(Line(minutes_per_week=60), contracts, Q3_2026.period)
    assert {p.tariff_cents for p in price.parts} == {10_000}


def test_line_outside_the_quarter_costs_nothing() -> None:
    line = Line(start_date=D(2026, 1, 1), end_date=D(2026, 6, 30))
    price = price_line(line, [hourly(10_000)], Q3_2026.period)
    assert (price.days, price.amount_cents, price.parts, price.gaps) == (0, 0, (), ())


@pytest.mark.parametrize("unit", ["14", "16", "82", "83", "84"])
def test_units_that_weekly_hours_cannot_price_are_refused(unit: str) -> None:
    with pytest.raises(UnpriceableUnit) as info:
        price_line(Line(), [hourly(10_000, unit=unit)], Q3_2026.period)
    assert "uren per week" in info.value.message
    assert info.value.params["unit"] == unit


# ---- the overview ----


def test_overview_groups_per_provider_and_reports_problems() -> None:
    providers = {
        1: ProviderInfo(1, "Horizon Jeugdzorg", "12345678"),
        2: ProviderInfo(2, "Altra", "87654321"),
    }
    lines = [
        Line(line_id=1, provider_id=1, minutes_per_week=60, case_pseudonym="Casus-A"),
        Line(line_id=2, provider_id=2, minutes_per_week=60, case_pseudonym="Casus-B"),
        Line(line_id=3, provider_id=2, product_code="45A99", case_pseudonym="Casus-C"),
        Line(line_id=4, provider_id=1, product_code="43A01", case_pseudonym="Casus-D"),
    ]
    contracts = [
        hourly(7_000),
        hourly(7_000, provider_id=2, valid_from=D(2026, 8, 1)),
        hourly(500, provider_id=1, product_code="43A01", unit="14"),
    ]
    overview = assemble_overview(Q3_2026, lines, contracts, providers)
    assert [p.provider.name for p in overview.providers] == ["Altra", "Horizon Jeugdzorg"]
    altra, horizon = overview.providers
    assert [line.case_pseudonym for line in altra.lines] == ["Casus-B", "Casus-C"]
    assert horizon.total_cents == round_half_away_from_zero(Fraction(92, 7) * 7_000)
    assert altra.total_cents == round_half_away_from_zero(Fraction(61, 7) * 7_000)
    assert overview.total_cents == altra.total_cents + horizon.total_cents
    kinds = sorted((p.kind, p.case_pseudonym) for p in overview.problems)
    assert kinds == [
        (ProblemKind.NO_CONTRACT, "Casus-B"),
        (ProblemKind.NO_CONTRACT, "Casus-C"),
        (ProblemKind.UNIT, "Casus-D"),
    ]
    gap_b = next(p for p in overview.problems if p.case_pseudonym == "Casus-B")
    assert (gap_b.start, gap_b.end, gap_b.provider_name) == (
        D(2026, 7, 1),
        D(2026, 7, 31),
        "Altra",
    )


# ---- property: amounts are the rounded exact sum, totals are sums of lines ----

days_2025_2027 = st.dates(min_value=D(2025, 1, 1), max_value=D(2027, 12, 31))


@st.composite
def contract_series(draw: st.DrawFn, provider_id: int) -> list[ContractTerms]:
    """Consecutive, non-overlapping tariffs of one product, possibly with holes between."""
    cuts = sorted(set(draw(st.lists(days_2025_2027, min_size=1, max_size=6))))
    series = []
    for i, start in enumerate(cuts):
        nxt = cuts[i + 1] if i + 1 < len(cuts) else None
        end = None if nxt is None else nxt - dt.timedelta(days=draw(st.integers(1, 20)))
        if end is not None and end < start:
            continue
        series.append(
            hourly(
                draw(st.integers(0, 20_000)),
                start,
                end,
                provider_id=provider_id,
                unit=draw(st.sampled_from(["01", "04"])),
            )
        )
    return series


@st.composite
def lines_for(draw: st.DrawFn, provider_id: int) -> list[Line]:
    out = []
    for i in range(draw(st.integers(0, 4))):
        a, b = sorted([draw(days_2025_2027), draw(days_2025_2027)])
        out.append(
            Line(
                line_id=provider_id * 100 + i,
                provider_id=provider_id,
                minutes_per_week=draw(st.integers(0, 40 * 60)),
                start_date=a,
                end_date=b,
                case_pseudonym=f"Casus-{provider_id}-{i}",
            )
        )
    return out


def day_by_day(line: Line, contracts: list[ContractTerms], period: DateRange) -> Fraction:
    """An independent oracle: price each day on its own, exactly."""
    total = Fraction(0)
    day = max(line.start_date, period.start)
    while day <= min(line.end_date, period.end):
        for c in contracts:
            if c.valid_from <= day and (c.valid_to is None or day <= c.valid_to):
                per_unit = 60 if c.unit == "04" else 1
                total += Fraction(line.minutes_per_week, 7 * per_unit) * c.tariff_cents
        day += dt.timedelta(days=1)
    return total


@given(
    data=st.data(),
    quarter=st.sampled_from([f"{y}Q{q}" for y in (2025, 2026, 2027) for q in (1, 2, 3, 4)]),
)
def test_amounts_are_rounded_exact_sums_and_totals_are_sums_of_lines(
    data: st.DataObject, quarter: str
) -> None:
    q = parse_quarter(quarter)
    providers = {pid: ProviderInfo(pid, f"Aanbieder {pid}", None) for pid in (1, 2, 3)}
    contracts = [c for pid in providers for c in data.draw(contract_series(pid))]
    lines = [ln for pid in providers for ln in data.draw(lines_for(pid))]

    for line in lines:
        mine = [c for c in contracts if c.provider_id == line.provider_id]
        price = price_line(line, contracts, q.period)
        assert price.exact_cents == day_by_day(line, mine, q.period)
        assert price.amount_cents == round_half_away_from_zero(price.exact_cents)
        covered = sum(p.days for p in price.parts) + sum(g.days for g in price.gaps)
        assert covered == price.days

    overview = assemble_overview(q, lines, contracts, providers)
    for block in overview.providers:
        assert block.total_cents == sum(line.amount_cents for line in block.lines)
    assert overview.total_cents == sum(b.total_cents for b in overview.providers)


# ---- contracts: overlap and the add form ----


@pytest.mark.parametrize(
    ("new_from", "new_to", "clash"),
    [
        (D(2027, 1, 1), D(2027, 5, 31), None),  # exactly between the two
        (D(2026, 12, 31), None, 0),  # last day overlaps
        (D(2025, 6, 1), D(2025, 12, 31), None),  # right before
        (D(2025, 6, 1), D(2026, 1, 1), 0),  # first day overlaps
        (D(2026, 3, 1), D(2026, 3, 31), 0),  # inside
        (D(2028, 1, 1), D(2028, 1, 1), 1),  # inside the open-ended one
    ],
)
def test_find_overlap(new_from: dt.date, new_to: dt.date | None, clash: int | None) -> None:
    existing = [hourly(100, D(2026, 1, 1), D(2026, 12, 31)), hourly(105, D(2027, 6, 1))]
    found = find_overlap(existing, new_from, new_to)
    assert found is (None if clash is None else existing[clash])


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("120", 12_000),
        ("120,00", 12_000),
        ("120,5", 12_050),
        ("0,01", 1),
        ("€ 1.234,56", 123_456),
        ("1.234", 123_400),
        ("1234.56", 123_456),
        ("  87,30 ", 8_730),
        ("1 234,56", 123_456),
    ],
)
def test_parse_euros(text: str, cents: int) -> None:
    assert parse_euros(text) == cents


@pytest.mark.parametrize(
    "text", ["", "abc", "12,345", "1" * 5000, "-5", "1,2,3", "1.2.3,4.5", "12e3", "٣"]
)
def test_parse_euros_refuses(text: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_euros(text)


GOOD_FORM = {
    "provider_id": "3",
    "product_category": "45",
    "product_code": "45a52",
    "description": "Ambulante jeugdhulp",
    "unit": "04",
    "tariff": "120,00",
    "valid_from": "2026-01-01",
    "valid_to": "",
}


def test_read_contract_form() -> None:
    draft = read_contract_form(GOOD_FORM)
    assert draft.provider_id == 3
    assert draft.product_code == "45A52"
    assert draft.tariff_cents == 12_000
    assert draft.valid_from == D(2026, 1, 1)
    assert draft.valid_to is None


@pytest.mark.parametrize(
    ("changes", "bad_fields"),
    [
        ({"provider_id": ""}, {"provider_id"}),
        ({"product_category": "4"}, {"product_category"}),
        ({"product_code": "45A5"}, {"product_code"}),
        ({"description": ""}, {"description"}),
        ({"unit": "99"}, {"unit"}),
        ({"tariff": "twaalf"}, {"tariff"}),
        ({"valid_from": "31-02-2026"}, {"valid_from"}),
        ({"provider_id": "9" * 20}, {"provider_id"}),
        ({"valid_to": "2025-12-31"}, {"valid_to"}),
        ({"tariff": "", "valid_from": ""}, {"tariff", "valid_from"}),
    ],
)
def test_read_contract_form_names_every_bad_field(
    changes: dict[str, str], bad_fields: set[str]
) -> None:
    with pytest.raises(InvalidInput) as info:
        read_contract_form({**GOOD_FORM, **changes})
    assert set(info.value.errors) == bad_fields
