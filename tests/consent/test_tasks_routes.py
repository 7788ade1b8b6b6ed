"""On the case page: the youth-alone exception is recorded with its reason (a mistake loses
nothing), and a 12th or 16th birthday during the case shows a renewal task."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import func, select, update

from keerpunt.consent import service as consent
from keerpunt.consent.models import ConsentRecord, YouthAloneException
from keerpunt.consent.service import Disclosure
from keerpunt.platform.models import Case
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from tests.helpers import login
from tests.triage.factories import build_world

pytestmark = pytest.mark.anyio


async def test_a_youth_alone_exception_with_a_missing_reason_comes_back_as_typed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    page = (await client.get(f"/cases/{world.case_id}")).text
    assert "Uitzondering vastleggen: alleen de jeugdige geeft toestemming" in page
    r = await client.post(
        f"/cases/{world.case_id}/consents/youth-alone",
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
        data={"ground": "serious_harm", "reason": "kort"},
    )
    assert r.status_code == 422
    assert "Schrijf op waarom deze uitzondering hier geldt." in r.text
    assert 'aria-describedby="reason-error"' in r.text
    assert 'value="serious_harm" required checked' in r.text
    assert "kort</textarea>" in r.text
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(YouthAloneException)) == 0


async def test_a_recorded_youth_alone_exception_is_shown_and_can_be_ended(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    r = await client.post(
        f"/cases/{world.case_id}/consents/youth-alone",
        headers={"X-CSRF-Token": csrf},
        data={"ground": "youth_persists", "reason": "Sem blijft de hulp willen na nadenken."},
    )
    assert r.status_code == 303
    page = (await client.get(f"/cases/{world.case_id}")).text
    assert "Uitzondering: de toestemming van de jeugdige is genoeg" in page
    assert "Sem blijft de hulp willen na nadenken." in page
    assert "Vastgelegd door Wim Wijkteam" in page
    assert "Uitzondering vastleggen:" not in page  # one at a time
    async with runtime.sessionmaker() as db:
        exc_id = await db.scalar(select(YouthAloneException.id))
    client.cookies.clear()
    csrf_expert = await login(client, runtime, user_id=world.expert.id)
    r = await client.post(  # an expert cannot end it
        f"/consent-exceptions/{exc_id}/end", headers={"X-CSRF-Token": csrf_expert}
    )
    assert r.status_code == 403
    client.cookies.clear()
    csrf = await login(client, runtime, user_id=world.registrar.id)
    r = await client.post(f"/consent-exceptions/{exc_id}/end", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303
    page = (await client.get(f"/cases/{world.case_id}")).text
    assert "Uitzondering: de toestemming van de jeugdige is genoeg" not in page


async def _turned_16_yesterday(runtime: Runtime, case_id: int, registrar_id: int) -> dt.date:
    """Make the youth of the world turn 16 yesterday, in a case registered (and consented
    to) a month ago."""
    today = dt.date.today()
    day = today - dt.timedelta(days=1)
    if (day.month, day.day) == (2, 29):
        day -= dt.timedelta(days=1)
    async with runtime.sessionmaker() as db, db.begin():
        case = await db.get(Case, case_id)
        assert case is not None
        cipher = await runtime.vault.cipher(db, case_id)
        birth = day.replace(year=day.year - 16)
        case.birth_date_enc = cipher.encrypt("case.birth_date", birth.isoformat())
        await db.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(registered_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
        )
        await db.execute(
            update(ConsentRecord)
            .where(ConsentRecord.case_id == case_id)
            .values(recorded_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
        )
    return day


async def test_a_16th_birthday_during_the_case_shows_a_renewal_task(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    await _turned_16_yesterday(runtime, world.case_id, world.registrar.id)
    await login(client, runtime, user_id=world.registrar.id)
    page = (await client.get(f"/cases/{world.case_id}")).text
    assert "Opnieuw toestemming vragen" in page
    assert "De jeugdige is 16 jaar geworden op" in page
    # the world has a meeting planned: the case page asks for renewal before that meeting
    assert "Vraag vóór de bespreking van" in page


async def test_renewal_task_before_the_next_session_and_its_end(runtime: Runtime) -> None:
    world = await build_world(runtime)
    birthday = await _turned_16_yesterday(runtime, world.case_id, world.registrar.id)
    next_session = dt.date.today() + dt.timedelta(days=7)
    async with runtime.unit_of_work(staff_principal(world.registrar)) as uow:
        case = await uow.db.get(Case, world.case_id)
        assert case is not None
        (task,) = await consent.consent_tasks(uow, case, next_session, Disclosure.FULL)
        assert (task.age, task.birthday, task.already, task.due_by, task.needed) == (
            16,
            birthday,
            True,
            next_session,
            frozenset({"youth"}),
        )
        # a pseudonymous viewer is told about the task, not the birthday
        (task,) = await consent.consent_tasks(uow, case, next_session, Disclosure.PSEUDONYMOUS)
        assert task.birthday is None
        # the youth, now 16, decides again: the task is done
        await consent.record_consent(
            uow,
            case,
            subject_member_id=world.members["youth"],
            purpose=consent.Purpose.INFORMATION_EXCHANGE,
            decision=consent.Decision.CONSENT,
            recipient_org_id=world.provider.id,
            recipient_role=None,
            obtained_how="in_person",
            explanation="Opnieuw uitgelegd nu Sem 16 is.",
            valid_until=None,
        )
        assert await consent.consent_tasks(uow, case, next_session, Disclosure.FULL) == ()


async def test_the_renewal_task_is_for_who_asks_consent_not_for_the_family(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    await _turned_16_yesterday(runtime, world.case_id, world.registrar.id)
    await login(client, runtime, member_id=world.members["parent"])
    assert "Opnieuw toestemming vragen" not in (await client.get(f"/cases/{world.case_id}")).text
