"""The family's own page: what they agreed to, with whom, until when; withdrawing there (at
once, audited, never lost); and who read their data when — never another case's."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import select

from keerpunt.consent.models import ConsentRecord
from keerpunt.platform.models import AuditEntry, CaseMember
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import service as triage
from tests.helpers import login
from tests.triage.factories import YES, World, build_world

pytestmark = pytest.mark.anyio


async def _record_of(runtime: Runtime, member_id: int) -> ConsentRecord:
    async with runtime.sessionmaker() as db:
        rec = await db.scalar(
            select(ConsentRecord).where(ConsentRecord.subject_member_id == member_id)
        )
        assert rec is not None
        return rec


async def _other_case_parent(runtime: Runtime, world: World) -> int:
    """A second family, registered by the same professional."""
    async with runtime.unit_of_work(staff_principal(world.registrar)) as uow:
        case = await triage.register_case(
            uow,
            triage.Registration(
                answers=YES,
                youth_name="Lot Anders",
                birth_date=dt.date.today() - dt.timedelta(days=10 * 366),
                bsn="",
                situation="Ander-verhaal",
                parent_names=("Pa Anders", ""),
                jim_name="",
                municipality_id=None,
            ),
        )
        member_id = await uow.db.scalar(
            select(CaseMember.id).where(CaseMember.case_id == case.id, CaseMember.role == "parent")
        )
        assert member_id is not None
        return member_id


async def test_a_parent_sees_their_own_consent_and_withdraws_it_at_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)  # youth and parent consented to Karakter
    parent = world.members["parent"]
    csrf = await login(client, runtime, member_id=parent)
    page = await client.get("/mijn-toestemming")
    assert page.status_code == 200
    assert page.text.count('id="consent-') == 1  # only their own record
    assert "Informatie delen met genoemde partijen" in page.text
    assert "Karakter" in page.text
    assert "Tot u het intrekt" in page.text
    assert "Uitgelegd wat het triageteam doet." in page.text
    assert "Wim Wijkteam" in page.text

    rec = await _record_of(runtime, parent)
    r = await client.post(  # without the tick: nothing happens, a clear message
        f"/mijn-toestemming/{rec.id}/intrekken", headers={"X-CSRF-Token": csrf}, data={}
    )
    assert r.status_code == 422
    assert "Zet een vinkje om te bevestigen dat u wilt intrekken." in r.text
    assert f'aria-describedby="confirm-{rec.id}-error"' in r.text
    assert (await _record_of(runtime, parent)).withdrawn_at is None

    r = await client.post(
        f"/mijn-toestemming/{rec.id}/intrekken",
        headers={"X-CSRF-Token": csrf},
        data={"confirm": "yes"},
    )
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert "Uw toestemming is ingetrokken. Dat geldt vanaf nu." in page.text
    assert "Ingetrokken op" in page.text
    assert "Toestemming intrekken</button>" not in page.text
    after = await _record_of(runtime, parent)  # kept, with who and when
    assert after.withdrawn_at is not None and after.withdrawn_by == f"member:{parent}"
    async with runtime.sessionmaker() as db:
        row = await db.scalar(select(AuditEntry).where(AuditEntry.action == "consent.withdrawn"))
        assert row is not None and row.actor == f"member:{parent}" and row.case_id == world.case_id

    client.cookies.clear()  # at 14 both must consent: the expert now sees the pseudonym
    await login(client, runtime, user_id=world.expert.id)
    assert "Sem Canarie" not in (await client.get(f"/cases/{world.case_id}")).text


async def test_the_family_sees_who_read_their_data_and_only_of_their_case(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    other_parent = await _other_case_parent(runtime, world)
    await login(client, runtime, user_id=world.expert.id)
    assert (await client.get(f"/cases/{world.case_id}")).status_code == 200
    client.cookies.clear()
    await login(client, runtime, user_id=world.outsider_expert.id)  # invited, no consent
    assert (await client.get(f"/cases/{world.case_id}")).status_code == 200

    client.cookies.clear()
    await login(client, runtime, member_id=world.members["youth"])
    page = (await client.get("/mijn-toestemming")).text
    assert "Triageteam (Karakter)" in page
    assert "Triageteam (Accare)" in page
    assert "Met namen en gegevens" in page
    assert "Zonder namen (schuilnaam)" in page  # Accare saw only the pseudonym
    async with runtime.sessionmaker() as db:
        read_at = await db.scalar(
            select(AuditEntry.at)
            .where(AuditEntry.action == "case.read", AuditEntry.actor.like("user:%"))
            .limit(1)
        )
    assert read_at is not None
    from keerpunt.platform.i18n import local_datetime

    assert local_datetime(read_at) in page  # Europe/Amsterdam

    client.cookies.clear()
    await login(client, runtime, member_id=other_parent)
    page = (await client.get("/mijn-toestemming")).text
    assert "Karakter" not in page and "Accare" not in page  # never another case's reads
    assert "Nog niemand heeft de casus bekeken." in page


async def test_a_family_member_of_another_case_cannot_withdraw(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    other_parent = await _other_case_parent(runtime, world)
    rec = await _record_of(runtime, world.members["parent"])
    csrf = await login(client, runtime, member_id=other_parent)
    r = await client.post(
        f"/mijn-toestemming/{rec.id}/intrekken",
        headers={"X-CSRF-Token": csrf},
        data={"confirm": "yes"},
    )
    assert r.status_code == 404
    r = await client.post(f"/consents/{rec.id}/withdraw", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 404
    assert (await _record_of(runtime, world.members["parent"])).withdrawn_at is None


async def test_the_youth_cannot_withdraw_the_parents_consent(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    rec = await _record_of(runtime, world.members["parent"])
    csrf = await login(client, runtime, member_id=world.members["youth"])
    page = (await client.get("/mijn-toestemming")).text
    assert f'id="consent-{rec.id}"' not in page
    r = await client.post(
        f"/mijn-toestemming/{rec.id}/intrekken",
        headers={"X-CSRF-Token": csrf},
        data={"confirm": "yes"},
    )
    assert r.status_code == 403
    assert (await _record_of(runtime, world.members["parent"])).withdrawn_at is None


async def test_a_professional_cannot_use_the_family_page(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    rec = await _record_of(runtime, world.members["parent"])
    csrf = await login(client, runtime, user_id=world.expert.id)
    assert (await client.get("/mijn-toestemming")).status_code == 403
    r = await client.post(
        f"/mijn-toestemming/{rec.id}/intrekken",
        headers={"X-CSRF-Token": csrf},
        data={"confirm": "yes"},
    )
    assert r.status_code == 403
    assert (await _record_of(runtime, world.members["parent"])).withdrawn_at is None


async def test_the_jim_gives_no_consent_but_sees_the_reads(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    await login(client, runtime, member_id=world.members["jim"])
    page = await client.get("/mijn-toestemming")
    assert page.status_code == 200
    assert "U geeft zelf geen toestemming. Dat doen de jeugdige en de ouders." in page.text
    case_page = (await client.get(f"/cases/{world.case_id}")).text
    assert '/mijn-toestemming"' in case_page
