"""The thin path over HTTP: entry check, consent gate and pseudonym, stale edits, closing."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from keerpunt.platform.models import Case
from keerpunt.platform.runtime import Runtime
from tests.helpers import login
from tests.triage.factories import ENTRY_FORM_YES, build_world

pytestmark = pytest.mark.anyio


async def test_a_no_in_the_entry_check_stops_registration_with_the_reason(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    answers = dict(ENTRY_FORM_YES)
    answers["not_a_crisis"] = "no"
    resp = await client.post(
        "/cases/new",
        data={
            **answers,
            "csrf_token": csrf,
            "youth_name": "Kim",
            "birth_date": "2012-01-01",
            "parent_1": "Ouder",
        },
    )
    assert resp.status_code == 422
    assert "crisisroute" in resp.text
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Case)) == 1  # only the world's


async def test_registration_keeps_what_was_typed_when_a_field_is_wrong(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    csrf = await login(client, runtime, user_id=world.registrar.id)
    answers = dict(ENTRY_FORM_YES)
    resp = await client.post(
        "/cases/new",
        data={
            **answers,
            "csrf_token": csrf,
            "youth_name": "Kim Typed",
            "bsn": "123",
            "birth_date": "2012-01-01",
            "parent_1": "O",
        },
    )
    assert resp.status_code == 422
    assert "Kim Typed" in resp.text and "9 cijfers" in resp.text


async def test_consent_gate_full_for_named_org_pseudonym_for_others(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    case = await (await _case(runtime, world.case_id))
    await login(client, runtime, user_id=world.expert.id)
    full = await client.get(f"/cases/{world.case_id}")
    assert full.status_code == 200 and "Sem Canarie" in full.text

    client.cookies.clear()
    await login(client, runtime, user_id=world.outsider_expert.id)
    pseudo = await client.get(f"/cases/{world.case_id}")
    assert pseudo.status_code == 200
    assert case.pseudonym in pseudo.text
    for secret in ("Sem Canarie", "Ma Canarie", "Oom Kees", "Geheim-verhaal-XYZ"):
        assert secret not in pseudo.text
    listing = await client.get("/cases")
    assert "Sem Canarie" not in listing.text and case.pseudonym in listing.text


async def test_someone_without_a_part_in_the_case_sees_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from tests.helpers import make_org, make_user

    world = await build_world(runtime)
    org = await make_org(runtime, "Elders")
    stranger = await make_user(runtime, org, "Stan Vreemd", "finance")
    await login(client, runtime, user_id=stranger.id)
    case = await (await _case(runtime, world.case_id))
    assert (await client.get(f"/cases/{world.case_id}")).status_code == 404
    listing = (await client.get("/cases")).text
    assert case.pseudonym not in listing  # not even counted or hinted
    assert "geen casussen" in listing


async def test_stale_edit_is_refused_with_the_current_text_and_the_draft_kept(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    csrf = await login(client, runtime, user_id=world.expert.id)
    sid = world.session_id
    h = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    r = await client.post(
        f"/triage/sessions/{sid}/factors",
        headers=h,
        data={"life_area": "school", "kind": "perpetuating", "text": "Eerste"},
    )
    assert r.status_code == 200
    fid = await _only_factor_id(runtime)
    r1 = await client.post(
        f"/triage/sessions/{sid}/factor/{fid}",
        headers=h,
        data={"text": "Versie van Ruud", "version": "1"},
    )
    assert r1.status_code == 200 and "Versie van Ruud" in r1.text
    r2 = await client.post(
        f"/triage/sessions/{sid}/factor/{fid}",
        headers=h,
        data={"text": "Versie van de ouder", "version": "1"},
    )
    assert r2.status_code == 409
    assert "Versie van Ruud" in r2.text  # what it is now
    assert "Versie van de ouder" in r2.text  # what they typed: not lost
    page = await client.get(f"/triage/sessions/{sid}")
    assert "Versie van Ruud" in page.text and "Versie van de ouder" not in page.text


async def test_closing_fixes_the_arrangement(client: httpx.AsyncClient, runtime: Runtime) -> None:
    world = await build_world(runtime)
    sid = world.session_id
    csrf = await login(client, runtime, user_id=world.coordinator.id)
    h = {"X-CSRF-Token": csrf}
    refused = await client.post(f"/triage/sessions/{sid}/close", headers=h)
    assert refused.status_code == 422  # no arrangement yet
    r = await client.post(
        f"/triage/sessions/{sid}/arrangement/lines",
        headers=h,
        data={
            "provider_id": str(world.provider.id),
            "product_code": "45a52",
            "help_form": "ambulant",
            "amount": "2,5",
        },
    )
    assert r.status_code in (200, 303)
    assert (await client.post(f"/triage/sessions/{sid}/close", headers=h)).status_code == 303
    after = await client.post(
        f"/triage/sessions/{sid}/arrangement/lines",
        headers=h,
        data={
            "provider_id": str(world.provider.id),
            "product_code": "45A52",
            "help_form": "ambulant",
            "amount": "1",
        },
    )
    assert after.status_code == 403
    page = await client.get(f"/triage/sessions/{sid}")
    assert "2.5 uur per week" in page.text or "2,5 uur per week" in page.text


async def _case(rt: Runtime, case_id: int):  # type: ignore[no-untyped-def]
    from tests.triage.factories import case_row

    return case_row(rt, case_id)


async def _only_factor_id(rt: Runtime) -> int:
    from keerpunt.triage.models import Factor

    async with rt.sessionmaker() as db:
        fid = await db.scalar(select(Factor.id))
        assert fid is not None
        return fid


async def test_every_family_member_is_invited_and_only_the_chosen_experts(
    runtime: Runtime,
) -> None:
    from keerpunt.platform.models import CaseMember
    from keerpunt.triage.models import SessionParticipant

    world = await build_world(runtime)
    from keerpunt.platform.principal import staff_principal
    from keerpunt.triage import service as triage

    # a second parent, then a second meeting with only one expert
    async with runtime.unit_of_work(staff_principal(world.registrar)) as uow:
        cipher = await uow.vault.cipher(uow.db, world.case_id)
        uow.db.add(
            CaseMember(
                case_id=world.case_id,
                role="parent",
                name_enc=cipher.encrypt("member.name", "Pa Canarie"),
            )
        )
    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        import datetime as dt

        second = await triage.plan_session(
            uow, world.case_id, dt.datetime.now(dt.UTC), [world.expert.id]
        )
    async with runtime.sessionmaker() as db:
        roles = sorted(
            (m.role, m.user_id)
            for m in await db.scalars(
                select(CaseMember)
                .join(SessionParticipant, SessionParticipant.member_id == CaseMember.id)
                .where(SessionParticipant.session_id == second.id)
            )
        )
    assert [r for r, _ in roles].count("parent") == 2
    assert ("triage_member", world.outsider_expert.id) not in roles
    assert ("triage_member", world.expert.id) in roles
    assert {"youth", "jim", "local_team", "coordinator"} <= {r for r, _ in roles}


async def test_the_family_adds_goals_but_not_arrangement_lines(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    csrf = await login(client, runtime, member_id=world.members["parent"])
    sid = world.session_id
    page = await client.get(f"/triage/sessions/{sid}")
    assert "arrangement-line-add" not in page.text and "goal-add" in page.text
    r = await client.post(
        f"/triage/sessions/{sid}/arrangement/lines",
        headers={"X-CSRF-Token": csrf},
        data={
            "provider_id": str(world.provider.id),
            "product_code": "45A52",
            "help_form": "ambulant",
            "amount": "1",
        },
    )
    assert r.status_code == 403


async def test_a_bad_plan_form_keeps_the_chosen_experts(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    csrf = await login(client, runtime, user_id=world.coordinator.id)
    r = await client.post(
        f"/cases/{world.case_id}/sessions",
        headers={"X-CSRF-Token": csrf},
        data={"scheduled_at": "volgende week", "experts": [str(world.expert.id)]},
    )
    assert r.status_code == 422
    assert "Vul een datum en tijd in." in r.text
    assert f'value="{world.expert.id}" checked' in r.text
    assert 'value="volgende week"' in r.text


async def test_a_closed_session_offers_no_edit_buttons(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from keerpunt.platform.principal import staff_principal
    from keerpunt.triage import service as triage

    world = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        await triage.add_factor(uow, world.session_id, "school", "protective", "Juf helpt")
        await triage.add_line(
            uow, world.session_id, world.provider.id, "45A52", "ambulant", "2", None
        )
        await triage.close_session(uow, world.session_id)
    await login(client, runtime, user_id=world.coordinator.id)
    page = (await client.get(f"/triage/sessions/{world.session_id}")).text
    assert "Juf helpt" in page and "Aanpassen" not in page and "factor-add" not in page


async def test_a_second_registration_with_the_same_bsn_is_caught_by_the_keyed_hash(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)  # registered with BSN 111222333
    csrf = await login(client, runtime, user_id=world.registrar.id)
    answers = dict(ENTRY_FORM_YES)
    r = await client.post(
        "/cases/new",
        data={
            **answers,
            "csrf_token": csrf,
            "youth_name": "Iemand Anders",
            "bsn": "111 222 333",
            "birth_date": "2012-01-01",
            "parent_1": "O",
        },
    )
    assert r.status_code == 422
    assert "Er is al een aanmelding met dit BSN" in r.text
    assert "Sem Canarie" not in r.text


async def test_the_case_page_lists_invitations_for_those_who_invite_only(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from keerpunt.platform.auth import create_invitation
    from keerpunt.platform.principal import staff_principal

    world = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(world.coordinator)) as uow:
        invite = await create_invitation(uow, world.members["jim"], days=14)
    csrf = await login(client, runtime, user_id=world.coordinator.id)
    page = (await client.get(f"/cases/{world.case_id}")).text
    assert f'id="invitation-{invite.invitation_id}"' in page
    assert "nog niet gebruikt" in page
    assert invite.code not in page and invite.link_token not in page  # shown once, never again
    r = await client.post(
        f"/invitations/{invite.invitation_id}/revoke", headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code in (200, 303)
    assert "ingetrokken" in (await client.get(f"/cases/{world.case_id}")).text
    client.cookies.clear()
    await login(client, runtime, member_id=world.members["parent"])
    family_page = (await client.get(f"/cases/{world.case_id}")).text
    assert f'id="invitation-{invite.invitation_id}"' not in family_page


async def test_the_session_page_shows_who_was_invited_as_consent_allows(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    await login(client, runtime, user_id=world.outsider_expert.id)  # pseudonym only
    page = (await client.get(f"/triage/sessions/{world.session_id}")).text
    invited = page.split("Uitgenodigd")[1].split("</details>")[0]
    assert "Ruud Regie (Karakter)" in invited and "Ouder" in invited and "JIM" in invited
    assert "Ma Canarie" not in invited and "Oom Kees" not in invited
    listing = (await client.get("/cases")).text
    assert f"/triage/sessions/{world.session_id}" in listing  # the next meeting, one click away
