"""Every change that can change what someone may see of a case reaches the session screens,
whoever writes it: a family member removed from or added to the case, a legal basis ended, a
party removed from the table, the case shredded. The unit of work saves ``consent.changed`` in
every room of the case in the same transaction (platform.uow.watch_disclosure_inputs); the
server's hub publishes it (its relay, when another process saved it: tests/platform/
test_relay.py), and a screen that resumes replays the saved events. The writes here are made
beside the test server and the screen opens after them, as a reconnecting phone does: without
the event it would keep showing what it showed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from keerpunt.consent import retention
from keerpunt.consent import service as consent
from keerpunt.consent.models import ConsentRecord
from keerpunt.consent.service import Decision, Purpose
from keerpunt.platform.models import Case, CaseMember, CaseRole, RoomEvent
from keerpunt.platform.principal import SYSTEM, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage import realtime as _rooms  # noqa: F401 - registers the session rooms
from keerpunt.triage import service as triage
from tests.conftest import LiveServer
from tests.consent.test_live import _open
from tests.helpers import make_org, make_user
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio

Change = Callable[[UnitOfWork, World], Awaitable[None]]


async def _pseudonym(rt: Runtime, world: World) -> str:
    async with rt.sessionmaker() as db:
        case = await db.get(Case, world.case_id)
        assert case is not None
        return case.pseudonym


async def _change(rt: Runtime, world: World, change: Change) -> None:
    """A write as any service or command would make it: in a unit of work, nothing else."""
    async with rt.unit_of_work(SYSTEM) as uow:
        await change(uow, world)


async def _remove(uow: UnitOfWork, member_id: int) -> None:
    member = await uow.db.get(CaseMember, member_id)
    assert member is not None
    member.removed_at = dt.datetime.now(dt.UTC)


async def _last_seq(rt: Runtime, world: World) -> int:
    async with rt.sessionmaker() as db:
        seq = await db.scalar(
            select(RoomEvent.seq)
            .where(RoomEvent.room == f"triage:{world.session_id}")
            .order_by(RoomEvent.seq.desc())
            .limit(1)
        )
        return seq or 0


async def _title_after(
    rt: Runtime, server: LiveServer, world: World, change: Change, user_id: int
) -> str:
    """The title a screen of the session shows after ``change``, resuming from before it."""
    seen = await _last_seq(rt, world)
    await _change(rt, world, change)
    screen = await _open(server, rt, world.session_id, after=seen, user_id=user_id)
    pushed = await screen.until('id="kp-title"')
    await screen.ws.close()
    return pushed.split('id="kp-title"', 1)[1][:200]


async def test_removing_a_parent_turns_the_experts_screen_to_the_pseudonym(
    runtime: Runtime, live_server: LiveServer
) -> None:
    """12 to 15: the parent's consent is needed; once the parent is no longer part of the case,
    nobody with authority consented, and the expert's screen must stop showing names."""
    world = await build_world(runtime)
    pseudonym = await _pseudonym(runtime, world)

    async def change(uow: UnitOfWork, w: World) -> None:
        await _remove(uow, w.members["parent"])

    title = await _title_after(runtime, live_server, world, change, world.expert.id)
    assert pseudonym in title and "Sem Canarie" not in title


async def test_adding_a_guardian_who_did_not_consent_turns_the_screen_to_the_pseudonym(
    runtime: Runtime, live_server: LiveServer
) -> None:
    world = await build_world(runtime)
    pseudonym = await _pseudonym(runtime, world)

    async def change(uow: UnitOfWork, w: World) -> None:
        uow.db.add(CaseMember(case_id=w.case_id, role=CaseRole.GUARDIAN))

    title = await _title_after(runtime, live_server, world, change, world.expert.id)
    assert pseudonym in title and "Sem Canarie" not in title


async def test_a_legal_basis_that_ends_turns_the_screen_to_the_pseudonym(
    runtime: Runtime, live_server: LiveServer
) -> None:
    """Under a child-protection order no consent is needed; when the order ends, consent is
    needed again, and here there is none for the expert's organisation."""
    world = await build_world(runtime, consent_to_expert_org=False)
    async with runtime.sessionmaker() as db, db.begin():
        case = await db.get(Case, world.case_id)
        assert case is not None
        case.legal_basis = "child_protection_order"
    pseudonym = await _pseudonym(runtime, world)

    async def change(uow: UnitOfWork, w: World) -> None:
        case = await uow.db.get(Case, w.case_id)
        assert case is not None
        case.legal_basis = "consent"

    title = await _title_after(runtime, live_server, world, change, world.outsider_expert.id)
    assert pseudonym in title and "Sem Canarie" not in title


