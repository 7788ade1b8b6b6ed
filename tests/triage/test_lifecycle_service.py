"""The lifecycle in the database: the existing flows move a case through the machine, every
step is recorded (reason encrypted) and audited, and a refused step writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from keerpunt.platform.errors import InvalidInput, NotAllowed
from keerpunt.platform.models import AuditEntry, Case, CaseMember
from keerpunt.platform.principal import family_principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import lifecycle
from keerpunt.triage import service as triage
from keerpunt.triage.lifecycle import IllegalTransition, Status
from keerpunt.triage.models import CaseTransition
from tests.triage.factories import World, build_world, case_row

pytestmark = pytest.mark.anyio


async def _steps(rt: Runtime, case_id: int) -> list[tuple[str, str, str | None]]:
    async with rt.sessionmaker() as db:
        rows = await db.execute(
            select(CaseTransition.from_status, CaseTransition.to_status, CaseTransition.flow)
            .where(CaseTransition.case_id == case_id)
            .order_by(CaseTransition.id)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def _agree(rt: Runtime, w: World) -> None:
    async with rt.unit_of_work(staff_principal(w.coordinator)) as uow:
        await triage.add_factor(uow, w.session_id, "school", "protective", "Juf helpt")
        await triage.add_line(uow, w.session_id, w.provider.id, "45A52", "ambulant", "2", None)
        await triage.close_session(uow, w.session_id)


async def _step(rt: Runtime, w: World, target: Status, reason: str = "") -> None:
    async with rt.unit_of_work(staff_principal(w.coordinator)) as uow:
        case = await uow.db.get(Case, w.case_id)
        assert case is not None
        await lifecycle.transition(uow, case, target, reason)


async def test_planning_starting_and_closing_a_session_move_the_case(runtime: Runtime) -> None:
    w = await build_world(runtime)
    assert (await case_row(runtime, w.case_id)).status == "scheduled"
    await _agree(runtime, w)
    assert (await case_row(runtime, w.case_id)).status == "arrangement_agreed"
    assert await _steps(runtime, w.case_id) == [
        ("registered", "scheduled", "plan_session"),
        ("scheduled", "in_triage", "session_start"),
        ("in_triage", "arrangement_agreed", "session_close"),
    ]
    async with runtime.sessionmaker() as db:
        actions = (
            await db.scalars(
                select(AuditEntry.detail).where(
                    AuditEntry.case_id == w.case_id, AuditEntry.action == "case.transition"
                )
            )
        ).all()
    assert actions == [
        "from=registered to=scheduled flow=plan_session",
        "from=scheduled to=in_triage flow=session_start",
        "from=in_triage to=arrangement_agreed flow=session_close",
    ]


async def test_care_runs_is_extended_with_an_encrypted_reason_and_closes(
    runtime: Runtime,
) -> None:
    w = await build_world(runtime)
    await _agree(runtime, w)
    await _step(runtime, w, Status.RUNNING)
    await _step(runtime, w, Status.EXTENDED, "Verwijzer akkoord: Sem-geheim-reden")
    await _step(runtime, w, Status.STEPPED_DOWN, "Gewone hulp neemt over")
    await _step(runtime, w, Status.CLOSED, "Doelen gehaald")
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        case = await uow.db.get(Case, w.case_id)
        assert case is not None
        steps = await lifecycle.history(uow, case)
        assert lifecycle.replay(steps) is Status.CLOSED == case.status
        # the retention term (consent.retention) counts from the closing step
        closing = await uow.db.scalar(
            select(CaseTransition.at).where(CaseTransition.to_status == "closed")
        )
        assert case.closed_at is not None and case.closed_at == closing
        raw = (
            await uow.db.scalars(
                select(CaseTransition.reason_enc).where(CaseTransition.to_status == "extended")
            )
        ).one()
        assert raw is not None and b"Sem-geheim" not in raw
        cipher = await uow.vault.cipher(uow.db, w.case_id)
        assert cipher.decrypt("transition.reason", raw) == "Verwijzer akkoord: Sem-geheim-reden"
    with pytest.raises(NotAllowed):  # nothing changes after closing, not even planning
        async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
            import datetime as dt

            await triage.plan_session(uow, w.case_id, dt.datetime.now(dt.UTC), [])


async def test_a_crisis_pauses_and_resumes_where_it_was(runtime: Runtime) -> None:
    w = await build_world(runtime)
    await _step(runtime, w, Status.CRISIS_PAUSE, "Crisisopvang")
    await _step(runtime, w, Status.SCHEDULED, "Weer thuis")
    assert (await case_row(runtime, w.case_id)).status == "scheduled"


@pytest.mark.parametrize(
    ("who", "target", "reason", "error"),
    [
        ("coordinator", Status.RUNNING, "", IllegalTransition),  # still scheduled
        ("coordinator", Status.CLOSED, "", InvalidInput),  # a reason is needed
        ("expert", Status.CLOSED, "Weg", NotAllowed),  # only the coordinator closes
        ("parent", Status.CRISIS_PAUSE, "Crisis", NotAllowed),  # the family has no buttons
        ("coordinator", Status.ARRANGEMENT_AGREED, "", IllegalTransition),
    ],
)
async def test_a_refused_step_writes_nothing(
    runtime: Runtime, who: str, target: Status, reason: str, error: type[Exception]
) -> None:
    w = await build_world(runtime)
    async with runtime.sessionmaker() as db:
        parent = await db.get(CaseMember, w.members["parent"])
        assert parent is not None
    principal = {
        "coordinator": staff_principal(w.coordinator),
        "expert": staff_principal(w.expert),
        "parent": family_principal(parent),
    }[who]
    before = await _steps(runtime, w.case_id)
    with pytest.raises(error):
        async with runtime.unit_of_work(principal) as uow:
            case = await uow.db.get(Case, w.case_id)
            assert case is not None
            await lifecycle.transition(uow, case, target, reason)
    assert await _steps(runtime, w.case_id) == before
    assert (await case_row(runtime, w.case_id)).status == "scheduled"
    async with runtime.sessionmaker() as db:
        n = await db.scalar(
            select(func.count()).where(
                AuditEntry.case_id == w.case_id,
                AuditEntry.action == "case.transition",
                AuditEntry.detail.contains(f"to={target.value}"),
            )
        )
    assert n == 0


async def test_two_people_taking_the_same_step_at_once_record_it_once(runtime: Runtime) -> None:
    import asyncio

    w = await build_world(runtime)
    await _agree(runtime, w)

    async def start() -> str:
        try:
            await _step(runtime, w, Status.RUNNING)
        except IllegalTransition:
            return "refused"
        return "done"

    outcomes = sorted(await asyncio.gather(start(), start()))
    assert outcomes == ["done", "refused"]
    steps = await _steps(runtime, w.case_id)
    assert [s for s in steps if s[1] == "running"] == [("arrangement_agreed", "running", None)]
