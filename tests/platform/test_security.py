"""Security at the edge: CSRF, Origin, headers, logout, demo routes, language, health."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keerpunt.platform.app import create_app
from keerpunt.platform.models import AuditEntry, Case, CaseMember, LoginSession
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, load_principal, token_hash
from tests.helpers import login, make_org, make_user

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def app_client(runtime: Runtime, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the app with other settings (demo mode, behind TLS) on the same database."""
    settings = dataclasses.replace(runtime.settings, **changes)
    app = create_app(settings, runtime=dataclasses.replace(runtime, settings=settings))
    transport = httpx.ASGITransport(app=app)
    # Secure cookies travel over https only, as in a browser.
    base_url = "https://testserver" if settings.behind_tls else "http://testserver"
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


async def logged_in(client: httpx.AsyncClient, rt: Runtime) -> str:
    org = await make_org(rt, "Jeugdzorg West")
    user = await make_user(rt, org, "Anna de Boer", roles="coordinator")
    return await login(client, rt, user_id=user.id)


async def still_logged_in(client: httpx.AsyncClient, rt: Runtime) -> bool:
    raw = client.cookies.get(COOKIE_NAME)
    token = SessionSigner(str(rt.settings.secret_key)).loads(raw, 3600) if raw else None
    if token is None:
        return False
    async with rt.sessionmaker() as db:
        return await load_principal(db, token, rt.vault) is not None


async def test_post_without_csrf_token_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await logged_in(client, runtime)
    r = await client.post("/logout")
    assert r.status_code == 403
    assert "Er is niets opgeslagen" in r.text
    assert await still_logged_in(client, runtime)

    r = await client.post("/logout", data={"csrf_token": "wrong"})
    assert r.status_code == 403
    assert await still_logged_in(client, runtime)

    r = await client.post("/language", data={"lang": "en", "next": "/login"})
    assert r.status_code == 403
    assert "kp_lang" not in r.headers.get("set-cookie", "")
    async with runtime.sessionmaker() as db:
        assert (await db.scalars(select(AuditEntry))).all() == []


