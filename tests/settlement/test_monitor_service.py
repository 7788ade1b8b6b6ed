"""Triage-team time and the funder's monitor on the real database (SQLite and PostgreSQL):
the chair's attendance list at closing, the penvoerder's page, who may see the monitor, and
the downloads."""

from __future__ import annotations

import datetime as dt
import io

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, select, update

from keerpunt.platform.errors import InvalidInput, NotAllowed
from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import AuditEntry, Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.monitor_service import monitor_report, triage_hours_page
from keerpunt.settlement.rules import quarter_of
from keerpunt.settlement.triage_rates import load_pilot_values
from keerpunt.triage import report
from keerpunt.triage import service as triage
from tests.helpers import login, make_org, make_user
from tests.settlement.factories import add_arrangement, add_tariff, build_region
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio


async def _orgs(rt: Runtime) -> dict[str, int]:
    async with rt.sessionmaker() as db:
        return {o.name: o.id for o in await db.scalars(select(Organisation))}


async def _closed_meeting(rt: Runtime, hours: dict[str, str]) -> World:
    """A meeting closed by the chair with the attendance list ``hours`` (by expert name)."""
    w = await build_world(rt)
    async with rt.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_line(uow, w.session_id, w.provider.id, "45A52", "ambulant", "3", None)
    orgs = await _orgs(rt)
    async with rt.unit_of_work(staff_principal(w.coordinator)) as uow:
        team = await triage.attendance_choices(uow, w.session_id)
        await triage.record_attendance(
            uow, w.session_id, {m.participant_id: hours[m.name] for m in team}
        )
        await report.close_and_share(uow, w.session_id, dict.fromkeys(orgs.values(), True))
    async with rt.sessionmaker() as db, db.begin():
        await db.execute(
            update(Organisation).where(Organisation.name == "Pactum").values(region="IJsselland")
        )
        await load_pilot_values(db, "IJsselland")  # what the migration seeds
    return w


async def _finance(rt: Runtime) -> User:
    async with rt.sessionmaker() as db:
        pactum = await db.scalar(select(Organisation).where(Organisation.name == "Pactum"))
    assert pactum is not None
    return await make_user(rt, pactum, "Fien Financien", "finance")


async def test_the_chair_confirms_hours_and_the_penvoerder_pays_per_discipline(
    runtime: Runtime,
) -> None:
    w = await _closed_meeting(runtime, {"Ruud Regie": "4", "Sanne Systeem": "2,5"})
    # the expert changes discipline later: the session keeps the discipline of that day
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(
            update(User).where(User.id == w.expert.id).values(discipline="ervaringsdeskundige")
        )
    finance = await _finance(runtime)
    quarter = quarter_of(dt.datetime.now(AMSTERDAM).date())
    async with runtime.unit_of_work(staff_principal(finance)) as uow:
        page = await triage_hours_page(uow, quarter)
    got = [
        (p.provider_name, d.discipline, d.minutes, d.cents_per_hour, d.amount_cents)
        for p in page.hours.providers
        for d in p.disciplines
    ]
    assert got == [
        ("Accare", "systeembehandelaar", 150, 120_00, 300_00),
        ("Karakter", "regiebehandelaar", 240, 140_00, 560_00),
    ]
    assert page.hours.amount_cents == 860_00
    assert page.budget.budget_cents == 110_000_00
    assert page.budget.left_cents == 110_000_00 - 860_00
    assert page.unconfirmed_sessions == 0


async def test_absent_members_cost_nothing_and_unconfirmed_sessions_are_counted(
    runtime: Runtime,
) -> None:
    await _closed_meeting(runtime, {"Ruud Regie": "4", "Sanne Systeem": "0"})
    finance = await _finance(runtime)
    quarter = quarter_of(dt.datetime.now(AMSTERDAM).date())
    async with runtime.unit_of_work(staff_principal(finance)) as uow:
        page = await triage_hours_page(uow, quarter)
    assert [p.provider_name for p in page.hours.providers] == ["Karakter"]
    assert page.hours.amount_cents == 560_00


