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

__all__ = ["HEADER", "digest", "statement_csv", "statement_digest"]

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


def _chunks(
    quarter: str, lines: Sequence[OutLine], names: Mapping[int, str], rows: int = 10_000
) -> Iterator[bytes]:
    """The statement's bytes, ``rows`` lines at a time."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    total = 0
    # Looked up once per value instead of once per line (a run repeats them many times).
    who: dict[int, str] = {}
    day: dict[dt.date, str] = {}
    letter = {d: d.value for d in Direction}
    for n, x in enumerate(lines, 1):
        if (holder := who.get(x.holder_id)) is None:
            holder = who[x.holder_id] = names.get(x.holder_id, f"#{x.holder_id}")
        if (provider := who.get(x.provider_id)) is None:
            provider = who[x.provider_id] = names.get(x.provider_id, f"#{x.provider_id}")
        if (start := day.get(x.start)) is None:
            start = day[x.start] = x.start.isoformat()
        if (end := day.get(x.end)) is None:
            end = day[x.end] = x.end.isoformat()
        writer.writerow(
            (
                quarter,
                holder,
                provider,
                x.allocation_number,
                x.reference,
                x.previous_reference or "",
                x.product_category,
                x.product_code,
                start,
                end,
                x.volume,
                x.unit,
                x.tariff_cents,
                x.amount_cents,
                letter[x.direction],
            )
        )
        total += x.signed_cents
        if n % rows == 0:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
    writer.writerow((quarter, "totaal", "", "", "", "", "", "", "", "", "", "", "", abs(total),
                     "C" if total < 0 else "D"))  # fmt: skip
    yield out.getvalue().encode("utf-8")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