async def test_csrf_token_in_header_passes(client: httpx.AsyncClient, runtime: Runtime) -> None:
    csrf = await logged_in(client, runtime)
    r = await client.post("/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303


async def test_csrf_token_in_form_field_passes(client: httpx.AsyncClient, runtime: Runtime) -> None:
    csrf = await logged_in(client, runtime)
    r = await client.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303


async def test_anonymous_forms_use_the_csrf_cookie(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    cookie = page.headers["set-cookie"]
    assert "kp_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    token = client.cookies["kp_csrf"]
    assert f'value="{token}"' in page.text
    r = await client.post("/language", data={"csrf_token": token, "lang": "en", "next": "/login"})
    assert r.status_code == 303


async def test_foreign_origin_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    csrf = await logged_in(client, runtime)
    r = await client.post(
        "/logout", headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert await still_logged_in(client, runtime)
    r = await client.post("/logout", headers={"X-CSRF-Token": csrf, "Origin": "http://testserver"})
    assert r.status_code == 303


async def test_security_headers_on_pages(client: httpx.AsyncClient) -> None:
    r = await client.get("/login")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    # same-origin keeps the real Origin on form posts (no-referrer makes browsers send "null")
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in r.headers
    assert "<script>" not in r.text and "style=" not in r.text


async def test_hsts_and_secure_cookies_only_behind_tls(runtime: Runtime) -> None:
    org = await make_org(runtime, "Jeugdzorg West")
    user = await make_user(runtime, org, "Anna de Boer", roles="coordinator")
    async with app_client(runtime, behind_tls=True, demo_mode=True) as client:
        r = await client.get("/login")
        assert r.headers["strict-transport-security"].startswith("max-age=")
        assert "Secure" in r.headers["set-cookie"]  # the anonymous CSRF cookie
        r = await client.post(
            "/demo/login", data={"csrf_token": client.cookies["kp_csrf"], "user_id": user.id}
        )
        assert r.status_code == 303
        session_cookie = next(
            c for c in r.headers.get_list("set-cookie") if c.startswith(COOKIE_NAME)
        )
        assert "Secure" in session_cookie and "HttpOnly" in session_cookie
        assert "SameSite=lax" in session_cookie


async def test_logout_revokes_the_server_side_session(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    csrf = await logged_in(client, runtime)
    old_cookie = client.cookies[COOKIE_NAME]
    assert (await client.get("/login")).status_code == 303  # logged in: sent home

    r = await client.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert r.headers["location"] == "http://testserver/login"
    assert f'{COOKIE_NAME}="";' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]

    # Someone who kept the old cookie gets nothing from it.
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, old_cookie)
    r = await client.get("/login")
    assert r.status_code == 200
    assert not await still_logged_in(client, runtime)
    token = SessionSigner(str(runtime.settings.secret_key)).loads(old_cookie, 3600)
    assert token
    async with runtime.sessionmaker() as db:
        row = await db.get(LoginSession, token_hash(token))
        assert row is not None and row.revoked_at is not None
        actions = (await db.scalars(select(AuditEntry.action))).all()
    assert "auth.logout" in actions


async def test_demo_routes_do_not_exist_outside_demo_mode(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    org = await make_org(runtime, "Jeugdzorg West")
    user = await make_user(runtime, org, "Anna de Boer", roles="coordinator")
    page = await client.get("/login")
    assert "/demo" not in page.text
    assert (await client.get("/demo")).status_code == 404
    r = await client.post(
        "/demo/login", data={"csrf_token": client.cookies["kp_csrf"], "user_id": user.id}
    )
    assert r.status_code == 404
    assert COOKIE_NAME not in r.headers.get("set-cookie", "")


async def test_demo_mode_lists_people_and_logs_in(runtime: Runtime) -> None:
    org = await make_org(runtime, "Jeugdzorg West")
    user = await make_user(
        runtime, org, "Anna de Boer", roles="triage_member", discipline="regiebehandelaar"
    )
    async with runtime.sessionmaker() as db, db.begin():
        case = Case(pseudonym="K-7001", registered_by_id=user.id, age_band="12-15")
        db.add(case)
        await db.flush()
        cipher = await runtime.vault.create_case_key(db, case.id)
        member = CaseMember(
            case_id=case.id, role="jim", name_enc=cipher.encrypt("member.name", "Oom Kees")
        )
        db.add(member)
        await db.flush()
        member_id = member.id

    async with app_client(runtime, demo_mode=True) as client:
        page = await client.get("/login")
        assert 'href="http://testserver/demo"' in page.text
        demo = await client.get("/demo")
        assert demo.status_code == 200
        assert "Dit is een demo" in demo.text
        for text in ("Anna de Boer", "Jeugdzorg West", "triageteam-lid", "Oom Kees", "JIM"):
            assert text in demo.text
        r = await client.post(
            "/demo/login", data={"csrf_token": client.cookies["kp_csrf"], "member_id": member_id}
        )
        assert r.status_code == 303
        assert await still_logged_in(client, runtime)
        async with runtime.sessionmaker() as db:
            row = await db.scalar(select(LoginSession).where(LoginSession.revoked_at.is_(None)))
            assert row is not None and row.how == "demo" and row.member_id == member_id


async def test_language_choice_sets_cookie_and_session_locale(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    csrf = await logged_in(client, runtime)
    r = await client.post("/language", data={"csrf_token": csrf, "lang": "en", "next": "/login"})
    assert r.status_code == 303
    assert r.headers["location"] == "/login"
    assert "kp_lang=en" in r.headers["set-cookie"]
    async with runtime.sessionmaker() as db:
        row = await db.scalar(select(LoginSession))
        assert row is not None and row.locale == "en"


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example", "/\\evil.example", "login", ""]
)
async def test_language_redirects_only_to_this_site(client: httpx.AsyncClient, target: str) -> None:
    await client.get("/login")
    r = await client.post(
        "/language", data={"csrf_token": client.cookies["kp_csrf"], "lang": "nl", "next": target}
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/"


async def test_healthz_reports_app_and_database(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"app": "ok", "database": "ok"}


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, True),
        ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "http://testserver"}, True),
        ({"Origin": "http://evil.example"}, False),
    ],
)
async def test_origin_check_on_posts(
    client: httpx.AsyncClient, headers: dict[str, str], allowed: bool
) -> None:
    page = await client.get("/login")
    csrf = page.text.split('name="csrf-token" content="')[1].split('"')[0]
    r = await client.post(
        "/language", data={"csrf_token": csrf, "lang": "en", "next": "/"}, headers=headers
    )
    assert (r.status_code != 403) is allowed


async def test_parallel_sub_requests_do_not_replace_the_pages_csrf_cookie(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/login", headers={"Sec-Fetch-Dest": "document"})
    assert "kp_csrf" in page.cookies
    client.cookies.clear()
    icon = await client.get("/favicon.ico", headers={"Sec-Fetch-Dest": "image"})
    assert "kp_csrf" not in icon.cookies
