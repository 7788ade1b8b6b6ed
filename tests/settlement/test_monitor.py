"""The funder's monitor: pure aggregation, small-number suppression, charts and the files."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from keerpunt.platform.i18n import money
from keerpunt.settlement.monitor import (
    assemble_monitor,
    charts,
    count,
    monitor_csv,
    monitor_rows,
    monitor_xlsx,
)
from keerpunt.settlement.rules import parse_quarter
from keerpunt.settlement.triage_hours import PILOT_RATES, BudgetStatus, price_team_time

Q3 = parse_quarter("2026Q3")
D = dt.date


@dataclass(frozen=True)
class Line:
    line_id: int
    case_id: int
    session_id: int
    provider_id: int
    help_form: str
    start_date: dt.date
    end_date: dt.date


@dataclass(frozen=True)
class Time:
    provider_id: int
    provider_name: str
    discipline: str
    minutes: int
    day: dt.date = dt.date(2026, 8, 1)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0"), (1, "<5"), (4, "<5"), (5, "5"), (12, "12")],
)
def test_counts_of_one_to_four_youths_are_shown_as_less_than_five(value: int, shown: str) -> None:
    assert count(value).display == shown


def _lines(cases: int, form: str = "ambulant") -> list[Line]:
    start, end = D(2026, 7, 1), D(2027, 3, 31)
    return [Line(i, i, 100 + i, 1 + i % 2, form, start, end) for i in range(1, cases + 1)]


def _report(lines: list[Line], amounts: dict[int, int] | None = None, ret=()):  # type: ignore[no-untyped-def]
    hours = price_team_time([Time(1, "Karakter", "regiebehandelaar", 240)], PILOT_RATES)
    return assemble_monitor(
        Q3,
        lines,
        amounts or {},
        hours,
        BudgetStatus(110_000_00, 560_00),
        0,
        list(ret),
    )


def test_six_youths_with_their_cost_duration_and_providers() -> None:
    lines = [*_lines(6), Line(99, 1, 101, 3, "short_stay", D(2026, 7, 1), D(2026, 9, 30))]
    amounts = {i: 1000_00 for i in range(1, 7)} | {99: 1}
    report = _report(lines, amounts)
    assert report.youths.display == "6"
    assert report.arrangements.display == "6"
    assert report.started.display == "6"
    assert report.ended.display == "0"
    assert report.providers == 3
    assert report.cost_cents == 6000_01
    assert report.average_cost_cents == 1000_00  # 6000,01 / 6 = 1000,0017 -> 1000,00
    # 1 July 2026 up to 31 March 2027: 274 days = 9.0 months
    assert report.average_months == Decimal("9.0")
    forms = {r.form: r.youths.display for r in report.help_forms}
    assert forms["ambulant"] == "6"
    assert forms["short_stay"] == "<5"
    assert forms["foster_care"] == "0"
    assert report.ambulant_youths.display == "6"
    assert report.residential_youths.display == "<5"


def test_with_fewer_than_five_youths_no_average_goes_out() -> None:
    report = _report(_lines(3), {1: 500_00, 2: 500_00, 3: 500_00})
    assert report.youths.display == "<5"
    assert report.average_cost_cents is None
    assert report.average_months is None
    assert report.cost_cents == 1500_00  # a total of money is not a count of youths


def test_lines_outside_the_quarter_do_not_count() -> None:
    before = Line(1, 1, 1, 1, "ambulant", D(2026, 1, 1), D(2026, 6, 30))
    after = Line(2, 2, 2, 1, "ambulant", D(2026, 10, 1), D(2026, 12, 31))
    report = _report([before, after], {1: 100, 2: 100})
    assert report.youths.value == 0 and report.cost_cents == 0 and report.providers == 0


def test_ret_allocations_per_provider_are_suppressed_below_five() -> None:
    report = _report([], ret=[("Enver", 7), ("Ihub", 2)])
    assert [(r.provider, r.allocations.display) for r in report.ret] == [
        ("Enver", "7"),
        ("Ihub", "<5"),
    ]
    # 9 minus the visible 7 would give Ihub's 2 away: the total is not shown either
    assert report.ret_total_display == "niet getoond"
    assert report.half_year == "2026H2"


@pytest.mark.parametrize(
    ("counts", "total"),
    [([7, 6], "13"), ([7, 2, 3], "12"), ([2], "niet getoond"), ([1, 1], "<5"), ([], "0")],
)
def test_the_ret_total_never_gives_away_one_hidden_row(counts: list[int], total: str) -> None:
    report = _report([], ret=[(f"P{i}", n) for i, n in enumerate(counts)])
    assert report.ret_total_display == total


def test_charts_have_a_title_a_summary_and_no_bar_for_a_hidden_count() -> None:
    report = _report(_lines(6) + _lines(2, "foster_care"), ret=[("Enver", 7), ("Ihub", 2)])
    help_chart, hours_chart, budget_chart, ret_chart = charts(report, money)
    for chart in (help_chart, hours_chart, budget_chart, ret_chart):
        assert chart.title and chart.summary and chart.bars
    bars = {b.label: b for b in help_chart.bars}
    assert bars["Ambulant"].length == 250  # the longest visible bar fills the space
    assert bars["Pleegzorg"].display == "<5" and bars["Pleegzorg"].length == 0
    assert "<5" in help_chart.summary or "6" in help_chart.summary
    assert {b.label: b.display for b in ret_chart.bars} == {"Enver": "7", "Ihub": "<5"}
    assert next(b for b in ret_chart.bars if b.label == "Ihub").length == 0
    assert "4" in hours_chart.summary and "560" in hours_chart.summary
    assert "1 procent" in budget_chart.summary  # 560 of 110.000: 0,5 % -> 1 %


def test_the_files_hold_no_case_and_suppress_small_counts() -> None:
    report = _report(_lines(3), {1: 123_45})
    rows = monitor_rows(report)
    values = {(part, item): value for part, item, value in rows}
    assert values[("Arrangementen", "Jeugdigen")] == "<5"
    assert values[("Arrangementen", "Kosten in dit kwartaal (euro)")] == "123,45"
    assert values[("Triageteam", "Over (euro)")] == "109440,00"


def test_csv_for_dutch_excel() -> None:
    data = monitor_csv(_report(_lines(6)))
    assert data.startswith("\ufeff".encode())
    text = data.decode("utf-8-sig")
    first = text.splitlines()[0]
    assert first == "Onderdeel;Omschrijving;Waarde"
    assert "Arrangementen;Jeugdigen;6\r\n" in text


def test_xlsx_is_byte_identical_for_the_same_data_and_opens() -> None:
    report = _report(_lines(6), {1: 100_50})
    first, second = monitor_xlsx(report), monitor_xlsx(report)
    assert first == second
    wb = load_workbook(io.BytesIO(first))
    ws = wb.active
    assert ws is not None
    rows = {(r[0], r[1]): r[2] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert rows[("Arrangementen", "Jeugdigen")] == 6  # a number, not text
    assert rows[("Arrangementen", "Kosten in dit kwartaal (euro)")] == pytest.approx(100.5)
    assert wb.properties.created == dt.datetime(2000, 1, 1)
