"""Where people work: the case page shows status, deadlines, next steps and the timeline;
the case list the next deadline; the coordinator's weekly agenda what is planned, due and
overdue. Steps by hand are CSRF-protected, audited and refused in Dutch."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import func, select, update

from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import AuditEntry, Case
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import agenda
from keerpunt.triage import service as triage
from keerpunt.triage.models import CaseTransition
from tests.helpers import login
from tests.triage.factories import YES, World, build_world, case_row

pytestmark = pytest.mark.anyio


async def _agree(rt: Runtime, w: World) -> None:
    async with rt.unit_of_work(staff_principal(w.coordinator)) as uow:
        await triage.add_factor(uow, w.session_id, "school", "protective", "Juf helpt")
        await triage.add_line(uow, w.session_id, w.provider.id, "45A52", "ambulant", "2", None)
        await triage.close_session(uow, w.session_id)


async def _transitions(rt: Runtime, case_id: int) -> int:
    async with rt.sessionmaker() as db:
        n = await db.scalar(
            select(func.count())
            .where(CaseTransition.case_id == case_id)
            .select_from(CaseTransition)
        )
        return int(n or 0)


async def test_steps_on_the_case_page_with_reason_errors_and_timeline(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    await _agree(runtime, w)
    csrf = await login(client, runtime, user_id=w.coordinator.id)
    page = (await client.get(f"/cases/{w.case_id}")).text
    assert "Arrangement afgesproken" in page
    assert "De hulp start binnen 5 werkdagen na de toewijzing" in page
    assert 'value="running"' in page and "De hulp is begonnen" in page

    r = await client.post(f"/cases/{w.case_id}/status", data={"target": "running"})
    assert r.status_code == 403  # no CSRF token: refused by the middleware
    r = await client.post(
        f"/cases/{w.case_id}/status", data={"target": "running", "csrf_token": csrf}
    )
    assert r.status_code == 303
    assert (await case_row(runtime, w.case_id)).status == "running"

    # A missing reason: a Dutch message tied to the field; nothing saved.
    before = await _transitions(runtime, w.case_id)
    r = await client.post(
        f"/cases/{w.case_id}/status", data={"target": "extended", "csrf_token": csrf}
    )
    assert r.status_code == 422
    assert "Schrijf kort op waarom." in r.text and 'aria-invalid="true"' in r.text
    assert "Er is niets opgeslagen." in r.text
    # An illegal step keeps what was typed and says why.
    r = await client.post(
        f"/cases/{w.case_id}/status",
        data={"target": "scheduled", "reason": "Mijn-getypte-tekst", "csrf_token": csrf},
    )
    assert r.status_code == 409
    assert "Van de stand ‘Hulp loopt’ kan de casus niet naar ‘Gepland’." in r.text
    assert await _transitions(runtime, w.case_id) == before

    r = await client.post(
        f"/cases/{w.case_id}/status",
        data={"target": "extended", "reason": "Verwijzer-akkoord-XYZ", "csrf_token": csrf},
    )
    assert r.status_code == 303
    page = (await client.get(f"/cases/{w.case_id}")).text
    assert "Verlengd" in page and "Evaluatie van de verlenging" in page
    assert "Tijdlijn" in page and "Stand: van ‘Hulp loopt’ naar ‘Verlengd’" in page
    assert "Bespreking gesloten" in page and "Toestemming vastgelegd" in page
    # The coordinator sees this case only under its pseudonym: not the reason.
    assert "Verwijzer-akkoord-XYZ" not in page
    async with runtime.sessionmaker() as db:
        audited = await db.scalar(
            select(func.count()).where(
                AuditEntry.action == "case.transition",
                AuditEntry.detail == "from=running to=extended",
            )
        )
    assert audited == 1

    # The expert whose organisation has consent reads the reason on the timeline.
    client.cookies.clear()
    await login(client, runtime, user_id=w.expert.id)
    page = (await client.get(f"/cases/{w.case_id}")).text
    assert "Verwijzer-akkoord-XYZ" in page
    assert "Verlengen (met de verwijzer)" not in page  # only coordinator / procesregisseur


async def test_the_family_sees_the_status_but_no_steps_or_timeline(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build_world(runtime)
    csrf = await login(client, runtime, member_id=w.members["parent"])
    page = (await client.get(f"/cases/{w.case_id}")).text
    assert "Stand van de casus" in page and "Tijdlijn" not in page
    assert 'name="target"' not in page
    r = await client.post(
        f"/cases/{w.case_id}/status",
        data={"target": "crisis_pause", "reason": "x", "csrf_token": csrf},
    )
    assert r.status_code == 403
    assert (await case_row(runtime, w.case_id)).status == "scheduled"
    assert (await client.get("/triage/agenda")).status_code == 403


async def test_weekly_agenda_shows_planned_due_and_overdue(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build_world(runtime)  # a session planned now
    # A second case registered 40 days ago that is still at the tables: overdue for the RET.
    async with runtime.unit_of_work(staff_principal(w.registrar)) as uow:
        today = dt.datetime.now(AMSTERDAM).date()
        old = await triage.register_case(
            uow,
            triage.Registration(
                answers=YES,
                youth_name="Lot Oud",
                birth_date=today.replace(year=today.year - 15),
                bsn="",
                situation="",
                parent_names=("Pa Oud",),
                jim_name="",
                municipality_id=None,
            ),
        )
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(
            update(Case)
            .where(Case.id == old.id)
            .values(registered_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=40))
        )
    await login(client, runtime, user_id=w.coordinator.id)
    async with runtime.sessionmaker() as db:
        reads_before = await db.scalar(
            select(func.count()).where(AuditEntry.action == "case.read").select_from(AuditEntry)
        )
    r = await client.get("/triage/agenda")
    assert r.status_code == 200
    page = r.text
    assert "Weekagenda" in page and "Besprekingen in deze week" in page
    assert f"/triage/sessions/{w.session_id}" in page
    assert "Te laat" in page and "naar het RET" in page
    assert "Het triageteam bespreekt ongeveer één casus per week." in page
    async with runtime.sessionmaker() as db:
        reads_after = await db.scalar(
            select(func.count()).where(AuditEntry.action == "case.read").select_from(AuditEntry)
        )
    assert (reads_after or 0) > (reads_before or 0)  # every case shown was an audited read
    # Another week, and a week that cannot be read: no error.
    assert (await client.get("/triage/agenda?week=2027-01-04")).status_code == 200
    assert (await client.get("/triage/agenda?week=morgen")).status_code == 200
    cases = (await client.get("/cases")).text
    assert "Weekagenda" in cases and "Te laat" in cases and "Volgende termijn" in cases


async def test_consent_renewal_shows_for_who_may_see_the_birth_date(runtime: Runtime) -> None:
    w = await build_world(runtime)
    today = dt.datetime.now(AMSTERDAM).date()
    eleven = dt.date(today.year - 12, today.month, 1) + dt.timedelta(days=40)
    async with runtime.unit_of_work(staff_principal(w.registrar)) as uow:
        case = await triage.register_case(
            uow,
            triage.Registration(
                answers=YES,
                youth_name="Bo Bijna",
                birth_date=eleven,
                bsn="",
                situation="",
                parent_names=("Ma Bijna",),
                jim_name="",
                municipality_id=None,
            ),
        )
    async with runtime.unit_of_work(staff_principal(w.registrar)) as uow:
        view = await triage.case_view(uow, case.id)
        kinds = {d.kind: d for d in await agenda.case_deadlines(uow, view)}
    assert kinds["consent"].params == {"age": 12}
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        view = await triage.case_view(uow, case.id)  # pseudonymous: no birth date
        assert "consent" not in {d.kind for d in await agenda.case_deadlines(uow, view)}
