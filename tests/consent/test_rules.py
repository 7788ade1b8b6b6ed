"""The law's age bands and the precedence rule, as tables."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keerpunt.consent.rules import (
    LegalBasis,
    RecordFacts,
    age_on,
    effective_decision,
    required_consenters,
)


@pytest.mark.parametrize(
    ("birth", "day", "age"),
    [
        (dt.date(2014, 5, 10), dt.date(2026, 5, 9), 11),
        (dt.date(2014, 5, 10), dt.date(2026, 5, 10), 12),  # 12th birthday: 12 from that day
        (dt.date(2010, 5, 10), dt.date(2026, 5, 9), 15),
        (dt.date(2010, 5, 10), dt.date(2026, 5, 10), 16),
        (dt.date(2012, 2, 29), dt.date(2026, 2, 28), 13),  # leap-day child
        (dt.date(2012, 2, 29), dt.date(2026, 3, 1), 14),
    ],
)
def test_age_on_the_day_of_processing(birth: dt.date, day: dt.date, age: int) -> None:
    assert age_on(birth, day) == age


@pytest.mark.parametrize(
    ("age", "who"),
    [
        (0, {"parent"}),
        (11, {"parent"}),
        (12, {"youth", "parent"}),
        (15, {"youth", "parent"}),
        (16, {"youth"}),
        (17, {"youth"}),
    ],
)
def test_who_must_consent_by_age(age: int, who: set[str]) -> None:
    assert required_consenters(age) == who


@pytest.mark.parametrize(
    "basis",
    [LegalBasis.CHILD_PROTECTION_ORDER, LegalBasis.SECURE_CARE, LegalBasis.JUVENILE_PROBATION],
)
def test_no_consent_needed_under_a_legal_order(basis: LegalBasis) -> None:
    assert required_consenters(14, basis) == frozenset()


def r(i: int, objection: bool, org: int | None = None, role: str | None = None) -> RecordFacts:
    return RecordFacts(i, objection, org, role)


@pytest.mark.parametrize(
    ("records", "winner"),
    [
        ([r(1, False)], 1),
        ([r(1, False), r(2, True, org=5)], 2),  # specific objection beats general consent
        ([r(1, True), r(2, False, org=5)], 2),  # specific consent beats general objection
        ([r(1, False, org=5), r(2, True, org=5)], 2),  # equal: objection wins
        ([r(1, False, role="triage_member"), r(2, True)], 1),  # role beats everyone
        ([r(1, False, org=5), r(2, True, role="triage_member")], 1),  # org beats role
        ([r(1, False, org=6)], None),  # another organisation: does not apply
        ([r(1, False, role="school")], None),  # another role: does not apply
    ],
)
def test_precedence(records: list[RecordFacts], winner: int | None) -> None:
    got = effective_decision(records, org_id=5, roles=frozenset({"triage_member"}))
    assert (got.record_id if got else None) == winner


@pytest.mark.parametrize(
    ("records", "winner"),
    [
        ([r(1, False)], None),  # "everyone at the table": not someone who is not at it
        ([r(1, False, role="triage_member")], 1),  # the triage team as such: yes
        ([r(1, False, org=5)], 1),  # their organisation by name: yes
        ([r(1, True, org=5), r(2, False)], 1),
    ],
)
def test_everyone_at_the_table_means_only_those_at_the_table(
    records: list[RecordFacts], winner: int | None
) -> None:
    got = effective_decision(records, org_id=5, roles=frozenset({"triage_member"}), at_table=False)
    assert (got.record_id if got else None) == winner


records_st = st.lists(
    st.builds(
        RecordFacts,
        record_id=st.integers(1, 1000),
        objection=st.booleans(),
        recipient_org_id=st.one_of(st.none(), st.sampled_from([5, 6])),
        recipient_role=st.one_of(st.none(), st.sampled_from(["triage_member", "school"])),
    ),
    max_size=8,
)


@given(records_st)
def test_an_objection_at_the_most_specific_applicable_level_always_wins(
    records: list[RecordFacts],
) -> None:
    roles = frozenset({"triage_member"})
    got = effective_decision(records, org_id=5, roles=roles)
    applicable = [
        x
        for x in records
        if x.recipient_org_id in (None, 5) and x.recipient_role in (None, "triage_member")
    ]
    if not applicable:
        assert got is None
        return
    assert got is not None
    top = max(x.specificity for x in applicable)
    if any(x.objection for x in applicable if x.specificity == top):
        assert got.objection  # never more disclosure than the strictest top-level record
