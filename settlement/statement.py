"""A run's statement (afrekenoverzicht) per provider as CSV: pure, no database.

One row per line of the run, in declaration order (credits before the debit that corrects
them), then a total row that is the sum of the lines above it. No ids of the database, no
clock: the same lines give the same bytes, so a copy can be checked with its digest.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping, Sequence

from keerpunt.settlement.declaration import OutLine

__all__ = ["HEADER", "digest", "statement_csv"]

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
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for x in lines:
        writer.writerow(
            (
                quarter,
                names.get(x.holder_id, f"#{x.holder_id}"),
                names.get(x.provider_id, f"#{x.provider_id}"),
                x.allocation_number,
                x.reference,
                x.previous_reference or "",
                x.product_category,
                x.product_code,
                x.start.isoformat(),
                x.end.isoformat(),
                x.volume,
                x.unit,
                x.tariff_cents,
                x.amount_cents,
                x.direction.value,
            )
        )
    total = sum(x.signed_cents for x in lines)
    writer.writerow((quarter, "totaal", "", "", "", "", "", "", "", "", "", "", "", abs(total),
                     "C" if total < 0 else "D"))  # fmt: skip
    return out.getvalue().encode("utf-8")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
