"""The kassier's ledger (no database): margins per agreement, and a ledger that balances."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keerpunt.settlement.declaration import (
    Direction,
    Margin,
    MarginKind,
    OutLine,
    SubProviderAgreement,
)
from keerpunt.settlement.kassier import (
    MissingAgreement,
    agreement_index,
    kassier_ledger,
    ledger_from_margins,
    line_margin,
)

D = dt.date
KASSIER, ALTRA, HORIZON, ZWOLLE, DEVENTER = 1, 3, 4, 90, 91


def line(**kw: object) -> OutLine:
    base = OutLine(
        delivery_id=1,
        allocation_number="T-1",
        holder_id=KASSIER,
        provider_id=ALTRA,
        municipality_id=ZWOLLE,
        product_category="45",
        product_code="45A52",
        start=D(2026, 3, 1),
        end=D(2026, 3, 31),
        volume=10,
        unit="04",
        tariff_cents=12_000,
        amount_cents=120_000,
        direction=Direction.DEBIT,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def agreement(
    kind: MarginKind = MarginKind.PERCENT, value: int = 660, **kw: object
) -> SubProviderAgreement:
    base = SubProviderAgreement(KASSIER, ALTRA, Margin(kind, value), D(2026, 1, 1))
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("margin", "amount", "volume", "kept"),
    [
        (Margin(MarginKind.PERCENT, 660), 120_000, 10, 7_920),  # 6,60 %
        (Margin(MarginKind.PERCENT, 660), 12_345, 1, 815),  # 814,77 -> 815
        (Margin(MarginKind.PERCENT, 500), 10_010, 1, 501),  # 500,5 -> 501, half away from 0
        (Margin(MarginKind.PERCENT, 500), -10_010, 1, -501),  # a credit mirrors the debit
        (Margin(MarginKind.FIXED, 250), 120_000, 10, 2_500),  # € 2,50 per unit
        (Margin(MarginKind.FIXED, 250), -120_000, 10, -2_500),
        (Margin(MarginKind.FIXED, 99_999), 1_000, 1, 1_000),  # never more than the line
        (Margin(MarginKind.PERCENT, 0), 120_000, 10, 0),
    ],
)
def test_margin_per_line(margin: Margin, amount: int, volume: int, kept: int) -> None:
    assert margin.of(amount, volume) == kept


def test_ledger_splits_each_line_into_margin_and_what_the_provider_gets() -> None:
    ledger = kassier_ledger(KASSIER, [line()], [agreement()])
    assert ledger.municipality_owes == {ZWOLLE: 120_000}
    assert ledger.keeps_cents == 7_920
    assert ledger.owes == {ALTRA: 112_080}
    assert ledger.balanced


def test_the_kassier_keeps_its_own_lines_whole() -> None:
    ledger = kassier_ledger(KASSIER, [line(provider_id=KASSIER)], [])
    assert (ledger.keeps_cents, ledger.owes) == (120_000, {})


def test_margin_follows_the_agreement_valid_in_the_lines_period() -> None:
    agreements = [
        agreement(value=500, valid_to=D(2026, 6, 30)),
        agreement(value=700, valid_from=D(2026, 7, 1)),
    ]
    march, july = line(), line(delivery_id=2, start=D(2026, 7, 1), end=D(2026, 7, 31))
    ledger = kassier_ledger(KASSIER, [march, july], agreements)
    assert [e.margin_cents for e in ledger.entries] == [6_000, 8_400]


def test_a_credit_and_its_debit_cancel_to_the_cent() -> None:
    debit = line(amount_cents=12_345)
    ledger = kassier_ledger(KASSIER, [debit, debit.credit()], [agreement()])
    assert ledger.municipality_owes == {ZWOLLE: 0}
    assert (ledger.keeps_cents, ledger.owes) == (0, {ALTRA: 0})


def test_lines_of_other_holders_are_not_the_kassiers() -> None:
    ledger = kassier_ledger(KASSIER, [line(holder_id=HORIZON, provider_id=HORIZON)], [])
    assert ledger.entries == ()


def test_a_line_without_agreement_is_an_error_not_a_silent_zero() -> None:
    with pytest.raises(MissingAgreement):
        kassier_ledger(KASSIER, [line()], [agreement(valid_to=D(2026, 2, 28))])


_margins = st.builds(
    Margin,
    kind=st.sampled_from(list(MarginKind)),
    value=st.integers(0, 10_000),
)
_lines = st.lists(
    st.builds(
        line,
        delivery_id=st.integers(1, 1000),
        provider_id=st.sampled_from([KASSIER, ALTRA, HORIZON]),
        municipality_id=st.sampled_from([ZWOLLE, DEVENTER]),
        volume=st.integers(1, 500),
        amount_cents=st.integers(0, 10_000_000),
        direction=st.sampled_from(list(Direction)),
    ),
    max_size=40,
)


@given(_lines, _margins, _margins)
def test_ledger_always_balances_to_the_cent(
    lines: list[OutLine], altra: Margin, horizon: Margin
) -> None:
    agreements = [
        SubProviderAgreement(KASSIER, ALTRA, altra, D(2026, 1, 1)),
        SubProviderAgreement(KASSIER, HORIZON, horizon, D(2026, 1, 1)),
    ]
    ledger = kassier_ledger(KASSIER, lines, agreements)
    owed = sum(ledger.municipality_owes.values())
    assert owed == ledger.keeps_cents + sum(ledger.owes.values())
    assert owed == sum(x.signed_cents for x in lines)
    for e in ledger.entries:  # and the margin never goes the wrong way
        assert abs(e.margin_cents) <= abs(e.gross_cents)
        assert e.margin_cents * e.gross_cents >= 0


@given(_lines, _margins, _margins)
def test_margins_stored_per_line_give_the_same_ledger(
    lines: list[OutLine], altra: Margin, horizon: Margin
) -> None:
    """What a run stores per line when it closes (line_margin) reads back as the very ledger
    the agreements give, balanced to the cent."""
    agreements = [
        SubProviderAgreement(KASSIER, ALTRA, altra, D(2026, 1, 1)),
        SubProviderAgreement(KASSIER, HORIZON, horizon, D(2026, 1, 1)),
    ]
    index = agreement_index(agreements)
    stored = []
    for x in lines:
        found = None if x.provider_id == KASSIER else line_margin(x, index)
        stored.append((x, None if found is None else found.margin_cents))
    ledger = ledger_from_margins(KASSIER, stored)
    assert ledger == kassier_ledger(KASSIER, lines, agreements)
    assert ledger.balanced


def test_a_stored_line_without_margin_is_an_error_not_a_silent_zero() -> None:
    with pytest.raises(MissingAgreement):
        ledger_from_margins(KASSIER, [(line(), None)])
    (own,) = ledger_from_margins(KASSIER, [(line(provider_id=KASSIER), None)]).entries
    assert own.margin_cents == own.gross_cents == 120_000
