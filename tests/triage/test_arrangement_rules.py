"""The arrangement's pure rules: expected end, intensity, the procesregisseur suggestion."""

from __future__ import annotations

import datetime as dt

import pytest

from keerpunt.platform.errors import InvalidInput
from keerpunt.triage.arrangement import (
    HELP_FORMS,
    Effort,
    expected_end,
    parse_intensity,
    suggest_procesregisseur,
)

D = dt.date


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (D(2026, 1, 1), D(2026, 9, 30)),
        (D(2026, 5, 31), D(2027, 2, 27)),  # 28 February does not exist as the 31st
        (D(2027, 6, 1), D(2028, 2, 29)),  # leap year
        (D(2026, 4, 15), D(2027, 1, 14)),
    ],
)
def test_an_arrangement_runs_nine_months_by_default(start: dt.date, end: dt.date) -> None:
    assert expected_end(start) == end


def test_help_forms_run_from_ambulant_to_jeugdzorgplus_as_data() -> None:
    assert HELP_FORMS[0] == "ambulant"
    assert HELP_FORMS[-1] == "jeugdzorgplus"
    assert {"day_treatment", "short_stay", "foster_care"} <= set(HELP_FORMS)


@pytest.mark.parametrize(
    ("raw", "unit", "expected"),
    [
        ("2,5", "hour", (150, None)),
        ("1.25", "hour", (75, None)),
        ("3", "dagdeel", (720, 3)),
        ("7", "etmaal", (7 * 1440, 7)),
    ],
)
def test_intensity_has_a_unit(raw: str, unit: str, expected: tuple[int, int | None]) -> None:
    assert parse_intensity(raw, unit) == expected


@pytest.mark.parametrize(
    ("raw", "unit"),
    [
        ("0", "hour"),
        ("abc", "hour"),
        ("8", "etmaal"),
        ("1,5", "dagdeel"),
        ("15", "dagdeel"),
        ("2", "week"),
    ],
)
def test_impossible_intensities_are_refused_in_plain_dutch(raw: str, unit: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_intensity(raw, unit)
    assert info.value.errors


START = D(2026, 1, 1)


def E(pid: int, name: str, minutes: int, months: int = 9, start: dt.date = START) -> Effort:
    return Effort(pid, name, minutes, start, expected_end(start, months))


@pytest.mark.parametrize(
    ("lines", "winner", "says"),
    [
        ([], None, "nog geen hulp"),
        ([E(1, "Karakter", 60)], 1, "enige aanbieder"),
        # most help wins, whatever the order of the lines
        ([E(1, "Accare", 60), E(2, "Karakter", 120)], 2, "Karakter geeft de meeste hulp"),
        ([E(2, "Karakter", 120), E(1, "Accare", 60)], 2, "daarna Accare"),
        # two lines of one provider count together
        ([E(1, "Accare", 90), E(2, "Karakter", 60), E(2, "Karakter", 60)], 2, "meeste hulp"),
        # a bed (etmalen) outweighs hours of ambulant help
        ([E(1, "Accare", 1440), E(2, "Karakter", 600)], 1, "Accare geeft de meeste hulp"),
    ],
)
def test_procesregisseur_suggestion(lines: list[Effort], winner: int | None, says: str) -> None:
    suggestion = suggest_procesregisseur(lines)
    assert suggestion.provider_id == winner
    assert says in suggestion.reason.msgid % suggestion.reason.params


def test_equal_help_the_longest_wins_and_the_tie_is_explained() -> None:
    # 14 days × 60 min/week = 7 days × 120 min/week: the same total help
    long = Effort(1, "Accare", 60, START, START + dt.timedelta(days=13))
    short = Effort(2, "Karakter", 120, START, START + dt.timedelta(days=6))
    suggestion = suggest_procesregisseur([short, long])
    assert suggestion.provider_id == 1
    text = suggestion.reason.msgid % suggestion.reason.params
    assert "evenveel hulp" in text and "Accare helpt het langst: 14 dagen" in text


def test_a_full_tie_is_not_broken_by_name_the_table_chooses() -> None:
    a = Effort(1, "Accare", 60, START, expected_end(START))
    b = Effort(2, "Karakter", 60, START, expected_end(START))
    suggestion = suggest_procesregisseur([b, a])
    assert suggestion.provider_id is None
    text = suggestion.reason.msgid % suggestion.reason.params
    assert "Accare en Karakter" in text and "Kies samen" in text
    assert [p.provider for p in suggestion.ranking] == ["Accare", "Karakter"]
