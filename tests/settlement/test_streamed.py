"""Settling lines that stream in, as the quarterly run does with a million of them: the same
lines out and the same rejections as settling them all at once, in any order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keerpunt.settlement.declaration import (
    Delivery,
    Frequency,
    OutOfOrder,
    Variant,
    accept_lines,
    settle,
    settle_lines,
    settle_rows,
)
from tests.settlement.test_declaration import (
    AGREEMENT,
    HORIZON,
    KASSIER,
    D,
    _lines,
    allocation,
    contract,
    delivery,
)

ALLOCATIONS = [
    allocation(number="T-1", volume=60, frequency=Frequency.MONTH),
    allocation(number="T-2", provider_id=KASSIER, variant=Variant.ASPECIFIC,
               product_code=None, volume=None, unit=None, frequency=None,
               budget_cents=1_000_000),
    allocation(number="T-3", volume=3, frequency=Frequency.WEEK),
]  # fmt: skip
CONTRACTS = [
    contract(HORIZON, 12_000, valid_to=D(2026, 6, 30)),
    contract(HORIZON, 12_480, D(2026, 7, 1)),
    contract(KASSIER, 11_000),
    contract(KASSIER, 9_000, product_code="45A53"),
]


@given(_lines, _lines, st.randoms(use_true_random=False))
def test_streamed_in_canonical_order_settles_as_all_at_once(
    earlier: list[Delivery], lines: list[Delivery], rnd: object
) -> None:
    previous = settle(earlier, ALLOCATIONS, CONTRACTS, [AGREEMENT]).lines
    shuffled = list(lines)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    whole = settle(shuffled, ALLOCATIONS, CONTRACTS, [AGREEMENT], previous)
    in_order = iter(sorted(lines, key=lambda d: d.order_key))  # one pass, as from a cursor
    out, rejected = settle_lines(
        in_order, ALLOCATIONS, CONTRACTS, [AGREEMENT], previous, ordered=True
    )
    assert out == whole.lines
    assert rejected == whole.rejected


def test_lines_said_to_be_in_order_that_are_not_are_refused() -> None:
    late, early = delivery(id=1, start=D(2026, 3, 2)), delivery(id=2, start=D(2026, 3, 1))
    with pytest.raises(OutOfOrder):
        accept_lines([late, early], [allocation()], [contract()], ordered=True)
    accepted, _ = accept_lines([early, late], [allocation()], [contract()], ordered=True)
    assert [a.delivery.id for a in accepted] == [2, 1]


@given(_lines, _lines)
def test_lines_read_as_plain_tuples_settle_as_the_deliveries_do(
    earlier: list[Delivery], lines: list[Delivery]
) -> None:
    previous = settle(earlier, ALLOCATIONS, CONTRACTS, [AGREEMENT]).lines
    in_order = sorted(lines, key=lambda d: d.order_key)
    rows = [
        (d.id, d.provider_id, d.allocation_number, d.product_category, d.product_code, d.start,
         d.end, d.volume)
        for d in in_order
    ]  # fmt: skip
    assert settle_rows(
        rows, ALLOCATIONS, CONTRACTS, [AGREEMENT], previous, ordered=True
    ) == settle_lines(in_order, ALLOCATIONS, CONTRACTS, [AGREEMENT], previous, ordered=True)
