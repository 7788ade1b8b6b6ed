"""Step 4 on the database: lines with units and shares, the binding split, new versions, the
procesregisseur, and what settlement sees."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from keerpunt.platform.errors import InvalidInput, NotAllowed, StaleVersion
from keerpunt.platform.models import AuditEntry, Case, CaseMember, Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import arrangement
from keerpunt.triage import service as triage
from keerpunt.triage.models import ArrangementLine
from tests.helpers import make_user
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio

START = dt.date(2026, 1, 5)


async def _org(rt: Runtime, name: str) -> Organisation:
    async with rt.sessionmaker() as db:
        org = await db.scalar(select(Organisation).where(Organisation.name == name))
        assert org is not None
        return org


async def _add(
    rt: Runtime, w: World, org: Organisation, amount: str, unit: str = "hour", **kw: object
) -> ArrangementLine:
    async with rt.unit_of_work(staff_principal(w.expert)) as uow:
        return await triage.add_line(
            uow,
            w.session_id,
            org.id,
            "45A52",
            str(kw.pop("form", "ambulant")),
            amount,
            START,
            intensity_unit=unit,
            **kw,  # type: ignore[arg-type]
        )


async def _actions(rt: Runtime, action: str) -> list[str]:
    async with rt.sessionmaker() as db:
        return list(
            (await db.scalars(select(AuditEntry.detail).where(AuditEntry.action == action))).all()
        )


async def test_lines_carry_form_unit_share_and_a_nine_month_end(runtime: Runtime) -> None:
    w = await build_world(runtime)
    accare = await _org(runtime, "Accare")
    await _add(runtime, w, w.provider, "4", share="Gezinsbehandeling thuis, met Zoë en één ouder")
    await _add(runtime, w, accare, "2", unit="etmaal", form="short_stay")
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        view = await arrangement.arrangement_view(uow, w.session_id)
    ambulant, bed = view.lines
    assert ambulant.share == "Gezinsbehandeling thuis, met Zoë en één ouder"
    assert (ambulant.intensity, ambulant.intensity_unit) == ("4", "hour")
    assert (bed.intensity, bed.intensity_unit, bed.help_form) == ("2", "etmaal", "short_stay")
    assert ambulant.end_date == dt.date(2026, 10, 4)
    # two etmalen a week (48 h) outweigh four hours: the bed provider gives most help
    assert view.suggestion.provider_id == accare.id
    assert sum(pct for _name, pct in view.split) == 100
    assert dict(view.split)["Accare"] == 92


async def test_the_share_is_family_text_hidden_without_consent(runtime: Runtime) -> None:
    w = await build_world(runtime)
    await _add(runtime, w, w.provider, "4", share="Met Zoë naar de huisarts")
    async with runtime.unit_of_work(staff_principal(w.outsider_expert)) as uow:
        view = await arrangement.arrangement_view(uow, w.session_id)
    assert view.lines[0].share is None
    assert view.lines[0].provider == "Karakter"  # the line itself is non-personal


async def test_agreeing_binds_the_split_only_the_chair_and_only_on_what_was_seen(
    runtime: Runtime,
) -> None:
    w = await build_world(runtime)
    await _add(runtime, w, w.provider, "3")
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        with pytest.raises(NotAllowed):
            await arrangement.agree(uow, w.session_id, 1)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        with pytest.raises(StaleVersion):
            await arrangement.agree(uow, w.session_id, 2)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await arrangement.agree(uow, w.session_id, 1)
    assert await _actions(runtime, "arrangement.agreed") == [f"session={w.session_id} version=1"]
    with pytest.raises(NotAllowed) as refused:
        await _add(runtime, w, w.provider, "1")
    assert "nieuwe versie" in refused.value.message
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        line_id = (await arrangement.arrangement_view(uow, w.session_id)).lines[0].id
        with pytest.raises(NotAllowed):
            await arrangement.remove_line(uow, w.session_id, line_id)


async def test_agreeing_an_empty_arrangement_is_refused(runtime: Runtime) -> None:
    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        with pytest.raises(InvalidInput):
            await arrangement.agree(uow, w.session_id, 1)


async def test_a_new_version_keeps_the_old_lines_and_settlement_counts_only_the_new(
    runtime: Runtime,
) -> None:
    w = await build_world(runtime)
    await _add(runtime, w, w.provider, "3")
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await arrangement.agree(uow, w.session_id, 1)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        row = await arrangement.revise(uow, w.session_id)
        assert row.version == 2 and row.agreed_at is None
    await _add(runtime, w, w.provider, "1,5")
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        view = await arrangement.arrangement_view(uow, w.session_id)
        assert [ln.intensity for ln in view.lines] == ["3", "1.5"]
        await triage.close_session(uow, w.session_id)
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(ArrangementLine)) == 3
        fixed = await triage.fixed_arrangement_lines(db, START, START + dt.timedelta(days=30))
    assert sorted(f.minutes_per_week for f in fixed) == [90, 180]
    # closing agreed version 2 on the chair's behalf, audited
    assert f"session={w.session_id} version=2 on_close=1" in await _actions(
        runtime, "arrangement.agreed"
    )


async def test_the_chair_designates_a_procesregisseur_of_a_provider_in_the_arrangement(
    runtime: Runtime,
) -> None:
    w = await build_world(runtime)
    accare = await _org(runtime, "Accare")
    await _add(runtime, w, w.provider, "3")
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        with pytest.raises(InvalidInput) as bad:
            await arrangement.designate(uow, w.session_id, accare.id, None)
        assert "provider_id" in bad.value.errors
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        with pytest.raises(InvalidInput) as wrong_person:
            await arrangement.designate(uow, w.session_id, w.provider.id, w.outsider_expert.id)
        assert "user_id" in wrong_person.value.errors
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        with pytest.raises(NotAllowed):
            await arrangement.designate(uow, w.session_id, w.provider.id, w.expert.id)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await arrangement.designate(uow, w.session_id, w.provider.id, w.expert.id)
        view = await arrangement.arrangement_view(uow, w.session_id)
    assert (view.procesregisseur_org, view.procesregisseur_person) == ("Karakter", "Ruud Regie")
    async with runtime.sessionmaker() as db:
        roles = (
            await db.scalars(
                select(CaseMember.role).where(
                    CaseMember.case_id == w.case_id, CaseMember.user_id == w.expert.id
                )
            )
        ).all()
        assert "procesregisseur" in roles
        assert await db.get(User, w.expert.id) is not None
    assert await _actions(runtime, "arrangement.designated")


async def test_settlement_sees_the_unit_of_a_line(runtime: Runtime) -> None:
    w = await build_world(runtime)
    await _add(runtime, w, w.provider, "3", unit="dagdeel", form="day_treatment")
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await triage.close_session(uow, w.session_id)
    async with runtime.sessionmaker() as db:
        (fixed,) = await triage.fixed_arrangement_lines(db, START, START)
    assert (fixed.intensity_unit, fixed.units_per_week, fixed.minutes_per_week) == (
        "dagdeel",
        3,
        3 * 240,
    )
    assert fixed.help_form == "day_treatment"


async def test_a_share_written_under_the_pseudonym_is_readable_at_the_table(
    runtime: Runtime,
) -> None:
    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.outsider_expert)) as uow:
        await triage.add_line(
            uow,
            w.session_id,
            w.provider.id,
            "45A52",
            "ambulant",
            "2",
            None,
            share="Twee gesprekken per week met de jeugdige",
        )
    for user in (w.outsider_expert, w.expert):
        async with runtime.unit_of_work(staff_principal(user)) as uow:
            view = await arrangement.arrangement_view(uow, w.session_id)
        assert view.lines[0].share == "Twee gesprekken per week met de jeugdige"


async def test_what_someone_leaving_still_carries_is_named_by_pseudonym(
    runtime: Runtime,
) -> None:
    """For ``keerpunt user deactivate``: the cases they are procesregisseur of and the
    meetings they are invited to, so the coordinator can hand them over."""
    w = await build_world(runtime)
    newcomer = await make_user(runtime, w.provider, "Nina Nieuw", "triage_member")
    async with runtime.sessionmaker() as db:
        pseudonym = (await db.scalar(select(Case.pseudonym).where(Case.id == w.case_id))) or ""
        assert await triage.open_duties(db, newcomer.id) == []
        before = await triage.open_duties(db, w.expert.id)
    assert before == [triage.Duty("meeting", pseudonym, before[0].when)]
    await _add(runtime, w, w.provider, "3")
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await arrangement.designate(uow, w.session_id, w.provider.id, w.expert.id)
    async with runtime.sessionmaker() as db:
        duties = await triage.open_duties(db, w.expert.id)
    assert [(d.kind, d.pseudonym) for d in duties] == [
        ("procesregisseur", pseudonym),
        ("meeting", pseudonym),
    ]
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await triage.close_session(uow, w.session_id)
    async with runtime.sessionmaker() as db:  # the meeting is over; the care runs on
        duties = await triage.open_duties(db, w.expert.id)
    assert [(d.kind, d.pseudonym) for d in duties] == [("procesregisseur", pseudonym)]
    # Another procesregisseur in a later meeting of the case takes it over.
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        later = await triage.plan_session(
            uow, w.case_id, dt.datetime.now(dt.UTC) + dt.timedelta(days=7), [w.outsider_expert.id]
        )
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await triage.add_line(uow, later.id, w.provider.id, "45A52", "ambulant", "2", START)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await arrangement.designate(uow, later.id, w.provider.id, None)
    async with runtime.sessionmaker() as db:
        assert await triage.open_duties(db, w.expert.id) == []
