"""Finding identifying data in free text, before it is saved in anonymous mode."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keerpunt.consent.identifying import find_identifying, passes_elfproef

NAMES = ("Sem Canarie", "Ma Canarie", "Oom Kees", "Jan van der Berg", "Zoë Ünal")


def kinds(text: str, names: tuple[str, ...] = NAMES) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in find_identifying(text, names)]


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("111222333", True),  # 9*1+8*1+7*1+6*2+5*2+4*2+3*3+2*3-1*3 = 66 = 6*11
        ("123456782", True),
        ("123456789", False),
        ("000000000", False),
        ("12345678", False),
    ],
)
def test_elfproef(number: str, ok: bool) -> None:
    assert passes_elfproef(number) is ok


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sem gaat niet naar school.", [("name", "Sem")]),
        ("sem canarie belde", [("name", "sem canarie")]),
        ("Gesprek met oom kees.", [("name", "oom kees")]),
        ("De familie Van der Berg", [("name", "Berg")]),  # not the "van der"
        ("Zoe is boos", [("name", "Zoe")]),  # accents need not match
        ("Unal is boos", [("name", "Unal")]),
        ("Semafoor en Kees-achtig", [("name", "Kees")]),  # whole words only
        ("BSN 111222333 bekend", [("bsn", "111222333")]),
        ("BSN 1112.22.333", [("bsn", "1112.22.333")]),
        ("BSN 111 222 333", [("bsn", "111 222 333")]),
        ("nummer 123456789", []),  # fails the elfproef
        ("Geboren op 03-05-2014.", [("date", "03-05-2014")]),
        ("Geboren 3/5/14", [("date", "3/5/14")]),
        ("Sinds 2014-05-03", [("date", "2014-05-03")]),
        ("Jarig op 3 mei 2014", [("date", "3 mei 2014")]),
        ("Jarig op 12 okt.", [("date", "12 okt")]),
        ("Bel 06-12345678", [("phone", "06-12345678")]),
        (
            "Bel 06 1234 5678 of +31 6 12345678",
            [("phone", "06 1234 5678"), ("phone", "+31 6 12345678")],
        ),
        ("Thuis: 0570-123456", [("phone", "0570-123456")]),
        ("Mail ma@example.nl", [("email", "ma@example.nl")]),
        ("Woont in 7411 AB Deventer", [("postcode", "7411 AB")]),
        ("Postcode 7411ab", [("postcode", "7411ab")]),
        ("Tussen 2014 en 2015", []),  # not a postcode
        ("Woont aan de Brinkgreverweg 12a", [("address", "Brinkgreverweg 12a")]),
        ("Keizerstraat 5-II", [("address", "Keizerstraat 5-II")]),
        ("Zorgen over school, slaap en vrienden; 3 keer per week boos.", []),
        ("Score 12 op 15 punten", []),
    ],
)
def test_finds_identifying_data(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


def test_findings_do_not_overlap_and_come_in_order() -> None:
    text = "Sem (BSN 111222333), 06-12345678, Keizerstraat 5, 7411 AB"
    found = find_identifying(text, NAMES)
    assert [f.kind for f in found] == ["name", "bsn", "phone", "address", "postcode"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))


def test_short_name_parts_and_common_words_are_not_names() -> None:
    assert kinds("Ma is er niet, de school belt", ("Ma de Vries",)) == []
    assert kinds("Vries", ("Ma de Vries",)) == [("name", "Vries")]


@given(st.text(max_size=300), st.lists(st.text(max_size=20), max_size=4))
def test_findings_are_in_bounds_ordered_and_never_overlap(text: str, names: list[str]) -> None:
    found = find_identifying(text, names)
    assert all(0 <= f.start < f.end <= len(text) for f in found)
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))


@given(
    st.integers(100_000_000, 999_999_999).map(str).filter(passes_elfproef),
    st.sampled_from(["BSN ", "nummer: ", "(", ""]),
    st.sampled_from([" is bekend", ").", ""]),
)
def test_every_valid_bsn_is_found(bsn: str, before: str, after: str) -> None:
    text = f"{before}{bsn}{after}"
    assert [(f.kind, text[f.start : f.end]) for f in find_identifying(text)] == [("bsn", bsn)]
