"""The five steps at the table, through the real services on SQLite and PostgreSQL: the
analysis (structure, import, links, qualities), perspective and goals, the family's own
view, "niet over mij zonder mij", and the chair's step on screen."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from keerpunt.platform.errors import InvalidInput, NotAllowed, StaleVersion
from keerpunt.platform.models import CaseMember, RoomEvent
from keerpunt.platform.principal import Principal, family_principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import service as triage
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio


async def _family(rt: Runtime, world: World, role: str) -> Principal:
    async with rt.sessionmaker() as db:
        member = await db.get(CaseMember, world.members[role])
        assert member is not None
        return family_principal(member, display_name=role)


async def _events(rt: Runtime, world: World) -> list[str]:
    async with rt.sessionmaker() as db:
        rows = await db.scalars(
            select(RoomEvent.kind)
            .where(RoomEvent.room == f"triage:{world.session_id}")
            .order_by(RoomEvent.seq)
        )
        return list(rows)


async def test_factors_carry_where_they_sit_and_what_they_keep_going(runtime: Runtime) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    expert = staff_principal(world.expert)
    async with runtime.unit_of_work(expert) as uow:
        with pytest.raises(InvalidInput) as bad:
            await triage.add_factor(uow, sid, "home", "perpetuating", "Ruzie", "neighbours")
        assert "bound_to" in bad.value.errors
    async with runtime.unit_of_work(expert) as uow:
        quarrel = await triage.add_factor(uow, sid, "home", "perpetuating", "Ruzie", "family")
        truancy = await triage.add_factor(uow, sid, "school", "precipitating", "Spijbelen")
    async with runtime.unit_of_work(expert) as uow:
        await triage.link_factors(uow, sid, quarrel.id, truancy.id)
        await triage.link_factors(uow, sid, quarrel.id, truancy.id)  # once is enough
        with pytest.raises(InvalidInput):
            await triage.link_factors(uow, sid, quarrel.id, quarrel.id)
    async with runtime.unit_of_work(expert) as uow:
        view = await triage.session_view(uow, sid)
    (home,) = view.factors_in("home")
    assert home.bound_to == "family"
    assert [(ln.target_id, ln.target_text) for ln in home.links] == [(truancy.id, "Spijbelen")]
    assert [f.text for f in view.factors_in("school")] == ["Spijbelen"]
    # the hints follow: the perpetuating factor is linked, free time is still empty
    assert ("unlinked", "1") not in view.board.hints["coherent"]
    assert view.board.hints["complete"][0][0] == "areas_empty"
    assert "free_time" in view.board.hints["complete"][0][1]
    assert (await _events(runtime, world))[-3:] == [
        "factor.created",
        "factor.created",
        "factor.linked",
    ]


async def test_a_pasted_analysis_becomes_drafts_that_the_table_structures(
    runtime: Runtime,
) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    expert = staff_principal(world.expert)
    async with runtime.unit_of_work(expert) as uow:
        with pytest.raises(InvalidInput):
            await triage.import_analysis(uow, sid, "School\n\n")  # headings only: nothing
    async with runtime.unit_of_work(expert) as uow:
        rows = await triage.import_analysis(
            uow, sid, "School\n- Spijbelt\nBeschermend\n- Opa helpt\nSlaapt slecht"
        )
    assert len(rows) == 3 and all(r.draft for r in rows)
    async with runtime.unit_of_work(expert) as uow:
        view = await triage.session_view(uow, sid)
    assert [f.text for f in view.factors_in("draft")] == ["Spijbelt", "Opa helpt", "Slaapt slecht"]
    assert view.board.hints["coherent"][0] == ("drafts_left", "3")
    sleeps = rows[2]
    async with runtime.unit_of_work(expert) as uow:
        with pytest.raises(InvalidInput):  # structuring needs a kind too
            await triage.update_factor(uow, sid, sleeps.id, "Slaapt slecht", 1, ("health", "", ""))
    async with runtime.unit_of_work(expert) as uow:
        await triage.update_factor(
            uow, sid, sleeps.id, "Slaapt slecht", 1, ("health", "perpetuating", "child")
        )
    async with runtime.unit_of_work(expert) as uow:
        view = await triage.session_view(uow, sid)
    assert [f.text for f in view.factors_in("health")] == ["Slaapt slecht"]
    assert len(view.factors_in("draft")) == 2
    assert (await _events(runtime, world))[-1] == "factor.moved"  # to another list on screen


async def test_goals_in_own_words_tied_to_factors_and_the_perspective(runtime: Runtime) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    expert = staff_principal(world.expert)
    youth = await _family(runtime, world, "youth")
    async with runtime.unit_of_work(expert) as uow:
        quarrel = await triage.add_factor(uow, sid, "home", "perpetuating", "Ruzie")
    async with runtime.unit_of_work(youth) as uow:
        await triage.set_perspective(uow, sid, "Thuis wonen en mijn diploma halen", 0)
        goal = await triage.add_goal(uow, sid, "Ik wil minder ruzie thuis", [quarrel.id])
    async with runtime.unit_of_work(expert) as uow:
        with pytest.raises(StaleVersion):  # someone else's change is not overwritten
            await triage.set_perspective(uow, sid, "Op kamers", 0)
    async with runtime.unit_of_work(expert) as uow:
        with pytest.raises(InvalidInput):  # a factor of another session does not count
            await triage.add_goal(uow, sid, "Doel", [quarrel.id + 999])
        await triage.update_goal(
            uow, sid, goal.id, "Ik wil minder ruzie thuis", 1, [quarrel.id], "1x per week", None
        )
    async with runtime.unit_of_work(expert) as uow:
        view = await triage.session_view(uow, sid)
    assert view.board.perspective == "Thuis wonen en mijn diploma halen"
    (shown,) = view.goals
    assert shown.factor_ids == (quarrel.id,)
    assert shown.measure == "1x per week" and shown.target_date is None
    assert shown.own_view  # written by the youth: marked as theirs
    assert not view.factors[0].own_view


async def test_the_family_adds_its_own_view_to_every_step(runtime: Runtime) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    jim = await _family(runtime, world, "jim")
    async with runtime.unit_of_work(jim) as uow:
        for step in triage.STEPS:
            await triage.add_note(uow, sid, step, f"JIM over stap {step}")
        with pytest.raises(InvalidInput):
            await triage.add_note(uow, sid, 6, "Stap zes bestaat niet")
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        with pytest.raises(NotAllowed):  # professionals have the structured items
            await triage.add_note(uow, sid, 2, "Mijn kijk")
        view = await triage.session_view(uow, sid)
    assert [n.text for n in view.notes_for(3)] == ["JIM over stap 3"]
    assert all(n.own_view and n.author.role == "JIM (mentor)" for n in view.notes)
    parent = await _family(runtime, world, "parent")
    note = view.notes_for(1)[0]
    async with runtime.unit_of_work(parent) as uow:
        with pytest.raises(NotAllowed):  # only the author changes their own view
            await triage.update_note(uow, sid, note.id, "Anders", note.version)


async def test_not_about_me_without_me_holds_an_item_back_until_they_are_there(
    runtime: Runtime,
) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    expert = staff_principal(world.expert)
    parent = await _family(runtime, world, "parent")
    youth = await _family(runtime, world, "youth")
    async with runtime.unit_of_work(expert) as uow:
        drinks = await triage.add_factor(uow, sid, "home", "perpetuating", "Moeder drinkt")
        quarrel = await triage.add_factor(uow, sid, "home", "perpetuating", "Ruzie")
        await triage.link_factors(uow, sid, quarrel.id, drinks.id)
        with pytest.raises(NotAllowed):  # the wish is the family's to make
            await triage.set_not_without_me(uow, sid, "factor", drinks.id, True)
    async with runtime.unit_of_work(parent) as uow:
        await triage.set_not_without_me(uow, sid, "factor", drinks.id, True)
    parent_here = frozenset({parent.actor})

    async with runtime.unit_of_work(expert) as uow:
        away = await triage.session_view(uow, sid)  # the parent is not connected
        here = await triage.session_view(uow, sid, parent_here)
    held = next(f for f in away.factors if f.id == drinks.id)
    assert held.text is None and held.held_back
    assert held.private_to is not None and held.private_to.name == "Ma Canarie"
    link = next(f for f in away.factors if f.id == quarrel.id).links[0]
    assert link.target_text is None  # not through a link either
    assert (drinks.id, "Moeder drinkt") not in away.factor_choices
    assert next(f for f in here.factors if f.id == drinks.id).text == "Moeder drinkt"

    async with runtime.unit_of_work(parent) as uow:  # the person themselves always sees it
        own = await triage.item_view(uow, sid, "factor", drinks.id)
    assert own.text == "Moeder drinkt" and own.flag_is_mine and own.may_flag
    async with runtime.unit_of_work(expert) as uow:
        with pytest.raises(NotAllowed):  # nor can it be changed behind their back
            await triage.update_factor(uow, sid, drinks.id, "Moeder drinkt veel", 1)
    async with runtime.unit_of_work(youth) as uow:
        seen = await triage.item_view(uow, sid, "factor", drinks.id)
        assert seen.text is None and not seen.may_flag
        with pytest.raises(NotAllowed):  # only the person who asked can lift it
            await triage.set_not_without_me(uow, sid, "factor", drinks.id, False)
    async with runtime.unit_of_work(parent) as uow:
        await triage.set_not_without_me(uow, sid, "factor", drinks.id, False)
    async with runtime.unit_of_work(expert) as uow:
        lifted = await triage.item_view(uow, sid, "factor", drinks.id)
    assert lifted.text == "Moeder drinkt" and lifted.private_to is None
    assert (await _events(runtime, world))[-2:] == ["factor.flagged", "factor.flagged"]


async def test_the_chair_puts_a_step_on_screen_and_the_team_ticks_the_qualities(
    runtime: Runtime,
) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    parent = await _family(runtime, world, "parent")
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        with pytest.raises(NotAllowed):
            await triage.put_on_screen(uow, sid, 2)
        await triage.tick_quality(uow, sid, "complete", True)
        await triage.tick_quality(uow, sid, "coherent", True)
        await triage.tick_quality(uow, sid, "complete", False)
        with pytest.raises(InvalidInput):
            await triage.tick_quality(uow, sid, "pretty", True)
    async with runtime.unit_of_work(parent) as uow:
        with pytest.raises(NotAllowed):
            await triage.tick_quality(uow, sid, "simple", True)
    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        with pytest.raises(InvalidInput):
            await triage.put_on_screen(uow, sid, 9)
        await triage.put_on_screen(uow, sid, 2)
    async with runtime.unit_of_work(parent) as uow:  # everyone sees the same board
        board = await triage.board_view(uow, sid)
    assert board.on_screen_step == 2
    assert board.qualities == frozenset({"coherent"})
    assert not board.may_chair and not board.may_tick
    assert (await _events(runtime, world))[-1] == "board.screen"


async def test_a_goal_date_and_everything_else_stay_out_after_closing(runtime: Runtime) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        await triage.add_line(uow, sid, world.provider.id, "45A52", "ambulant", "2", None)
        await triage.close_session(uow, sid)
    jim = await _family(runtime, world, "jim")
    async with runtime.unit_of_work(jim) as uow:
        with pytest.raises(NotAllowed):
            await triage.add_goal(uow, sid, "Te laat", [], "", dt.date(2030, 1, 1))
    async with runtime.unit_of_work(jim) as uow:
        with pytest.raises(NotAllowed):
            await triage.add_note(uow, sid, 1, "Te laat")


async def test_who_is_typing_is_named_as_the_presence_list_names_them(runtime: Runtime) -> None:
    """No consent for the outsider's organisation, but the youth (14) and a parent are at the
    table: the whole screen then names the family, so "who is typing" does too; once they
    are gone it is the role only again."""
    world = await build_world(runtime, consent_to_expert_org=False)
    parent = f"member:{world.members['parent']}"
    family = frozenset({f"member:{world.members['youth']}", parent})
    async with runtime.unit_of_work(staff_principal(world.outsider_expert)) as uow:
        at_the_table = await triage.table_labels(uow, world.session_id, family)
        presence = (await triage.table_changes(uow, world.session_id, [], family)).present
        away = await triage.table_labels(uow, world.session_id)
    assert at_the_table[parent] == presence[parent]
    assert at_the_table[parent].name == "Ma Canarie"
    assert away[parent].name is None and away[parent].role == "Ouder"


async def test_two_first_edits_at_once_both_land_and_open_the_meeting_once(
    runtime: Runtime,
) -> None:
    """The first edits of a meeting often come at the same moment (the chair puts step 1 on
    screen while the JIM writes). The first opens the meeting and moves the case into triage;
    the other waits for it and lands too, instead of being refused with "De casus staat al op
    deze stand"."""
    import asyncio

    from sqlalchemy import func, text

    from keerpunt.triage.models import CaseTransition

    world = await build_world(runtime)
    sid = world.session_id
    jim = await _family(runtime, world, "jim")

    async def jim_writes() -> None:
        async with runtime.unit_of_work(jim) as uow:
            await triage.add_note(uow, sid, 1, "Ik ken Sem al zijn hele leven")

    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        await triage.put_on_screen(uow, sid, 1)  # opens the meeting, not yet committed
        second = asyncio.create_task(jim_writes())
        if runtime.engine.dialect.name == "postgresql":
            # Wait (bounded) until the JIM's transaction waits for this one.
            async with runtime.sessionmaker() as probe:
                for _ in range(250):
                    waiting = await probe.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND datname = current_database()"
                        )
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.02)
                assert waiting, "the second edit never met the first"
        else:
            await asyncio.sleep(0.1)  # SQLite: BEGIN IMMEDIATE queues the second writer
    await second
    async with runtime.sessionmaker() as db:
        opened = await db.scalar(
            select(func.count())
            .select_from(CaseTransition)
            .where(CaseTransition.case_id == world.case_id, CaseTransition.to_status == "in_triage")
        )
    assert opened == 1
    async with runtime.unit_of_work(jim) as uow:
        view = await triage.session_view(uow, sid)
    assert [n.text for n in view.notes_for(1)] == ["Ik ken Sem al zijn hele leven"]
