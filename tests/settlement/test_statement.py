"""A run's statement CSV (pure): byte for byte what the standard CSV writer makes of its rows,
whatever the names hold, and its digest is the digest of those bytes."""

from __future__ import annotations

import csv
import datetime as dt
import io

from hypothesis import given
from hypothesis import strategies as st

from keerpunt.settlement.declaration import Direction, OutLine
from keerpunt.settlement.statement import HEADER, digest, statement_csv, statement_digest

_line = st.builds(
    OutLine,
    delivery_id=st.integers(1, 10**9),
    allocation_number=st.sampled_from(["T-1", "T0000002", "2026-0003"]),
    holder_id=st.integers(1, 4),
    provider_id=st.integers(1, 6),
    municipality_id=st.just(9),
    product_category=st.sampled_from(["45", "43"]),
    product_code=st.sampled_from(["45A52", "43A03"]),
    start=st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31)),
    end=st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31)),
    volume=st.integers(1, 10_000),
    unit=st.sampled_from(["01", "04", "14"]),
    tariff_cents=st.integers(0, 10**6),
    amount_cents=st.integers(0, 10**9),
    direction=st.sampled_from(Direction),
    revision=st.integers(1, 5),
)
# Names as organisations may be called: with commas, quotes, line breaks or nothing at all.
_names = st.dictionaries(
    st.integers(1, 5), st.text(alphabet=st.sampled_from("ab ,\"\r\n;'é"), max_size=8)
)


def written_by_csv(quarter: str, lines: list[OutLine], names: dict[int, str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for x in lines:
        writer.writerow(
            (quarter, names.get(x.holder_id, f"#{x.holder_id}"),
             names.get(x.provider_id, f"#{x.provider_id}"), x.allocation_number, x.reference,
             x.previous_reference or "", x.product_category, x.product_code,
             x.start.isoformat(), x.end.isoformat(), x.volume, x.unit, x.tariff_cents,
             x.amount_cents, x.direction.value)
        )  # fmt: skip
    total = sum(x.signed_cents for x in lines)
    writer.writerow((quarter, "totaal", "", "", "", "", "", "", "", "", "", "", "", abs(total),
                     "C" if total < 0 else "D"))  # fmt: skip
    return out.getvalue().encode("utf-8")


@given(st.lists(_line, max_size=30), _names)
def test_the_statement_is_what_the_csv_writer_makes_of_its_rows(
    lines: list[OutLine], names: dict[int, str]
) -> None:
    data = statement_csv("2026Q3", lines, names)
    assert data == written_by_csv("2026Q3", lines, names)
    assert statement_digest("2026Q3", lines, names) == digest(data)