async def test_attendance_needs_hours_for_every_member_and_only_the_chair_records_it(
    runtime: Runtime,
) -> None:
    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        team = await triage.attendance_choices(uow, w.session_id)
    assert [(m.name, m.discipline, m.organisation, m.hours_text) for m in team] == [
        ("Ruud Regie", "regiebehandelaar", "Karakter", "4"),
        ("Sanne Systeem", "systeembehandelaar", "Accare", "4"),
    ]
    ruud, sanne = (m.participant_id for m in team)
    with pytest.raises(InvalidInput) as exc:
        async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
            await triage.record_attendance(uow, w.session_id, {ruud: "13", sanne: ""})
    assert set(exc.value.errors) == {f"hours_{ruud}", f"hours_{sanne}"}
    with pytest.raises(NotAllowed):
        async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
            await triage.record_attendance(uow, w.session_id, {ruud: "4", sanne: "4"})
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await triage.record_attendance(uow, w.session_id, {ruud: "3,5", sanne: "0,33"})
        team = await triage.attendance_choices(uow, w.session_id)
    assert [(m.minutes, m.hours_text) for m in team] == [(210, "3,5"), (20, "0,33")]
    async with runtime.sessionmaker() as db:
        actions = (await db.scalars(select(AuditEntry.action))).all()
    assert "session.attendance" in actions


async def _monitor_world(rt: Runtime, youths: int) -> tuple[User, User, User]:
    region = await build_region(rt)
    gemeente = await make_org(rt, "Gemeente Deventer", kind="municipality", cbs_code="0150")
    funder = await make_user(rt, gemeente, "Gert Gemeente", "funder")
    expert = await make_user(rt, region.horizon, "Tom Triage", "triage_member")
    await add_tariff(rt, region.horizon, 60_00, dt.date(2026, 1, 1))
    for _ in range(youths):
        await add_arrangement(
            rt,
            region.coordinator,
            [(region.horizon, "45A52", 120, dt.date(2026, 7, 1), dt.date(2027, 3, 31))],
        )
    return region.finance, funder, expert


async def test_the_funder_and_finance_see_the_monitor_others_do_not(runtime: Runtime) -> None:
    finance, funder, expert = await _monitor_world(runtime, 6)
    quarter = quarter_of(dt.date(2026, 8, 1))
    for who in (finance, funder):
        async with runtime.unit_of_work(staff_principal(who)) as uow:
            rep = await monitor_report(uow, quarter)
        assert rep.youths.display == "6"
        assert rep.providers == 1
        # 2 hours a week over the 92 days of Q3 at € 60 an hour, per youth
        assert rep.average_cost_cents is not None and rep.average_cost_cents > 0
        assert rep.cost_cents == 6 * rep.average_cost_cents
    with pytest.raises(NotAllowed):
        async with runtime.unit_of_work(staff_principal(expert)) as uow:
            await monitor_report(uow, quarter)


