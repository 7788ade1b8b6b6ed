"""Family members and the JIM log in with a per-case invitation: a link plus a one-time code."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select, update

from keerpunt.platform.db import utcnow
from keerpunt.platform.models import AuditEntry, Case, CaseMember, Invitation, User
from keerpunt.platform.principal import Principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.schema import metadata
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, load_principal
from tests.helpers import login, make_org, make_user

pytestmark = pytest.mark.anyio


@dataclass
class Family:
    case_id: int
    parent_id: int
    coordinator: User


async def make_family(rt: Runtime, role: str = "parent", name: str = "Sanne Jansen") -> Family:
    org = await make_org(rt, "Wijkteam Noord", kind="other")
    coordinator = await make_user(rt, org, "Carla Coördinator", roles="coordinator")
    async with rt.sessionmaker() as db, db.begin():
        case = Case(pseudonym="K-2041", registered_by_id=coordinator.id, age_band="12-15")
        db.add(case)
        await db.flush()
        cipher = await rt.vault.create_case_key(db, case.id)
        member = CaseMember(
            case_id=case.id, role=role, name_enc=cipher.encrypt("member.name", name)
        )
        db.add(member)
        await db.flush()
        return Family(case.id, member.id, coordinator)


async def invite(
    client: httpx.AsyncClient, rt: Runtime, fam: Family, user: User | None = None
) -> tuple[str, str, int]:
    """As a professional, create an invitation; returns (link path, code, invitation id)."""
    csrf = await login(client, rt, user_id=(user or fam.coordinator).id)
    r = await client.post(
        f"/cases/{fam.case_id}/members/{fam.parent_id}/invitations",
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 200, r.text
    link = re.search(r'class="kp-invitation-link">([^<]+)<', r.text)
    code = re.search(r'class="kp-invitation-code">(\d{6})<', r.text)
    inv = re.search(r'id="invitation-(\d+)"', r.text)
    assert link and code and inv
    assert link.group(1).startswith("http://testserver/i/")
    assert "telefoon of sms" in r.text  # the two-channel hint
    client.cookies.clear()
    return link.group(1).removeprefix("http://testserver"), code.group(1), int(inv.group(1))


async def submit_code(client: httpx.AsyncClient, path: str, code: str) -> httpx.Response:
    page = await client.get(path)
    csrf = client.cookies.get("kp_csrf") or ""
    assert page.status_code in {200, 404, 410, 403}
    return await client.post(path, data={"csrf_token": csrf, "code": code})


async def who_is(client: httpx.AsyncClient, rt: Runtime) -> Principal | None:
    raw = client.cookies.get(COOKIE_NAME)
    if not raw:
        return None
    token = SessionSigner(str(rt.settings.secret_key)).loads(raw, 3600)
    assert token
    async with rt.sessionmaker() as db:
        return await load_principal(db, token, rt.vault)


async def test_create_then_redeem_logs_the_family_member_in(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    fam = await make_family(runtime)
    path, code, _ = await invite(client, runtime, fam)

    page = await client.get(path)
    assert page.status_code == 200
    assert 'autocomplete="one-time-code"' in page.text
    r = await client.post(path, data={"csrf_token": client.cookies["kp_csrf"], "code": code})
    assert r.status_code == 303
    assert r.headers["location"] == "http://testserver/"

    me = await who_is(client, runtime)
    assert me is not None
    assert (me.member_id, me.case_id, me.member_role) == (fam.parent_id, fam.case_id, "parent")
    assert me.display_name == "Sanne Jansen"
    async with runtime.sessionmaker() as db:
        actions = (await db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq))).all()
    assert actions == ["auth.invitation_created", "auth.login"]


async def test_code_with_spaces_is_accepted(client: httpx.AsyncClient, runtime: Runtime) -> None:
    fam = await make_family(runtime)
    path, code, _ = await invite(client, runtime, fam)
    r = await submit_code(client, path, f" {code[:3]} {code[3:]} ")
    assert r.status_code == 303


async def test_five_wrong_codes_lock_the_invitation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    fam = await make_family(runtime)
    path, code, inv_id = await invite(client, runtime, fam)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1):
        r = await submit_code(client, path, wrong)
        assert r.status_code == 400
        assert f"U kunt het nog {left} keer proberen" in r.text
        assert 'aria-describedby="code-hint code-error"' in r.text
    r = await submit_code(client, path, wrong)
    assert r.status_code == 403
    assert "geblokkeerd" in r.text

    r = await submit_code(client, path, code)  # even the right code: locked for good
    assert r.status_code == 403
    assert "geblokkeerd" in r.text
    assert await who_is(client, runtime) is None
    async with runtime.sessionmaker() as db:
        inv = await db.get(Invitation, inv_id)
        assert inv is not None and inv.failed_attempts == 5 and inv.used_at is None


async def test_malformed_code_does_not_count(client: httpx.AsyncClient, runtime: Runtime) -> None:
    fam = await make_family(runtime)
    path, _, inv_id = await invite(client, runtime, fam)
    r = await submit_code(client, path, "12ab")
    assert r.status_code == 422
    assert "6 cijfers" in r.text
    async with runtime.sessionmaker() as db:
        inv = await db.get(Invitation, inv_id)
        assert inv is not None and inv.failed_attempts == 0


async def test_expired_invitation_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    fam = await make_family(runtime)
    path, code, inv_id = await invite(client, runtime, fam)
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(
            update(Invitation)
            .where(Invitation.id == inv_id)
            .values(expires_at=utcnow() - dt.timedelta(minutes=1))
        )
    page = await client.get(path)
    assert page.status_code == 410
    assert "verlopen" in page.text
    assert 'name="code"' not in page.text
    r = await submit_code(client, path, code)
    assert r.status_code == 410
    assert "verlopen" in r.text
    assert await who_is(client, runtime) is None


async def test_unknown_link_says_so(client: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await client.get("/i/not-a-real-token")
    assert r.status_code == 404
    assert "Deze link kennen we niet" in r.text


async def test_used_invitation_cannot_be_used_again(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    fam = await make_family(runtime)
    path, code, _ = await invite(client, runtime, fam)
    assert (await submit_code(client, path, code)).status_code == 303

    other_browser = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with other_browser:
        r = await submit_code(other_browser, path, code)
        assert r.status_code == 410
        assert "al gebruikt" in r.text
        assert await who_is(other_browser, runtime) is None


async def test_revoking_ends_the_family_members_session_at_the_next_request(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    fam = await make_family(runtime)
    path, code, inv_id = await invite(client, runtime, fam)
    assert (await submit_code(client, path, code)).status_code == 303
    family_cookie = client.cookies[COOKIE_NAME]
    assert (await client.get("/login")).status_code == 303  # logged in: sent home

    staff = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with staff:
        csrf = await login(staff, runtime, user_id=fam.coordinator.id)
        r = await staff.post(
            f"/invitations/{inv_id}/revoke", headers={"X-CSRF-Token": csrf, "HX-Request": "true"}
        )
        assert r.status_code == 200
        assert "ingetrokken" in r.text

    assert client.cookies[COOKIE_NAME] == family_cookie
    r = await client.get("/login")
    assert r.status_code == 200  # the cookie no longer logs anyone in
    assert await who_is(client, runtime) is None
    page = await client.get(path)
    assert page.status_code == 410
    assert "ingetrokken" in page.text


async def test_a_new_invitation_replaces_the_unused_one(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    fam = await make_family(runtime)
    old_path, old_code, _ = await invite(client, runtime, fam)
    new_path, new_code, _ = await invite(client, runtime, fam)
    assert (await submit_code(client, old_path, old_code)).status_code == 410
    assert (await submit_code(client, new_path, new_code)).status_code == 303


async def test_only_hashes_are_stored(client: httpx.AsyncClient, runtime: Runtime) -> None:
    fam = await make_family(runtime)
    path, code, _ = await invite(client, runtime, fam)
    token = path.removeprefix("/i/")
    assert (await submit_code(client, path, code)).status_code == 303

    hexdigest = re.compile(r"[0-9a-f]{64}")
    async with runtime.sessionmaker() as db:
        for table in metadata.sorted_tables:
            for row in (await db.execute(select(table))).all():
                for value in row:
                    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    assert token not in text, f"raw link token stored in {table.name}"
                    assert text != code, f"raw code stored in {table.name}"
                    if not hexdigest.fullmatch(text):
                        assert code not in text, f"raw code stored in {table.name}"


async def test_who_may_invite(client: httpx.AsyncClient, runtime: Runtime) -> None:
    fam = await make_family(runtime)
    org = await make_org(runtime, "Zorgaanbieder Zuid")
    outsider = await make_user(runtime, org, "Otto Buiten", roles="triage_member")
    at_table = await make_user(runtime, org, "Tara Tafel", roles="triage_member")
    async with runtime.sessionmaker() as db, db.begin():
        db.add(CaseMember(case_id=fam.case_id, role="triage_member", user_id=at_table.id))

    csrf = await login(client, runtime, user_id=outsider.id)
    url = f"/cases/{fam.case_id}/members/{fam.parent_id}/invitations"
    r = await client.post(url, headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert r.status_code == 403

    csrf = await login(client, runtime, user_id=at_table.id)
    r = await client.post(url, headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert r.status_code == 200

    csrf = await login(client, runtime, member_id=fam.parent_id)  # family cannot invite
    r = await client.post(url, headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert r.status_code == 403

    # the member must belong to the case in the path
    csrf = await login(client, runtime, user_id=fam.coordinator.id)
    r = await client.post(
        f"/cases/{fam.case_id + 999}/members/{fam.parent_id}/invitations",
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 404


async def test_professionals_get_no_invitation(client: httpx.AsyncClient, runtime: Runtime) -> None:
    fam = await make_family(runtime)
    async with runtime.sessionmaker() as db, db.begin():
        pro = CaseMember(case_id=fam.case_id, role="triage_member", user_id=fam.coordinator.id)
        db.add(pro)
        await db.flush()
        pro_id = pro.id
    csrf = await login(client, runtime, user_id=fam.coordinator.id)
    r = await client.post(
        f"/cases/{fam.case_id}/members/{pro_id}/invitations",
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 422


async def test_without_htmx_the_invitation_is_a_full_page(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    fam = await make_family(runtime)
    csrf = await login(client, runtime, user_id=fam.coordinator.id)
    r = await client.post(
        f"/cases/{fam.case_id}/members/{fam.parent_id}/invitations", data={"csrf_token": csrf}
    )
    assert r.status_code == 200
    assert "<html" in r.text and 'class="kp-invitation-code"' in r.text
