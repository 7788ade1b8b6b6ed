"""Step 5 on the database: activities and agreements, live edits that never get lost, and
who may update an activity's status after the meeting."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from keerpunt.platform.errors import InvalidInput, NotAllowed, NotFound, StaleVersion
from keerpunt.platform.models import AuditEntry, RoomEvent
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import arrangement, plan
from keerpunt.triage import service as triage
from tests.helpers import make_org, make_user
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio


async def _closed_with_procesregisseur(rt: Runtime) -> tuple[World, int]:
    w = await build_world(rt)
    async with rt.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_line(uow, w.session_id, w.provider.id, "45A52", "ambulant", "3", None)
        activity = await plan.add_activity(
            uow,
            w.session_id,
            "Ruud (Karakter)",
            "Gesprek met school over één rooster",
            dt.date(2026, 12, 1),
        )
    async with rt.unit_of_work(staff_principal(w.coordinator)) as uow:
        await arrangement.designate(uow, w.session_id, w.provider.id, w.expert.id)
        await triage.close_session(uow, w.session_id)
    return w, activity.id


async def test_activities_and_agreements_are_written_live_and_read_per_viewer(
    runtime: Runtime,
) -> None:
    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        await plan.add_activity(uow, w.session_id, "Moeder", "Belt de huisarts", None)
        await plan.set_agreement(
            uow, w.session_id, "crisis", "Bel Oom Kees, dan de crisisdienst", 0
        )
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        view = await plan.plan_view(uow, w.session_id)
    assert view.activities[0].what == "Belt de huisarts" and view.activities[0].status == "open"
    crisis = {a.topic: a for a in view.agreements}["crisis"]
    assert crisis.text == "Bel Oom Kees, dan de crisisdienst" and crisis.version == 1
    # without consent for information exchange the outsider sees that it exists, not what
    async with runtime.unit_of_work(staff_principal(w.outsider_expert)) as uow:
        hidden = await plan.plan_view(uow, w.session_id)
    assert hidden.activities[0].what is None
    assert {a.topic: a for a in hidden.agreements}["crisis"].hidden
    async with runtime.sessionmaker() as db:
        kinds = (await db.scalars(select(RoomEvent.kind).order_by(RoomEvent.seq))).all()
    assert "activity.created" in kinds and "plan.updated" in kinds


async def test_a_save_on_top_of_someone_elses_change_is_refused_not_lost(
    runtime: Runtime,
) -> None:
    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        await plan.set_agreement(uow, w.session_id, "informing", "Elke week een mail", 0)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        with pytest.raises(StaleVersion):  # also started from "nothing written yet"
            await plan.set_agreement(uow, w.session_id, "informing", "Elke maand bellen", 0)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        a = await plan.add_activity(uow, w.session_id, "School", "Rooster aanpassen", None)
        await plan.update_activity(
            uow, w.session_id, a.id, "School", "Rooster halve dagen", None, 1
        )
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:  # e.g. a second tab
        with pytest.raises(StaleVersion):
            await plan.update_activity(uow, w.session_id, a.id, "School", "Anders", None, 1)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        view = await plan.plan_view(uow, w.session_id)
    assert view.activities[0].what == "Rooster halve dagen"
    assert {a.topic: a.text for a in view.agreements}["informing"] == "Elke week een mail"


async def test_bad_input_is_refused_with_a_field_message(runtime: Runtime) -> None:
    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        with pytest.raises(InvalidInput) as info:
            await plan.add_activity(uow, w.session_id, " ", "", None)
        assert set(info.value.errors) == {"who", "what"}
        with pytest.raises(NotFound):
            await plan.set_agreement(uow, w.session_id, "weather", "zon", 0)


@pytest.mark.parametrize("who", ["expert", "coordinator", "colleague"])
async def test_the_procesregisseurs_organisation_and_the_coordinator_update_status_after(
    runtime: Runtime, who: str
) -> None:
    w, activity_id = await _closed_with_procesregisseur(runtime)
    colleague = await make_user(runtime, w.provider, "Kim Collega", "triage_member")
    user = {"expert": w.expert, "coordinator": w.coordinator, "colleague": colleague}[who]
    async with runtime.unit_of_work(staff_principal(user)) as uow:
        row = await plan.set_status(uow, w.session_id, activity_id, "under_way", 1)
    assert row.status == "under_way" and row.version == 2
    async with runtime.sessionmaker() as db:
        details = (
            await db.scalars(
                select(AuditEntry.detail).where(AuditEntry.action == "activity.status")
            )
        ).all()
    assert details == [f"activity={activity_id} status=open->under_way version=2"]


async def test_others_may_not_update_status(runtime: Runtime) -> None:
    w, activity_id = await _closed_with_procesregisseur(runtime)
    async with runtime.unit_of_work(staff_principal(w.outsider_expert)) as uow:
        with pytest.raises(NotAllowed):  # at the table, but not the procesregisseur
            await plan.set_status(uow, w.session_id, activity_id, "done", 1)
    stranger_org = await make_org(runtime, "Elders")
    stranger = await make_user(runtime, stranger_org, "Els Elders", "triage_member")
    async with runtime.unit_of_work(staff_principal(stranger)) as uow:
        with pytest.raises(NotFound):
            await plan.set_status(uow, w.session_id, activity_id, "done", 1)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        with pytest.raises(InvalidInput):
            await plan.set_status(uow, w.session_id, activity_id, "vergeten", 1)
        with pytest.raises(StaleVersion):
            await plan.set_status(uow, w.session_id, activity_id, "done", 7)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        view = await plan.plan_view(uow, w.session_id)
    assert view.activities[0].status == "open" and view.may_update_status
