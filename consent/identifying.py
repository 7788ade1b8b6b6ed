"""Finding identifying data in free text (herleidbare gegevens), as plain functions.

Used before text is saved while a case is discussed anonymously (seed 003 §5.2): names of
the case's people, BSN-like numbers that pass the elfproef, dates, phone numbers, e-mail
addresses, Dutch postcodes and street addresses. It warns; it does not decide. It errs on the
side of warning: a false alarm costs a click, a miss exposes a family.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Finding", "find_identifying", "passes_elfproef"]

# Parts of a name that identify nobody on their own (tussenvoegsels and the like).
_NAME_PARTICLES = frozenset(
    {"van", "de", "der", "den", "het", "ter", "ten", "te", "in", "op", "la", "le", "du", "da"}
)
_MIN_NAME_PART = 3

_MONTHS = (
    "januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|december"
    "|jan|feb|mrt|apr|jun|jul|aug|sept|sep|okt|nov|dec"
)
_STREET_SUFFIXES = (
    "straat|laan|weg|plein|singel|gracht|kade|dijk|hof|pad|steeg|dreef|markt|ring|allee"
    "|plantsoen|veld|erf|baan|dam|haven|wal|burgwal|park|kamp|akker|hoek|steeg|oord|zoom"
)

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    (
        "phone",
        re.compile(r"(?<![\d+])(?:\+31|0031|0)(?:[\s-]?\(0\))?[\s-]?[1-9](?:[\s-]?\d){8}(?!\d)"),
    ),
    ("bsn", re.compile(r"(?<![\d.])(?:\d{9}|\d{4}\.\d{2}\.\d{3}|\d{3} \d{3} \d{3})(?![\d.]\d)")),
    (
        "date",
        re.compile(
            r"(?<![\d-])(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2}))(?![\d-])"
        ),
    ),
    (
        "date",
        re.compile(rf"(?<!\d)\d{{1,2}}\s+(?:{_MONTHS})\b(?:\s+\d{{4}}\b)?", re.IGNORECASE),
    ),
    ("postcode", re.compile(r"(?<!\d)[1-9]\d{3}(?: ?(?!SA|SD|SS)[A-Z]{2}|[a-z]{2})\b")),
    (
        "address",
        re.compile(
            rf"\b[A-Z][\w'’.-]*(?:{_STREET_SUFFIXES})\s+\d{{1,5}}"
            r"(?:[a-zA-Z]{1,2}\b|-(?:[A-Za-z]{1,3}|\d{1,4})\b)?"
        ),
    ),
)


@dataclass(frozen=True)
class Finding:
    kind: str  # name | bsn | date | phone | email | postcode | address
    start: int
    end: int


def passes_elfproef(digits: str) -> bool:
    """The BSN check (elfproef): 9 digits, weights 9..2 and -1, sum divisible by 11."""
    if len(digits) != 9 or not digits.isdigit() or digits == "0" * 9:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def _fold(text: str) -> str:
    """Lower case without accents, one character for one, so positions stay the same."""
    out = []
    for ch in text:
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        low = base.lower()
        out.append(low if len(low) == 1 else ch)
    return "".join(out)


def _name_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    phrases: set[str] = set()
    for name in names:
        words = _fold(name).split()
        if not words:
            continue
        if len(words) > 1:
            phrases.add(r"\s+".join(re.escape(w) for w in words))
        phrases.update(
            re.escape(w) for w in words if len(w) >= _MIN_NAME_PART and w not in _NAME_PARTICLES
        )
    if not phrases:
        return None
    alternatives = "|".join(sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def _valid_date(text: str) -> bool:
    parts = [int(p) for p in re.split(r"[-/.]", text) if p.isdigit()]
    if len(parts) != 3:
        return True  # "3 mei 2014": the month is a word
    day, month = (parts[2], parts[1]) if parts[0] > 31 else (parts[0], parts[1])
    return 1 <= day <= 31 and 1 <= month <= 12


def find_identifying(text: str, names: Iterable[str] = ()) -> tuple[Finding, ...]:
    """Where ``text`` holds identifying data, in order and without overlaps. ``names`` are
    the names of this case's people (plain strings); parts shorter than three letters and
    particles like "van der" do not count on their own."""
    found: list[Finding] = []
    pattern = _name_pattern(names)
    if pattern is not None:
        found += [Finding("name", m.start(), m.end()) for m in pattern.finditer(_fold(text))]
    for kind, regex in _PATTERNS:
        for m in regex.finditer(text):
            value = m.group(0)
            if kind == "bsn" and not passes_elfproef(re.sub(r"\D", "", value)):
                continue
            if kind == "date" and not _valid_date(value):
                continue
            found.append(Finding(kind, m.start(), m.end()))
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for f in found:
        if not kept or f.start >= kept[-1].end:
            kept.append(f)
    return tuple(kept)
