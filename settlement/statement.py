"""A run's statement (afrekenoverzicht) per provider as CSV: pure, no database.

One row per line of the run, in declaration order (credits before the debit that corrects
them), then a total row that is the sum of the lines above it. No ids of the database, no
clock: the same lines give the same bytes, so a copy can be checked with its digest.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Iterator, Mapping, Sequence

from keerpunt.settlement.declaration import Direction, OutLine

__all__ = ["HEADER", "digest", "statement_csv", "statement_digest", "statement_parts"]

HEADER = (
    "kwartaal",
    "declarant",
    "leverancier",
    "toewijzing",
    "referentie",
    "vorige_referentie",
    "productcategorie",
    "productcode",
    "begindatum",
    "einddatum",
    "volume",
    "eenheid",
    "tarief_cent",
    "bedrag_cent",
    "debet_credit",
)


def statement_csv(quarter: str, lines: Sequence[OutLine], names: Mapping[int, str]) -> bytes:
    """The lines of one run (or of one provider in it) with their total, as UTF-8 CSV."""
    return b"".join(_chunks(quarter, lines, names))


def statement_digest(quarter: str, lines: Sequence[OutLine], names: Mapping[int, str]) -> str:
    """``digest(statement_csv(...))``, without the whole statement in memory at once."""
    h = hashlib.sha256()
    for chunk in _chunks(quarter, lines, names):
        h.update(chunk)
    return h.hexdigest()


def statement_parts(
    quarter: str, lines: Sequence[OutLine], names: Mapping[int, str]
) -> Iterator[bytes]:
    """The bytes of :func:`statement_csv` in parts of some thousands of lines, for whoever
    digests them a part at a time while doing something else."""
    return _chunks(quarter, lines, names)


def _chunks(
    quarter: str, lines: Sequence[OutLine], names: Mapping[int, str], rows: int = 10_000
) -> Iterator[bytes]:
    """The statement's bytes, ``rows`` lines at a time.

    The bytes are those of :func:`csv.writer` (excel dialect, CRLF), but a row is put together
    as text: every text field is written by the CSV writer once per distinct value (quoted
    where it must be) and looked up after that; the other fields are numbers, days and
    references of digits, which CSV never quotes. A run of a million lines repeats its names,
    numbers and codes many times, and a row of text is half the work of a row written."""
    head = io.StringIO()
    csv.writer(head, lineterminator="\r\n").writerow(HEADER)
    out: list[str] = [head.getvalue()]
    add = out.append
    total = 0
    text: dict[object, str] = {}  # a text field's value -> as CSV writes it
    day: dict[dt.date, str] = {}
    who: dict[int, str] = {}
    credit = Direction.CREDIT
    q = _field(quarter)
    for n, x in enumerate(lines, 1):
        if (holder := who.get(x.holder_id)) is None:
            holder = who[x.holder_id] = _field(names.get(x.holder_id, f"#{x.holder_id}"))
        if (provider := who.get(x.provider_id)) is None:
            provider = who[x.provider_id] = _field(names.get(x.provider_id, f"#{x.provider_id}"))
        if (number := text.get(x.allocation_number)) is None:
            number = text[x.allocation_number] = _field(x.allocation_number)
        if (category := text.get(x.product_category)) is None:
            category = text[x.product_category] = _field(x.product_category)
        if (code := text.get(x.product_code)) is None:
            code = text[x.product_code] = _field(x.product_code)
        if (unit := text.get(x.unit)) is None:
            unit = text[x.unit] = _field(x.unit)
        if (start := day.get(x.start)) is None:
            start = day[x.start] = x.start.isoformat()
        if (end := day.get(x.end)) is None:
            end = day[x.end] = x.end.isoformat()
        # referentie, vorige_referentie and debet_credit (see OutLine.reference)
        if x.direction is credit:
            ref = f"{x.delivery_id}-{x.revision}"
            refs, letter = f"{ref}C,{ref}", "C"
            total -= x.amount_cents
        else:
            refs, letter = f"{x.delivery_id}-{x.revision},", "D"
            total += x.amount_cents
        add(
            f"{q},{holder},{provider},{number},{refs},{category},{code},{start},{end},"
            f"{x.volume},{unit},{x.tariff_cents},{x.amount_cents},{letter}\r\n"
        )
        if n % rows == 0:
            yield "".join(out).encode("utf-8")
            out.clear()
    last = io.StringIO()
    csv.writer(last, lineterminator="\r\n").writerow(
        (quarter, "totaal", "", "", "", "", "", "", "", "", "", "", "", abs(total),
         "C" if total < 0 else "D")
    )  # fmt: skip
    add(last.getvalue())
    yield "".join(out).encode("utf-8")


def _field(value: object) -> str:
    """One field as :func:`csv.writer` writes it in a row (not alone: a row of one empty
    field is written as ``""``)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow((value, ""))
    return out.getvalue()[: -len(",\r\n")]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
