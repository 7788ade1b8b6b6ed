"""The RET allocation framework as pure rules (seed 000): triggers, suitability, turns.

No database: the proposal is a function of the case's needs, the provider list and the
rotation's state.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keerpunt.triage.allocation import (
    TRIGGER_RULES,
    Basis,
    CaseNeeds,
    Domain,
    Involvement,
    OverrideWithoutReason,
    ProviderOffer,
    Rotation,
    TriggerKind,
    TriggerNotDue,
    check_trigger,
    decide,
    propose,
    queue,
    trigger_date,
)

D = dt.date
LOT = "Rijnmond systeemaanbieders"


def offer(
    pid: int,
    name: str,
    domain: Domain = Domain.JO,
    *,
    position: int | None = None,
    expertise: frozenset[str] = frozenset({"trauma", "gezin"}),
    ages: tuple[int, int] = (0, 17),
    locations: frozenset[str] = frozenset({"Rotterdam", "Schiedam"}),
    milieus: frozenset[int] = frozenset({2, 3}),
    contract_active: bool = True,
    lot: str = LOT,
) -> ProviderOffer:
    return ProviderOffer(
        provider_id=pid,
        name=name,
        lot=lot,
        domain=domain,
        position=pid if position is None else position,
        expertise=expertise,
        min_age=ages[0],
        max_age=ages[1],
        locations=locations,
        milieus=milieus,
        contract_active=contract_active,
    )


JO = [offer(1, "Enver"), offer(2, "Ihub"), offer(3, "Timon"), offer(4, "Prokino")]
GGZ = [offer(5, "Yulius", Domain.GGZ, position=1), offer(6, "Youz", Domain.GGZ, position=2)]
LVB = [offer(7, "Pameijer", Domain.LVB, position=1)]
ALL = JO + GGZ + LVB


def needs(
    domain: Domain = Domain.JO,
    *,
    age: int = 14,
    location: str = "Rotterdam",
    milieu: int | None = 3,
    expertise: frozenset[str] = frozenset({"trauma"}),
    past: dict[int, Involvement] | None = None,
) -> CaseNeeds:
    return CaseNeeds(
        lot=LOT,
        domain=domain,
        age=age,
        location=location,
        milieu=milieu,
        expertise=expertise,
        past=past or {},
    )


def start(domain: Domain = Domain.JO) -> Rotation:
    return Rotation(lot=LOT, domain=domain, turn=0, last_turn={})


# ---- triggers (mandaatregeling) ----


def test_tables_trigger_fires_after_three_weeks_and_is_due_after_four() -> None:
    since = D(2026, 3, 2)
    rule = TRIGGER_RULES[TriggerKind.TABLES_TIMEOUT]
    assert (rule.earliest_days, rule.latest_days) == (21, 28)
    assert trigger_date(TriggerKind.TABLES_TIMEOUT, since) == D(2026, 3, 23)
    with pytest.raises(TriggerNotDue) as exc:
        check_trigger(TriggerKind.TABLES_TIMEOUT, since, D(2026, 3, 22))
    assert exc.value.params["fires_on"] == D(2026, 3, 23)
    check_trigger(TriggerKind.TABLES_TIMEOUT, since, D(2026, 3, 23))


def test_crisis_trigger_fires_28_days_after_the_crisis_placement() -> None:
    placed = D(2026, 5, 1)
    assert trigger_date(TriggerKind.CRISIS_28_DAYS, placed) == D(2026, 5, 29)
    with pytest.raises(TriggerNotDue):
        check_trigger(TriggerKind.CRISIS_28_DAYS, placed, D(2026, 5, 28))
    check_trigger(TriggerKind.CRISIS_28_DAYS, placed, D(2026, 5, 29))


def test_a_trigger_date_in_the_future_is_refused() -> None:
    with pytest.raises(TriggerNotDue):
        check_trigger(TriggerKind.TABLES_TIMEOUT, D(2026, 6, 1), D(2026, 5, 1))


# ---- suitability first ----


def test_when_all_fit_the_first_in_line_gets_it_and_the_turn_moves_on() -> None:
    p = propose(needs(), ALL, start())
    assert p.chosen is not None and p.chosen.name == "Enver"
    assert p.basis is Basis.TURN
    assert p.turn_before == 0 and p.turn_after == 1
    assert p.next_before == "Enver" and p.next_after == "Ihub"
    # every provider of the lot is explained, the other domains as not suitable for the domain
    assert [c.name for c in p.candidates] == [
        "Enver",
        "Ihub",
        "Timon",
        "Prokino",
        "Yulius",
        "Youz",
        "Pameijer",
    ]
    assert [c.suitable for c in p.candidates] == [True] * 4 + [False] * 3
    yulius = p.candidates[4]
    assert [f.factor for f in yulius.failed] == ["domain"]
    assert not yulius.in_rotation


def test_each_factor_can_make_a_provider_unsuitable() -> None:
    providers = [
        offer(1, "Enver", contract_active=False),
        offer(2, "Ihub", expertise=frozenset({"gezin"})),
        offer(3, "Timon", ages=(16, 23)),
        offer(4, "Prokino", locations=frozenset({"Spijkenisse"})),
        offer(8, "Milieu2", milieus=frozenset({2})),
        offer(9, "AndereLot", lot="Ander perceel"),
        offer(10, "NietWeer"),
        offer(11, "Past"),
    ]
    p = propose(needs(past={10: Involvement.NOT_AGAIN}), providers, start())
    failed = {c.name: [f.factor for f in c.failed] for c in p.candidates}
    assert failed == {
        "Enver": ["contract"],
        "Ihub": ["expertise"],
        "Timon": ["age"],
        "Prokino": ["location"],
        "Milieu2": ["milieu"],
        "NietWeer": ["past_involvement"],
        "Past": [],
    }  # a provider of another lot is not a candidate at all
    assert p.chosen is not None and p.chosen.name == "Past"
    assert p.basis is Basis.ONLY_SUITABLE
    # every check is explained, passed or not
    assert {f.factor for f in p.candidates[-1].checks} == {
        "contract",
        "domain",
        "expertise",
        "age",
        "location",
        "milieu",
        "past_involvement",
    }


def test_no_milieu_needed_means_any_offer_fits() -> None:
    p = propose(needs(milieu=None), [offer(1, "A", milieus=frozenset())], start())
    assert p.chosen is not None


def test_good_past_involvement_goes_before_the_turn() -> None:
    p = propose(needs(past={3: Involvement.CONTINUE}), JO, start())
    assert p.chosen is not None and p.chosen.name == "Timon"
    assert p.basis is Basis.CONTINUITY
    # Enver was next and stays next: a suitability choice does not take its turn
    assert p.next_after == "Enver"


def test_nobody_suitable_gives_no_proposal_and_no_turn() -> None:
    p = propose(needs(age=30), JO, start())
    assert p.chosen is None and p.basis is Basis.NONE_SUITABLE
    assert p.turn_after == p.turn_before == 0


# ---- then fair share by turns ----


def test_an_unsuitable_provider_keeps_its_place_in_line() -> None:
    rot = start()
    # only Ihub offers help in Vlaardingen
    providers = [JO[0], offer(2, "Ihub", locations=frozenset({"Vlaardingen"})), JO[2], JO[3]]
    p = propose(needs(location="Vlaardingen"), providers, rot)
    assert p.chosen is not None and p.chosen.name == "Ihub"
    assert p.basis is Basis.ONLY_SUITABLE
    rot = decide(p, rot, p.chosen.provider_id, "").rotation
    # Enver was passed over because it did not fit: it is still first in line
    p2 = propose(needs(), JO, rot)
    assert p2.chosen is not None and p2.chosen.name == "Enver"
    assert p2.next_before == "Enver" and p2.next_after == "Timon"


def test_override_needs_a_reason_and_the_chosen_provider_takes_the_turn() -> None:
    rot = start()
    p = propose(needs(), JO, rot)
    with pytest.raises(OverrideWithoutReason):
        decide(p, rot, 3, "   ")
    d = decide(p, rot, 3, "Timon heeft deze week een plek in milieu 3.")
    assert d.overridden and d.turn == 1
    # Enver, proposed but passed over, stays first in line; Timon goes to the back
    assert [o.name for o in queue(d.rotation, JO)] == ["Enver", "Ihub", "Prokino", "Timon"]
    accept = decide(p, rot, 1, "")
    assert not accept.overridden and accept.turn == 1


def test_override_to_a_provider_outside_the_lot_is_refused() -> None:
    p = propose(needs(), JO, start())
    with pytest.raises(ValueError):
        decide(p, start(), 99, "reden")


def test_queue_orders_by_last_turn_then_position() -> None:
    rot = Rotation(lot=LOT, domain=Domain.JO, turn=5, last_turn={1: 5, 2: 2, 3: 4})
    assert [o.name for o in queue(rot, JO)] == ["Prokino", "Ihub", "Timon", "Enver"]


# ---- properties (hypothesis) ----

providers_st = st.integers(min_value=1, max_value=6).map(
    lambda n: [offer(i + 1, f"P{i + 1}") for i in range(n)]
)


@settings(max_examples=150, deadline=None)
@given(providers=providers_st, rounds=st.integers(min_value=1, max_value=60))
def test_all_always_suitable_counts_differ_by_at_most_one(
    providers: list[ProviderOffer], rounds: int
) -> None:
    rot = start()
    counts: Counter[int] = Counter()
    turns = []
    for _ in range(rounds):
        p = propose(needs(), providers, rot)
        assert p.chosen is not None
        d = decide(p, rot, p.chosen.provider_id, "")
        counts[p.chosen.provider_id] += 1
        turns.append(d.turn)
        rot = d.rotation
        spread = [counts[o.provider_id] for o in providers]
        assert max(spread) - min(spread) <= 1
    assert turns == list(range(1, rounds + 1))  # never skips or repeats a turn


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=5),
    steps=st.lists(
        st.tuples(
            st.sets(st.integers(min_value=1, max_value=5)),  # who does not fit this time
            st.one_of(st.none(), st.integers(min_value=1, max_value=5)),  # override target
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_turns_never_skip_or_repeat_and_the_longest_waiting_fit_goes_first(
    n: int, steps: list[tuple[set[int], int | None]]
) -> None:
    rot = start()
    given_turns = []
    for unfit, override in steps:
        providers = [
            offer(i, f"P{i}", ages=(99, 99) if i in unfit else (0, 17)) for i in range(1, n + 1)
        ]
        p = propose(needs(), providers, rot)
        fitting = [o for o in queue(rot, providers) if o.provider_id not in unfit]
        if fitting:
            assert p.chosen == fitting[0]  # whoever waited longest among those who fit
        else:
            assert p.chosen is None
        target = override if override is not None and override <= n else None
        if target is None and p.chosen is None:
            continue  # nothing allocated: no turn given
        target = target if target is not None else p.chosen.provider_id  # type: ignore[union-attr]
        overridden = p.chosen is None or target != p.chosen.provider_id
        d = decide(p, rot, target, "reden" if overridden else "")
        assert d.turn == rot.turn + 1
        assert d.rotation.last_turn[target] == d.turn
        given_turns.append(d.turn)
        rot = d.rotation
    assert given_turns == list(range(1, len(given_turns) + 1))


@settings(max_examples=200, deadline=None)
@given(
    workers=st.integers(min_value=2, max_value=8),
    schedule=st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=80),
)
def test_compare_and_set_under_any_interleaving_never_skips_or_repeats(
    workers: int, schedule: list[int]
) -> None:
    """A model of the service's protocol: each worker reads the rotation, proposes, and
    commits only if the turn it read is still the current one (else it reads again)."""
    providers = JO
    state = start()
    seen: dict[int, Rotation | None] = dict.fromkeys(range(workers))
    given_turns: list[int] = []
    counts: Counter[int] = Counter()
    for step in schedule:
        w = step % workers
        read = seen[w]
        if read is None:
            seen[w] = state  # read (a SELECT ... FOR UPDATE would block here instead)
            continue
        p = propose(needs(), providers, read)
        assert p.chosen is not None
        if read.turn == state.turn:  # the compare-and-set
            d = decide(p, read, p.chosen.provider_id, "")
            state = d.rotation
            given_turns.append(d.turn)
            counts[p.chosen.provider_id] += 1
        seen[w] = None  # committed, or stale: read again
    assert given_turns == list(range(1, len(given_turns) + 1))
    spread = [counts[o.provider_id] for o in providers]
    assert max(spread) - min(spread) <= 1


# ---- the escalation ladder and the half year ----


def test_the_ladder_goes_up_one_step_at_a_time_and_ends_at_the_boards() -> None:
    from keerpunt.triage.allocation import LADDER, LadderStep, TopOfLadder, next_step

    assert LADDER[0] is LadderStep.PROVIDER_MANAGER
    step = LADDER[0]
    seen = [step]
    while step is not LadderStep.BOARDS:
        step = next_step(step)
        seen.append(step)
    assert seen == list(LADDER) and len(seen) == 4
    with pytest.raises(TopOfLadder):
        next_step(LadderStep.BOARDS)


def test_half_years() -> None:
    from keerpunt.triage.allocation import HalfYear

    assert HalfYear.of(D(2026, 6, 30)) == HalfYear(2026, 1)
    assert HalfYear.of(D(2026, 7, 1)) == HalfYear(2026, 2)
    assert HalfYear.parse("2026h2").end == D(2027, 1, 1)
    assert HalfYear(2026, 1).previous == HalfYear(2025, 2)
    assert str(HalfYear(2025, 2).next) == "2026H1"
    for bad in ("2026", "2026H3", "H1", "abcdH1"):
        with pytest.raises(ValueError):
            HalfYear.parse(bad)