async def test_monitor_page_and_downloads_over_http(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _finance_user, funder, expert = await _monitor_world(runtime, 3)
    await login(client, runtime, user_id=funder.id)
    page = await client.get("/settlement/monitor", params={"quarter": "2026Q3"})
    assert page.status_code == 200
    assert "&lt;5" in page.text  # three youths go out as "<5"
    assert "Casus-" not in page.text  # no pseudonym leaves the care chain
    assert page.text.count("<svg") >= 2 and "<script" not in page.text.split("</head>")[1]
    bad = await client.get("/settlement/monitor", params={"quarter": "morgen"})
    assert bad.status_code == 400 and 'aria-invalid="true"' in bad.text
    first = await client.get("/settlement/monitor.xlsx", params={"quarter": "2026Q3"})
    second = await client.get("/settlement/monitor.xlsx", params={"quarter": "2026Q3"})
    assert first.status_code == 200 and first.content == second.content
    assert "attachment" in first.headers["content-disposition"]
    ws = load_workbook(io.BytesIO(first.content)).active
    assert ws is not None
    values = {(r[0], r[1]): r[2] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert values[("Arrangementen", "Jeugdigen")] == "<5"
    csv = await client.get("/settlement/monitor.csv", params={"quarter": "2026Q3"})
    assert csv.content.startswith("\ufeff".encode()) and b"Jeugdigen;<5" in csv.content
    async with runtime.sessionmaker() as db:
        taken = (
            await db.scalars(
                select(AuditEntry.detail).where(AuditEntry.action == "settlement.monitor")
            )
        ).all()
    assert sorted(taken) == ["2026Q3 csv", "2026Q3 xlsx", "2026Q3 xlsx"]  # files leave: audited
    # the funder does not get the penvoerder's payments page
    assert (await client.get("/settlement/triage-hours")).status_code == 403
    client.cookies.clear()
    await login(client, runtime, user_id=expert.id)
    assert (await client.get("/settlement/monitor")).status_code == 403
    assert (await client.get("/settlement/monitor.csv")).status_code == 403


async def test_the_closing_form_asks_the_hours_and_keeps_them_on_a_bad_entry(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_line(uow, w.session_id, w.provider.id, "45A52", "ambulant", "3", None)
        team = await triage.attendance_choices(uow, w.session_id)
    ruud, sanne = (m.participant_id for m in team)
    csrf = await login(client, runtime, user_id=w.coordinator.id)
    form = await client.get(f"/triage/sessions/{w.session_id}/closing")
    assert f'name="hours_{ruud}"' in form.text and 'value="4"' in form.text
    shares = {f"share_{org}": "yes" for org in (await _orgs(runtime)).values()}
    url = f"/triage/sessions/{w.session_id}/finish"
    bad = await client.post(
        url,
        data={**shares, f"hours_{ruud}": "veel", f"hours_{sanne}": "2"},
        headers={"X-CSRF-Token": csrf},
    )
    assert bad.status_code == 422
    assert 'value="veel"' in bad.text and 'aria-invalid="true"' in bad.text
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        assert [m.minutes for m in await triage.attendance_choices(uow, w.session_id)] == [
            None,
            None,
        ]  # nothing half-saved
    ok = await client.post(
        url,
        data={**shares, f"hours_{ruud}": "4", f"hours_{sanne}": "0"},
        headers={"X-CSRF-Token": csrf},
    )
    assert ok.status_code in {200, 204, 303}
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        assert [m.minutes for m in await triage.attendance_choices(uow, w.session_id)] == [240, 0]


async def test_one_unconfirmed_meeting_is_said_in_the_singular(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_line(uow, w.session_id, w.provider.id, "45A52", "ambulant", "3", None)
    orgs = await _orgs(runtime)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await report.close_and_share(uow, w.session_id, dict.fromkeys(orgs.values(), True))
    await login(client, runtime, user_id=(await _finance(runtime)).id)
    now = quarter_of(dt.datetime.now(AMSTERDAM).date()).code
    r = await client.get("/settlement/triage-hours", params={"quarter": now})
    page = " ".join(r.text.split())
    assert "Van 1 gesloten bespreking in dit kwartaal zijn de uren nog niet bevestigd." in page


async def test_one_unpriced_minute_is_said_in_the_singular(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from keerpunt.settlement.models import DisciplineRateRow as Rate

    await _closed_meeting(runtime, {"Ruud Regie": "4", "Sanne Systeem": "0,02"})
    async with runtime.sessionmaker() as db, db.begin():  # no rate for Sanne's discipline
        await db.execute(delete(Rate).where(Rate.discipline == "systeembehandelaar"))
    await login(client, runtime, user_id=(await _finance(runtime)).id)
    now = quarter_of(dt.datetime.now(AMSTERDAM).date()).code
    r = await client.get("/settlement/triage-hours", params={"quarter": now})
    page = " ".join(r.text.split())
    assert "<li>Accare, systeembehandelaar, " in page and ": 1 minuut</li>" in page
