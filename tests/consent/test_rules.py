"""The law's age bands, the exceptions, precedence and the whole decision, as tables and
properties (no database: the rules are plain functions)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keerpunt.consent.rules import (
    Consenter,
    Disclosure,
    LegalBasis,
    Recipient,
    RecordFacts,
    age_on,
    decide,
    effective_decision,
    family_needed_at_table,
    required_consenters,
)

TODAY = dt.date(2026, 11, 24)


@pytest.mark.parametrize(
    ("birth", "day", "age"),
    [
        (dt.date(2014, 5, 10), dt.date(2026, 5, 9), 11),  # day before the 12th birthday
        (dt.date(2014, 5, 10), dt.date(2026, 5, 10), 12),  # 12th birthday: 12 from that day
        (dt.date(2010, 5, 10), dt.date(2026, 5, 9), 15),  # day before the 16th birthday
        (dt.date(2010, 5, 10), dt.date(2026, 5, 10), 16),  # 16th birthday
        (dt.date(2014, 12, 31), dt.date(2026, 12, 31), 12),  # year end
        (dt.date(2015, 1, 1), dt.date(2026, 12, 31), 11),
        # a 29 February child: the 12th and 16th birthday fall in leap years (12 and 16 are
        # multiples of 4), so the edge is the 29th itself
        (dt.date(2012, 2, 29), dt.date(2024, 2, 28), 11),
        (dt.date(2012, 2, 29), dt.date(2024, 2, 29), 12),
        (dt.date(2008, 2, 29), dt.date(2024, 2, 28), 15),
        (dt.date(2008, 2, 29), dt.date(2024, 2, 29), 16),
        # in a common year the year is complete on 1 March, not on 28 February
        (dt.date(2012, 2, 29), dt.date(2026, 2, 28), 13),
        (dt.date(2012, 2, 29), dt.date(2026, 3, 1), 14),
        (dt.date(2010, 2, 28), dt.date(2026, 2, 28), 16),
        (dt.date(2026, 11, 24), dt.date(2026, 11, 24), 0),
    ],
)
def test_age_on_the_day_of_processing(birth: dt.date, day: dt.date, age: int) -> None:
    assert age_on(birth, day) == age


@pytest.mark.parametrize(
    ("age", "youth_alone", "who"),
    [
        (0, False, {"parent"}),
        (11, False, {"parent"}),
        (11, True, {"parent"}),  # the exceptions only exist for 12 to 15
        (12, False, {"youth", "parent"}),
        (15, False, {"youth", "parent"}),
        (12, True, {"youth"}),  # serious harm / the youth persists: the youth alone
        (15, True, {"youth"}),
        (16, False, {"youth"}),
        (16, True, {"youth"}),
        (17, False, {"youth"}),
    ],
)
def test_who_must_consent_by_age(age: int, youth_alone: bool, who: set[str]) -> None:
    assert required_consenters(age, youth_alone=youth_alone) == who


@pytest.mark.parametrize(
    "basis",
    [LegalBasis.CHILD_PROTECTION_ORDER, LegalBasis.SECURE_CARE, LegalBasis.JUVENILE_PROBATION],
)
@pytest.mark.parametrize("age", [3, 11, 12, 15, 16, 17])
def test_no_consent_needed_under_a_legal_order(basis: LegalBasis, age: int) -> None:
    assert required_consenters(age, basis) == frozenset()
    out = decide(
        age=age,
        basis=basis,
        consenters=[Consenter(1, "youth"), Consenter(2, "parent")],
        records=[RecordFacts(9, True, None, None, subject_member_id=1)],  # even an objection
        recipient=Recipient(5, frozenset({"triage_member"}), at_table=True),
        today=TODAY,
    )
    # the legal basis is what is recorded as the justification
    assert (out.level, out.reason) == (Disclosure.FULL, f"legal_basis:{basis.value}")


def r(
    i: int,
    objection: bool,
    org: int | None = None,
    role: str | None = None,
    *,
    member: int = 0,
    until: dt.date | None = None,
    withdrawn: bool = False,
) -> RecordFacts:
    return RecordFacts(i, objection, org, role, member, until, withdrawn)


@pytest.mark.parametrize(
    ("records", "winner"),
    [
        ([r(1, False)], 1),
        ([r(1, False), r(2, True, org=5)], 2),  # specific objection beats general consent
        ([r(1, True), r(2, False, org=5)], 2),  # specific consent beats general objection
        ([r(1, False, org=5), r(2, True, org=5)], 2),  # equal: objection wins
        ([r(2, True, org=5), r(1, False, org=5)], 2),  # ... in any order
        ([r(1, True), r(2, False)], 1),  # equal, least specific: objection wins
        ([r(1, False, role="triage_member"), r(2, True)], 1),  # role beats everyone
        ([r(1, False, org=5), r(2, True, role="triage_member")], 1),  # org beats role
        ([r(1, False, org=6)], None),  # another organisation: does not apply
        ([r(1, False, role="school")], None),  # another role: does not apply
        ([r(1, True, org=6), r(2, False)], 2),  # an objection to someone else: not ours
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


# The whole decision for one recipient (an expert of organisation 5, at the table).
EXPERT = Recipient(5, frozenset({"triage_member"}), at_table=True)
YOUTH, MOTHER, FATHER = Consenter(1, "youth"), Consenter(2, "parent"), Consenter(3, "parent")
FAMILY = [YOUTH, MOTHER, FATHER]
TOMORROW, YESTERDAY = TODAY + dt.timedelta(days=1), TODAY - dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("age", "records", "level", "reason", "ids"),
    [
        # under 12: the parents with authority, all of them
        (11, [r(1, False, member=2), r(2, False, member=3)], "FULL", "consent", (1, 2)),
        (11, [r(1, False, member=2)], "PSEUDONYMOUS", "no_consent", ()),
        (11, [r(1, False, member=1)], "PSEUDONYMOUS", "no_consent", ()),  # the child alone: no
        # 12 to 15: the youth and the parents
        (14, [r(1, False, member=1)], "PSEUDONYMOUS", "no_consent", ()),
        (
            14,
            [r(1, False, member=1), r(2, False, member=2), r(3, False, org=5, member=3)],
            "FULL",
            "consent",
            (1, 2, 3),
        ),
        (
            14,
            [r(1, False, member=1), r(2, False, member=2), r(3, True, org=5, member=3)],
            "PSEUDONYMOUS",
            "objection",
            (3,),
        ),
        # 16 and older: the youth alone; the parents' records do not count
        (16, [r(1, False, member=1)], "FULL", "consent", (1,)),
        (16, [r(1, False, member=1), r(2, True, org=5, member=2)], "FULL", "consent", (1,)),
        (16, [r(1, True, member=1), r(2, False, member=2)], "PSEUDONYMOUS", "objection", (1,)),
        # expiry: valid through its last day, not after
        (16, [r(1, False, member=1, until=TODAY)], "FULL", "consent", (1,)),
        (16, [r(1, False, member=1, until=YESTERDAY)], "PSEUDONYMOUS", "no_consent", ()),
        # an expired specific objection no longer beats the general consent
        (
            16,
            [r(1, False, member=1), r(2, True, org=5, member=1, until=YESTERDAY)],
            "FULL",
            "consent",
            (1,),
        ),
        # withdrawal: at once, and a withdrawn objection stops counting too
        (16, [r(1, False, member=1, withdrawn=True)], "PSEUDONYMOUS", "no_consent", ()),
        (
            16,
            [r(1, False, member=1), r(2, True, org=5, member=1, withdrawn=True)],
            "FULL",
            "consent",
            (1,),
        ),
        (16, [r(1, False, org=6, member=1)], "PSEUDONYMOUS", "no_consent", ()),  # other org
    ],
)
def test_decision_table(
    age: int, records: list[RecordFacts], level: str, reason: str, ids: tuple[int, ...]
) -> None:
    out = decide(age=age, consenters=FAMILY, records=records, recipient=EXPERT, today=TODAY)
    assert (out.level.name, out.reason, out.record_ids) == (level, reason, ids)


def test_a_parent_who_is_required_but_not_registered_means_no_full_disclosure() -> None:
    out = decide(
        age=14,
        consenters=[YOUTH],
        records=[r(1, False, member=1)],
        recipient=EXPERT,
        today=TODAY,
    )
    assert (out.level, out.reason) == (Disclosure.PSEUDONYMOUS, "consenter_missing")


@pytest.mark.parametrize("age", [12, 15])
def test_youth_alone_exception_lets_the_youths_consent_suffice_at_12_to_15(age: int) -> None:
    records = [r(1, False, member=1), r(2, True, member=2)]  # the parents refused
    plain = decide(age=age, consenters=FAMILY, records=records, recipient=EXPERT, today=TODAY)
    assert plain.level is Disclosure.PSEUDONYMOUS
    out = decide(
        age=age,
        consenters=FAMILY,
        records=records,
        recipient=EXPERT,
        today=TODAY,
        youth_alone=True,
    )
    assert (out.level, out.reason, out.record_ids) == (Disclosure.FULL, "youth_alone", (1,))


def test_youth_alone_exception_still_needs_the_youths_own_consent() -> None:
    out = decide(
        age=13,
        consenters=FAMILY,
        records=[r(1, True, member=1), r(2, False, member=2), r(3, False, member=3)],
        recipient=EXPERT,
        today=TODAY,
        youth_alone=True,
    )
    assert (out.level, out.reason) == (Disclosure.PSEUDONYMOUS, "objection")


def test_youth_alone_exception_means_nothing_under_12() -> None:
    out = decide(
        age=11,
        consenters=FAMILY,
        records=[r(1, False, member=1)],
        recipient=EXPERT,
        today=TODAY,
        youth_alone=True,
    )
    assert out.level is Disclosure.PSEUDONYMOUS


# --- "the youth is at the table" (seed 003 §5.2: no consent AND the youth not at the table
# means anonymous) ---


@pytest.mark.parametrize(
    ("age", "youth_alone", "needed"),
    [
        (9, False, {"youth", "parent"}),
        (11, False, {"youth", "parent"}),
        (12, False, {"youth", "parent"}),
        (15, False, {"youth", "parent"}),
        (14, True, {"youth"}),
        (16, False, {"youth"}),
    ],
)
def test_who_must_be_at_the_table_themselves(age: int, youth_alone: bool, needed: set[str]) -> None:
    assert family_needed_at_table(age, youth_alone=youth_alone) == needed


@pytest.mark.parametrize(
    ("age", "present", "records", "level", "reason"),
    [
        (16, {"youth"}, [], "FULL", "family_at_table"),
        (16, set(), [], "PSEUDONYMOUS", "no_consent"),
        (16, {"parent"}, [], "PSEUDONYMOUS", "no_consent"),  # the youth is not there
        (14, {"youth"}, [], "PSEUDONYMOUS", "no_consent"),  # under 16 also a parent
        (14, {"youth", "parent"}, [], "FULL", "family_at_table"),
        (10, {"parent"}, [], "PSEUDONYMOUS", "no_consent"),  # the seed: the youth at the table
        (10, {"youth", "parent"}, [], "FULL", "family_at_table"),
        # an objection said at the table still counts: presence is no consent to everyone
        (16, {"youth"}, [r(1, True, org=5, member=1)], "PSEUDONYMOUS", "objection"),
        (14, {"youth", "parent"}, [r(1, True, member=2)], "PSEUDONYMOUS", "objection"),
    ],
)
def test_the_family_at_the_table(
    age: int, present: set[str], records: list[RecordFacts], level: str, reason: str
) -> None:
    out = decide(
        age=age,
        consenters=FAMILY,
        records=records,
        recipient=EXPERT,
        today=TODAY,
        family_present=frozenset(present),
    )
    assert (out.level.name, out.reason) == (level, reason)


def test_the_family_at_the_table_opens_nothing_for_those_not_at_it() -> None:
    out = decide(
        age=16,
        consenters=FAMILY,
        records=[],
        recipient=Recipient(5, frozenset({"triage_member"}), at_table=False),
        today=TODAY,
        family_present=frozenset({"youth"}),
    )
    assert out.level is Disclosure.PSEUDONYMOUS


# --- properties over random record sets, ages and recipients ---

MEMBERS = [YOUTH, MOTHER, FATHER]
records_st = st.lists(
    st.builds(
        RecordFacts,
        record_id=st.integers(1, 1000),
        objection=st.booleans(),
        recipient_org_id=st.one_of(st.none(), st.sampled_from([5, 6])),
        recipient_role=st.one_of(st.none(), st.sampled_from(["triage_member", "school"])),
        subject_member_id=st.sampled_from([1, 2, 3]),
        valid_until=st.one_of(st.none(), st.sampled_from([YESTERDAY, TODAY, TOMORROW])),
        withdrawn=st.booleans(),
    ),
    max_size=10,
    unique_by=lambda x: x.record_id,
)
recipient_st = st.builds(
    Recipient,
    org_id=st.one_of(st.none(), st.sampled_from([5, 6, 7])),
    roles=st.sampled_from([frozenset(), frozenset({"triage_member"}), frozenset({"school"})]),
    at_table=st.booleans(),
)
scenario = st.fixed_dictionaries(
    {
        "age": st.integers(0, 17),
        "records": records_st,
        "recipient": recipient_st,
        "youth_alone": st.booleans(),
        "family_present": st.sets(st.sampled_from(["youth", "parent"])).map(frozenset),
        "consenters": st.sampled_from([MEMBERS, [YOUTH, MOTHER], [YOUTH], [MOTHER]]),
    }
)


def _run(s: dict[str, Any], **override: object) -> Disclosure:
    return decide(today=TODAY, **{**s, **override}).level


def _applies(x: RecordFacts, rec: Recipient) -> bool:
    return (
        (x.recipient_org_id is None or x.recipient_org_id == rec.org_id)
        and (x.recipient_role is None or x.recipient_role in rec.roles)
        and (rec.at_table or x.specificity > 0)
    )


@given(scenario)
def test_never_more_than_the_strictest_applicable_record_allows(s: dict[str, Any]) -> None:
    """No combination of records yields more disclosure than the strictest applicable record.

    Precisely: take the people whose consent the law requires for this age (and exception),
    and of each of them the records that are live today (not withdrawn, not expired) and apply
    to this recipient (its organisation, one of its roles, or everyone at the table when it sits
    there). For each person, the *deciding level* is their most specific such records. If any
    record at a person's deciding level is an objection, the outcome is at most PSEUDONYMOUS.
    If a required person has no such record at all, the outcome is FULL only when the family
    itself is at this recipient's table. Never is the outcome above what these bounds allow.
    """
    out = _run(s)
    needed = required_consenters(s["age"], youth_alone=s["youth_alone"])
    for person in s["consenters"]:
        if person.role not in needed:
            continue
        mine = [
            x
            for x in s["records"]
            if x.subject_member_id == person.member_id
            and x.is_live(TODAY)
            and _applies(x, s["recipient"])
        ]
        if mine:
            top = max(x.specificity for x in mine)
            if any(x.objection for x in mine if x.specificity == top):
                assert out <= Disclosure.PSEUDONYMOUS
        else:
            at_table = (
                s["recipient"].at_table
                and family_needed_at_table(s["age"], youth_alone=s["youth_alone"])
                <= s["family_present"]
            )
            assert out <= Disclosure.PSEUDONYMOUS or at_table
    if not needed <= {p.role for p in s["consenters"]}:
        assert out <= Disclosure.PSEUDONYMOUS


@given(
    scenario,
    st.builds(
        RecordFacts,
        record_id=st.integers(2000, 3000),
        objection=st.just(True),
        recipient_org_id=st.one_of(st.none(), st.sampled_from([5, 6])),
        recipient_role=st.one_of(st.none(), st.sampled_from(["triage_member", "school"])),
        subject_member_id=st.sampled_from([1, 2, 3]),
    ),
)
def test_adding_an_objection_never_discloses_more(
    s: dict[str, Any], objection: RecordFacts
) -> None:
    assert _run(s, records=[*s["records"], objection]) <= _run(s)


@given(scenario)
def test_withdrawn_and_expired_records_change_nothing(s: dict[str, Any]) -> None:
    live = [x for x in s["records"] if x.is_live(TODAY)]
    assert decide(today=TODAY, **s) == decide(today=TODAY, **{**s, "records": live})


@given(scenario)
def test_withdrawing_any_record_discloses_at_most_what_its_absence_would(s: dict[str, Any]) -> None:
    """Withdrawal is the same as the record never having been there (it never opens more
    than the remaining records allow, and a withdrawn objection only re-opens what the
    others allow)."""
    for i, x in enumerate(s["records"]):
        rest = s["records"][:i] + s["records"][i + 1 :]
        withdrawn = [*rest, dataclasses.replace(x, withdrawn=True)]
        assert _run(s, records=withdrawn) == _run(s, records=rest)


@given(scenario)
def test_full_disclosure_is_always_justified(s: dict[str, Any]) -> None:
    out = decide(today=TODAY, **s)
    if out.level is Disclosure.FULL:
        assert out.reason in {"consent", "youth_alone", "family_at_table"}
        if out.reason != "family_at_table":
            assert out.record_ids  # always justified by records
            by_id = {x.record_id: x for x in s["records"]}
            assert all(not by_id[i].objection and by_id[i].is_live(TODAY) for i in out.record_ids)
