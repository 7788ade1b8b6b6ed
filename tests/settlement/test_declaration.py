"""Acceptance and correction rules for delivered care (no database): one rule per test."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keerpunt.platform.i18n import current_locale
from keerpunt.settlement.declaration import (
    Allocation,
    Delivery,
    Direction,
    Frequency,
    Margin,
    MarginKind,
    RejectReason,
    SubProviderAgreement,
    Variant,
    accept_lines,
    check_allocation,
    check_delivery_draft,
    settle,
)
from keerpunt.settlement.rules import ContractTerms

D = dt.date
NEW_YEAR = D(2026, 1, 1)
KASSIER, HORIZON, ALTRA, GEMEENTE = 1, 2, 3, 90


def contract(
    provider_id: int = HORIZON,
    tariff_cents: int = 12_000,
    valid_from: dt.date = NEW_YEAR,
    valid_to: dt.date | None = None,
    *,
    product_code: str = "45A52",
    unit: str = "04",
) -> ContractTerms:
    return ContractTerms(provider_id, product_code, unit, tariff_cents, valid_from, valid_to)


def allocation(**kw: object) -> Allocation:
    base = Allocation(
        number="T-1",
        case_id=7,
        provider_id=HORIZON,
        municipality_id=GEMEENTE,
        variant=Variant.SPECIFIC,
        start=D(2026, 1, 1),
        end=D(2026, 9, 30),
        product_category="45",
        product_code="45A52",
        volume=100,
        unit="04",
        frequency=Frequency.TOTAL,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def delivery(**kw: object) -> Delivery:
    base = Delivery(
        id=1,
        provider_id=HORIZON,
        allocation_number="T-1",
        product_category="45",
        product_code="45A52",
        start=D(2026, 3, 1),
        end=D(2026, 3, 31),
        volume=10,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


AGREEMENT = SubProviderAgreement(KASSIER, ALTRA, Margin(MarginKind.PERCENT, 660), D(2026, 1, 1))


def check(
    lines: list[Delivery],
    allocations: list[Allocation] | None = None,
    contracts: list[ContractTerms] | None = None,
    agreements: list[SubProviderAgreement] | None = None,
) -> tuple[list[int], list[RejectReason]]:
    accepted, rejected = accept_lines(
        lines,
        allocations if allocations is not None else [allocation()],
        contracts if contracts is not None else [contract()],
        agreements or [],
    )
    return [a.amount_cents for a in accepted], [r.reason for r in rejected]


def test_a_valid_line_is_accepted_at_volume_times_tariff() -> None:
    assert check([delivery(volume=10)]) == ([120_000], [])


# Each rule: the smallest change to a valid line that breaks it, and the reason it gives.
@pytest.mark.parametrize(
    ("line", "alloc", "contracts", "reason"),
    [
        pytest.param(
            delivery(start=D(2026, 3, 5), end=D(2026, 3, 4)), None, None,
            RejectReason.BAD_PERIOD, id="ends-before-start",
        ),
        pytest.param(
            delivery(start=D(2026, 3, 20), end=D(2026, 4, 2)), None, None,
            RejectReason.NOT_ONE_MONTH, id="two-months",
        ),
        pytest.param(delivery(volume=0), None, None, RejectReason.BAD_VOLUME, id="zero"),
        pytest.param(
            delivery(allocation_number="T-404"), None, None,
            RejectReason.NO_ALLOCATION, id="unknown-allocation",
        ),
        pytest.param(
            delivery(provider_id=ALTRA), None, None,
            RejectReason.NOT_ALLOWED, id="someone-elses-allocation",
        ),
        pytest.param(
            delivery(start=D(2026, 10, 1), end=D(2026, 10, 31)), None, None,
            RejectReason.OUTSIDE_ALLOCATION, id="after-the-end",
        ),
        pytest.param(
            delivery(start=D(2026, 1, 1), end=D(2026, 1, 31)),
            allocation(start=D(2026, 1, 15)), None,
            RejectReason.OUTSIDE_ALLOCATION, id="partly-before-the-start",
        ),
        pytest.param(
            delivery(product_code="45A53"), None, [contract(product_code="45A53")],
            RejectReason.OTHER_PRODUCT, id="specific-other-code",
        ),
        pytest.param(
            delivery(product_category="54", product_code="54001"),
            allocation(variant=Variant.ASPECIFIC, product_code=None, volume=None, unit=None,
                       frequency=None),
            [contract(product_code="54001")],
            RejectReason.OTHER_PRODUCT, id="aspecific-other-category",
        ),
        pytest.param(delivery(), None, [], RejectReason.NO_TARIFF, id="no-contract"),
        pytest.param(
            delivery(), None, [contract(valid_from=D(2026, 4, 1))],
            RejectReason.NO_TARIFF, id="tariff-starts-later",
        ),
        pytest.param(
            delivery(), None, [contract(valid_to=D(2026, 3, 15))],
            RejectReason.NO_TARIFF, id="tariff-ends-in-the-period",
        ),
        pytest.param(
            delivery(), None,
            [contract(HORIZON, 12_000, valid_to=D(2026, 3, 15)),
             contract(HORIZON, 12_500, D(2026, 3, 16))],
            RejectReason.TARIFF_CHANGES, id="indexation-mid-period",
        ),
        pytest.param(
            delivery(), None, [contract(unit="01")], RejectReason.OTHER_UNIT, id="unit-differs"
        ),
        pytest.param(
            delivery(volume=101), None, None, RejectReason.OVER_VOLUME, id="over-total-volume"
        ),
        pytest.param(
            delivery(volume=3), allocation(volume=2, frequency=Frequency.MONTH), None,
            RejectReason.OVER_VOLUME, id="over-month-volume",
        ),
        pytest.param(
            delivery(volume=9),
            allocation(variant=Variant.ASPECIFIC, product_code=None, volume=None, unit=None,
                       frequency=None, budget_cents=100_000),
            None, RejectReason.OVER_BUDGET, id="over-budget",
        ),
    ],
)  # fmt: skip
def test_each_rule_rejects_with_its_reason(
    line: Delivery,
    alloc: Allocation | None,
    contracts: list[ContractTerms] | None,
    reason: RejectReason,
) -> None:
    assert check([line], [alloc] if alloc else None, contracts) == ([], [reason])


@pytest.mark.parametrize(
    ("variant", "fields", "line"),
    [
        (Variant.ASPECIFIC, {"product_code": None}, delivery(product_code="45A99")),
        (Variant.GENERIC, {"product_category": None, "product_code": None},
         delivery(product_category="54", product_code="54001")),
        (Variant.OUTPUT, {"unit": "82"}, delivery(volume=1)),
    ],
)  # fmt: skip
def test_variants_accept_what_they_allow(
    variant: Variant, fields: dict[str, object], line: Delivery
) -> None:
    alloc = allocation(
        **{"variant": variant, "volume": None, "unit": None, "frequency": None, **fields}
    )
    if variant is Variant.OUTPUT:
        alloc = replace(alloc, volume=1, frequency=Frequency.TOTAL, unit="82")
    contracts = [contract(product_code=line.product_code, unit="82" if alloc.unit else "04")]
    amounts, reasons = check([line], [alloc], contracts)
    assert reasons == [] and len(amounts) == 1


def test_the_tariff_valid_on_the_delivery_date_applies() -> None:
    contracts = [
        contract(HORIZON, 12_000, valid_to=D(2026, 6, 30)),
        contract(HORIZON, 12_480, D(2026, 7, 1)),
    ]
    june = delivery(id=1, start=D(2026, 6, 1), end=D(2026, 6, 30), volume=1)
    july = delivery(id=2, start=D(2026, 7, 1), end=D(2026, 7, 31), volume=1)
    assert check([june, july], contracts=contracts) == ([12_000, 12_480], [])


@pytest.mark.parametrize(
    ("frequency", "volume", "month_lines", "accepted"),
    [
        # 2 hours a day over the 31 days of March: 62 hours fit, 63 do not.
        (Frequency.DAY, 2, [62], 1),
        (Frequency.DAY, 2, [63], 0),
        # 7 hours a week: 31 hours in March.
        (Frequency.WEEK, 7, [31], 1),
        (Frequency.WEEK, 7, [30, 2], 1),
        (Frequency.MONTH, 10, [6, 4], 2),
        (Frequency.MONTH, 10, [6, 5], 1),
    ],
)
def test_volume_per_frequency(
    frequency: Frequency, volume: int, month_lines: list[int], accepted: int
) -> None:
    alloc = allocation(volume=volume, frequency=frequency)
    lines = [delivery(id=i, volume=v) for i, v in enumerate(month_lines, 1)]
    amounts, _ = check(lines, [alloc])
    assert len(amounts) == accepted


def test_month_frequency_counts_per_calendar_month() -> None:
    alloc = allocation(volume=10, frequency=Frequency.MONTH)
    march = delivery(id=1, volume=10)
    april = delivery(id=2, start=D(2026, 4, 1), end=D(2026, 4, 30), volume=10)
    assert check([march, april], [alloc]) == ([120_000, 120_000], [])


def test_day_frequency_is_pro_rata_when_the_allocation_starts_mid_month() -> None:
    alloc = allocation(start=D(2026, 3, 22), volume=1, frequency=Frequency.DAY)  # 10 days
    ok = delivery(id=1, start=D(2026, 3, 22), volume=10)
    assert check([ok], [alloc]) == ([120_000], [])
    assert check([replace(ok, volume=11)], [alloc])[1] == [RejectReason.OVER_VOLUME]


def test_kassier_model_registered_sub_provider_delivers_under_the_kassier() -> None:
    alloc = allocation(provider_id=KASSIER)
    line = delivery(provider_id=ALTRA)
    accepted, rejected = accept_lines([line], [alloc], [contract(KASSIER)], [AGREEMENT])
    assert rejected == () and accepted[0].holder_id == KASSIER


@pytest.mark.parametrize(
    "agreement",
    [
        pytest.param(None, id="not-registered"),
        pytest.param(replace(AGREEMENT, kassier_id=HORIZON), id="registered-with-another"),
        pytest.param(replace(AGREEMENT, valid_to=D(2026, 3, 15)), id="agreement-ended"),
    ],
)
def test_kassier_model_unregistered_provider_is_rejected(
    agreement: SubProviderAgreement | None,
) -> None:
    alloc = allocation(provider_id=KASSIER)
    _, rejected = accept_lines(
        [delivery(provider_id=ALTRA)],
        [alloc],
        [contract(KASSIER)],
        [agreement] if agreement else [],
    )
    assert [r.reason for r in rejected] == [RejectReason.NOT_ALLOWED]


def test_the_reason_reads_as_a_sentence_in_dutch_and_english() -> None:
    _, rejected = accept_lines([delivery(volume=101)], [allocation()], [contract()])
    assert rejected[0].text() == (
        "Hiermee gaat het aantal boven de toewijzing: toegestaan 100 uur in totaal, "
        "al goedgekeurd 0, deze regel 101."
    )
    token = current_locale.set("en")
    try:
        english = rejected[0].text()
    finally:
        current_locale.reset(token)
    assert english.startswith("This would take the number above the allocation")
    assert "100 hour in total" in english


def test_which_line_goes_over_does_not_depend_on_arrival_order() -> None:
    alloc = allocation(volume=10)
    early = delivery(id=5, start=D(2026, 2, 1), end=D(2026, 2, 28), volume=6)
    late = delivery(id=3, volume=6)
    for order in ([early, late], [late, early]):
        accepted, rejected = accept_lines(order, [alloc], [contract()])
        assert [a.delivery.id for a in accepted] == [5]
        assert [r.delivery.id for r in rejected] == [3]


# ---- corrections ----


def test_first_run_declares_every_accepted_line_as_debit() -> None:
    result = settle([delivery()], [allocation()], [contract()])
    assert [(x.direction, x.amount_cents) for x in result.lines] == [(Direction.DEBIT, 120_000)]
    assert result.totals == {HORIZON: 120_000}


def test_an_unchanged_line_is_not_declared_again() -> None:
    first = settle([delivery()], [allocation()], [contract()])
    again = settle([delivery()], [allocation()], [contract()], previous=first.lines)
    assert again.lines == ()


def test_a_changed_line_is_credited_in_full_before_the_new_line() -> None:
    first = settle([delivery(volume=10)], [allocation()], [contract()])
    second = settle([delivery(volume=8)], [allocation()], [contract()], previous=first.lines)
    assert [(x.direction, x.volume, x.amount_cents) for x in second.lines] == [
        (Direction.CREDIT, 10, 120_000),
        (Direction.DEBIT, 8, 96_000),
    ]
    assert second.total_cents == -24_000


def test_a_removed_or_now_rejected_line_is_credited() -> None:
    first = settle([delivery()], [allocation()], [contract()])
    removed = settle([], [allocation()], [contract()], previous=first.lines)
    assert [(x.direction, x.amount_cents) for x in removed.lines] == [(Direction.CREDIT, 120_000)]
    shortened = allocation(end=D(2026, 2, 28))
    rejected = settle([delivery()], [shortened], [contract()], previous=first.lines)
    assert [x.direction for x in rejected.lines] == [Direction.CREDIT]
    assert [r.reason for r in rejected.rejected] == [RejectReason.OUTSIDE_ALLOCATION]


def test_a_credited_line_that_comes_back_is_declared_again() -> None:
    first = settle([delivery()], [allocation()], [contract()])
    removed = settle([], [allocation()], [contract()], previous=first.lines)
    back = settle([delivery()], [allocation()], [contract()], previous=first.lines + removed.lines)
    assert [x.direction for x in back.lines] == [Direction.DEBIT]


def test_late_correction_of_a_closed_quarter_keeps_its_own_period() -> None:
    q1 = settle([delivery()], [allocation()], [contract()])
    q2 = settle([delivery(volume=9)], [allocation()], [contract()], previous=q1.lines)
    assert {(x.start, x.end) for x in q2.lines} == {(D(2026, 3, 1), D(2026, 3, 31))}
    assert q1.lines[0].volume == 10  # the earlier run is untouched


# ---- order independence (property) ----

_lines = st.lists(
    st.builds(
        Delivery,
        id=st.integers(1, 10_000),
        provider_id=st.sampled_from([HORIZON, ALTRA, KASSIER]),
        allocation_number=st.sampled_from(["T-1", "T-2", "T-3"]),
        product_category=st.just("45"),
        product_code=st.sampled_from(["45A52", "45A53"]),
        start=st.dates(D(2026, 1, 1), D(2026, 10, 31)),
        end=st.just(D(2026, 1, 1)),
        volume=st.integers(-1, 40),
    ).map(
        lambda d: replace(d, end=min(d.start + dt.timedelta(days=d.volume % 9), D(2026, 12, 31)))
    ),
    max_size=25,
    unique_by=lambda d: d.id,
)


@given(_lines, st.randoms(use_true_random=False))
def test_settlement_does_not_depend_on_the_order_lines_arrive_in(
    lines: list[Delivery], rnd: object
) -> None:
    allocations = [
        allocation(number="T-1", volume=60, frequency=Frequency.MONTH),
        allocation(number="T-2", provider_id=KASSIER, variant=Variant.ASPECIFIC,
                   product_code=None, volume=None, unit=None, frequency=None,
                   budget_cents=1_000_000),
        allocation(number="T-3", volume=3, frequency=Frequency.WEEK),
    ]  # fmt: skip
    contracts = [
        contract(HORIZON, 12_000, valid_to=D(2026, 6, 30)),
        contract(HORIZON, 12_480, D(2026, 7, 1)),
        contract(KASSIER, 11_000),
        contract(KASSIER, 9_000, product_code="45A53"),
    ]
    shuffled = list(lines)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    one = settle(lines, allocations, contracts, [AGREEMENT])
    two = settle(shuffled, allocations, contracts, [AGREEMENT])
    assert one.lines == two.lines
    assert {r.delivery.id: r.reason for r in one.rejected} == {
        r.delivery.id: r.reason for r in two.rejected
    }


def test_references_tie_a_credit_to_the_debit_it_takes_back() -> None:
    first = settle([delivery(volume=10)], [allocation()], [contract()])
    second = settle([delivery(volume=8)], [allocation()], [contract()], previous=first.lines)
    assert [x.reference for x in first.lines] == ["1-1"]
    assert [(x.reference, x.previous_reference) for x in second.lines] == [
        ("1-1C", "1-1"),
        ("1-2", None),
    ]


# ---- an allocation's fields fit its variant ----

_EMPTY: dict[str, object] = {
    "product_category": None,
    "product_code": None,
    "volume": None,
    "unit": None,
    "frequency": None,
}


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({}, set()),
        ({"variant": Variant.ASPECIFIC, **_EMPTY, "product_category": "45"}, set()),
        ({"variant": Variant.ASPECIFIC, **_EMPTY, "product_category": "45",
          "budget_cents": 500_000}, set()),
        ({"variant": Variant.GENERIC, **_EMPTY}, set()),
        ({"variant": Variant.OUTPUT, **_EMPTY, "product_code": "45A52", "unit": "82"}, set()),
        ({"product_code": None}, {"product_code"}),
        ({"frequency": None}, {"frequency"}),
        ({"variant": Variant.ASPECIFIC}, {"product_code", "volume", "unit", "frequency"}),
        ({"variant": Variant.GENERIC, **_EMPTY, "product_category": "45"}, {"product_category"}),
        ({"variant": Variant.OUTPUT, **_EMPTY, "product_code": "45A52", "unit": "04"}, {"unit"}),
        ({"number": "T 1"}, {"number"}),
        ({"product_category": "4"}, {"product_category"}),
        ({"product_code": "45a5"}, {"product_code"}),
        ({"unit": "99"}, {"unit"}),
        ({"volume": 0}, {"volume"}),
        ({"budget_cents": -1}, {"budget_cents"}),
        ({"end": D(2025, 12, 31)}, {"end"}),
    ],
)  # fmt: skip
def test_allocation_fields_fit_the_variant(changes: dict[str, object], errors: set[str]) -> None:
    assert set(check_allocation(allocation(**changes))) == errors


@pytest.mark.parametrize(
    ("start", "end", "volume", "errors"),
    [
        (D(2026, 3, 1), D(2026, 3, 31), 1, set()),
        (D(2026, 3, 2), D(2026, 3, 1), 1, {"end"}),
        (D(2026, 3, 31), D(2026, 4, 1), 1, {"end"}),
        (D(2026, 12, 1), D(2027, 12, 31), 1, {"end"}),  # same month, another year
        (D(2026, 3, 1), D(2026, 3, 1), 0, {"volume"}),
    ],
)
def test_delivery_draft(start: dt.date, end: dt.date, volume: int, errors: set[str]) -> None:
    assert set(check_delivery_draft(start, end, volume)) == errors


def test_model_codes_match_the_rules() -> None:
    from keerpunt.settlement import models

    assert models.VARIANTS == tuple(Variant)
    assert models.FREQUENCIES == tuple(Frequency)
    assert models.MARGIN_KINDS == tuple(MarginKind)


def test_a_line_refused_over_budget_uses_none_of_the_volume() -> None:
    """An allocation with both a volume and a budget: a refused line counts for neither, so
    a later line that fits both is accepted (the refused hours were never delivered)."""
    alloc = allocation(volume=7, frequency=Frequency.MONTH, budget_cents=60_000)
    lines = [
        delivery(id=1, start=D(2026, 3, 1), end=D(2026, 3, 10), volume=5),
        delivery(id=2, start=D(2026, 3, 11), end=D(2026, 3, 20), volume=2),  # over budget
        delivery(id=3, start=D(2026, 3, 21), end=D(2026, 3, 31), volume=1),
    ]
    amounts, reasons = check(lines, [alloc], [contract(tariff_cents=10_000)])
    assert (amounts, reasons) == ([50_000, 10_000], [RejectReason.OVER_BUDGET])
