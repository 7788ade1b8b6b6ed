"""The case lifecycle as a pure state machine: every legal step, a sample of illegal ones,
and (hypothesis) that any sequence of requests keeps the case in a reachable status whose
history replays to it."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keerpunt.platform.errors import InvalidInput, NotAllowed
from keerpunt.triage.lifecycle import (
    RULES,
    IllegalTransition,
    Rule,
    Status,
    Step,
    check,
    current,
    manual_steps,
    paused_from,
    replay,
)

S = Status
ALL_ROLES = frozenset(
    {"coordinator", "registrar", "triage_member", "procesregisseur", "allocation_manager"}
)


def _path_to(status: Status) -> list[Step]:
    """A shortest legal history from registration to ``status`` (breadth-first)."""
    seen: dict[Status, list[Step]] = {S.REGISTERED: []}
    queue: deque[Status] = deque([S.REGISTERED])
    while queue:
        now = queue.popleft()
        if now is status:
            return seen[now]
        for rule in RULES:
            if rule.source is now and rule.target not in seen and rule.source is not S.CRISIS_PAUSE:
                seen[rule.target] = [*seen[now], Step(now, rule.target)]
                queue.append(rule.target)
    raise AssertionError(f"{status} unreachable")


def _history_for(rule: Rule) -> list[Step]:
    """A history that ends in the rule's source (a pause resumes to where it paused)."""
    if rule.source is S.CRISIS_PAUSE and rule.target not in {S.CLOSED, S.RET}:
        return [*_path_to(rule.target), Step(rule.target, S.CRISIS_PAUSE)]
    if rule.source is S.CRISIS_PAUSE:
        return [*_path_to(S.RUNNING), Step(S.RUNNING, S.CRISIS_PAUSE)]
    return _path_to(rule.source)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.source}->{r.target}")
def test_every_legal_step_is_taken_by_who_may(rule: Rule) -> None:
    history = _history_for(rule)
    reason = "Omdat het nodig is." if rule.needs_reason else ""
    if rule.flow:
        assert check(history, rule.target, frozenset(), reason, flow=rule.flow) is rule
        with pytest.raises(IllegalTransition):  # no button for a flow's step
            check(history, rule.target, ALL_ROLES, reason)
        return
    for role in rule.roles:
        assert check(history, rule.target, {role}, reason) is rule
    others = ALL_ROLES - rule.roles
    if others:
        with pytest.raises(NotAllowed):
            check(history, rule.target, others, reason)
    if rule.needs_reason:
        with pytest.raises(InvalidInput) as exc:
            check(history, rule.target, rule.roles, "   ")
        assert "reason" in exc.value.errors
    assert rule in manual_steps(history, rule.roles)


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        (S.REGISTERED, S.RUNNING, "kan de casus niet naar ‘Hulp loopt’"),
        (S.REGISTERED, S.ARRANGEMENT_AGREED, "niet naar ‘Arrangement afgesproken’"),
        (S.SCHEDULED, S.EXTENDED, "niet naar ‘Verlengd’"),
        (S.RUNNING, S.SCHEDULED, "niet naar ‘Gepland’"),
        (S.STEPPED_DOWN, S.EXTENDED, "niet naar ‘Verlengd’"),
        (S.RUNNING, S.RUNNING, "staat al op deze stand"),
        (S.CLOSED, S.RUNNING, "afgesloten"),
        (S.CLOSED, S.CRISIS_PAUSE, "afgesloten"),
        (S.RET, S.RUNNING, "niet naar ‘Hulp loopt’"),
        (S.STEPPED_DOWN, S.RET, "niet naar ‘Bij het RET’"),
    ],
)
def test_illegal_steps_are_refused_in_dutch(source: Status, target: Status, message: str) -> None:
    history = _path_to(source)
    with pytest.raises(IllegalTransition) as exc:
        check(history, target, ALL_ROLES, "reden")
    text = exc.value.message % {k: v for k, v in exc.value.params.items()}
    assert message in text


def test_a_crisis_resumes_only_where_it_paused() -> None:
    history = [*_path_to(S.SCHEDULED), Step(S.SCHEDULED, S.CRISIS_PAUSE)]
    assert paused_from(history) is S.SCHEDULED
    with pytest.raises(IllegalTransition) as exc:
        check(history, S.RUNNING, ALL_ROLES, "weer thuis")
    assert "waar hij was gebleven" in exc.value.message
    assert check(history, S.SCHEDULED, {"coordinator"}, "weer thuis").target is S.SCHEDULED
    offered = {r.target for r in manual_steps(history, ALL_ROLES)}
    assert offered == {S.SCHEDULED, S.CLOSED, S.RET}


def test_unknown_status_and_flow_steps() -> None:
    with pytest.raises(IllegalTransition, match="bestaat niet"):
        check([], "lost", ALL_ROLES)
    with pytest.raises(IllegalTransition, match="vanzelf"):
        check([], S.SCHEDULED, ALL_ROLES, flow="session_close")


def test_replay_refuses_a_broken_history() -> None:
    with pytest.raises(IllegalTransition):
        replay([Step(S.REGISTERED, S.RUNNING)])
    with pytest.raises(IllegalTransition):
        replay([Step(S.SCHEDULED, S.IN_TRIAGE)])  # does not start at registration


def _reachable() -> set[Status]:
    seen = {S.REGISTERED}
    changed = True
    while changed:
        changed = False
        for rule in RULES:
            if rule.source in seen and rule.target not in seen:
                seen.add(rule.target)
                changed = True
    return seen


def test_every_status_is_reachable_and_closed_is_final() -> None:
    assert _reachable() == set(Status)
    assert not [r for r in RULES if r.source is S.CLOSED]


_requests = st.lists(
    st.tuples(
        st.sampled_from([*Status, "nonsense"]),
        st.sets(st.sampled_from(sorted(ALL_ROLES))),
        st.sampled_from(["", "Er is een reden."]),
        st.sampled_from([None, "plan_session", "session_start", "session_close"]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_requests)
def test_any_sequence_of_requests_stays_reachable_and_replays(
    requests: list[tuple[str, set[str], str, str | None]],
) -> None:
    reachable = _reachable()
    history: list[Step] = []
    for target, roles, reason, flow in requests:
        before = current(history)
        try:
            rule = check(history, target, roles, reason, flow=flow)
        except (IllegalTransition, NotAllowed, InvalidInput):
            assert current(history) is before  # a refusal changes nothing
            continue
        assert rule.source is before
        history.append(Step(rule.source, rule.target))
        assert current(history) in reachable
    assert replay(history) is current(history)