async def test_a_party_removed_from_the_table_is_told_with_the_removal(
    runtime: Runtime,
) -> None:
    """Consent given for "everyone at the table": an expert who no longer sits at it may not
    follow the session any more. The event saved with the removal is what makes the hub draw
    the room again, and close that expert's open screen (it no longer follows the room)."""
    world = await build_world(runtime, consent_to_expert_org=False)
    async with runtime.unit_of_work(staff_principal(world.registrar)) as uow:
        case = await uow.db.get(Case, world.case_id)
        assert case is not None
        for role in ("youth", "parent"):
            await consent.record_consent(
                uow,
                case,
                subject_member_id=world.members[role],
                purpose=Purpose.INFORMATION_EXCHANGE,
                decision=Decision.CONSENT,
                recipient_org_id=None,
                recipient_role=None,
                obtained_how="in_person",
                explanation="Uitgelegd wie er aan tafel zitten.",
                valid_until=None,
            )
    before = await _consent_events(runtime, world)

    async def change(uow: UnitOfWork, w: World) -> None:
        member_id = await uow.db.scalar(
            select(CaseMember.id).where(
                CaseMember.case_id == w.case_id, CaseMember.user_id == w.outsider_expert.id
            )
        )
        assert member_id is not None
        await _remove(uow, member_id)

    await _change(runtime, world, change)
    assert len(await _consent_events(runtime, world)) == len(before) + 1
    async with runtime.unit_of_work(staff_principal(world.outsider_expert)) as uow:
        case = await uow.db.get(Case, world.case_id)
        assert case is not None
        decided = await consent.disclosure(uow, case, audit_read=False)
        assert decided.level is consent.Disclosure.PSEUDONYMOUS  # what the event redraws


async def _consent_events(rt: Runtime, world: World) -> list[int]:
    async with rt.sessionmaker() as db:
        return list(
            (
                await db.scalars(
                    select(RoomEvent.seq).where(
                        RoomEvent.room == f"triage:{world.session_id}",
                        RoomEvent.kind == "consent.changed",
                    )
                )
            ).all()
        )


async def test_one_event_per_case_however_many_inputs_one_transaction_changes(
    runtime: Runtime,
) -> None:
    """A withdrawal and a removal together redraw the screens once, not twice."""
    world = await build_world(runtime)
    before = await _consent_events(runtime, world)
    async with runtime.unit_of_work(staff_principal(world.registrar)) as uow:
        rec = await uow.db.scalar(
            select(ConsentRecord).where(ConsentRecord.case_id == world.case_id).limit(1)
        )
        assert rec is not None
        await consent.withdraw_consent(uow, rec.id)
        await _remove(uow, world.members["jim"])
        guardian = CaseMember(case_id=world.case_id, role=CaseRole.GUARDIAN)
        uow.db.add(guardian)
    assert len(await _consent_events(runtime, world)) == len(before) + 1


async def test_shredding_a_case_tells_its_screens(runtime: Runtime) -> None:
    """After shredding, a screen that reconnects must not keep the names it showed: the event
    is saved with the shredding (the command runs outside the server: a reconnect replays it,
    an open screen gets it through the server's relay)."""
    world = await build_world(runtime)
    before = await _consent_events(runtime, world)
    policy = retention.RetentionPolicy(days_after_close=90, pilot_end=None, kpi_months=24)
    line = await retention.shred_on_request(runtime, policy, world.case_id, today=dt.date.today())
    assert line is not None
    assert len(await _consent_events(runtime, world)) == len(before) + 1


async def test_a_new_expert_at_the_table_tells_the_earlier_sessions_not_the_new_one(
    runtime: Runtime,
) -> None:
    """Planning a session with an expert new to the case seats them at its table (a consent
    for "everyone at the table" now counts for them): the screens of the case's earlier
    session are told; the new session's room, opened in the same transaction, has no screen
    yet and gets no extra event."""
    world = await build_world(runtime)
    other = await make_org(runtime, "Yulius", agb_code="98000007")
    newcomer = await make_user(runtime, other, "Nina Nieuw", "triage_member", "gezinsbehandelaar")
    before = await _consent_events(runtime, world)
    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        second = await triage.plan_session(
            uow, world.case_id, dt.datetime.now(dt.UTC), [newcomer.id]
        )
    assert len(await _consent_events(runtime, world)) == len(before) + 1
    async with runtime.sessionmaker() as db:
        kinds = (
            await db.scalars(select(RoomEvent.kind).where(RoomEvent.room == second.room))
        ).all()
    assert kinds == ["session.planned"]
