"""Professionals log in through a real OpenID Connect provider (oidc-provider-mock in a thread).

The browser is played by hand: the app's redirects go to the provider, the provider's
authorize form is posted with a chosen subject, and its redirect comes back to the app.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from oidc_provider_mock import User as ProviderUser
from oidc_provider_mock import run_server_in_thread
from sqlalchemy import func, select
from starlette.datastructures import Secret

from keerpunt.platform import auth
from keerpunt.platform.app import create_app
from keerpunt.platform.models import AuditEntry, LoginSession, Organisation, User
from keerpunt.platform.principal import Principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, load_principal
from tests.helpers import make_org, make_user

pytestmark = pytest.mark.anyio

CLIENT_ID = "keerpunt-test"
ANNA_EMAIL = "anna.de.boer@jeugdzorgwest.example"


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    users = [
        ProviderUser(sub="anna-sub", claims={"email": ANNA_EMAIL, "email_verified": True}),
        ProviderUser(sub="unverified-sub", claims={"email": ANNA_EMAIL, "email_verified": False}),
    ]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@dataclass
class Env:
    client: httpx.AsyncClient
    rt: Runtime
    org: Organisation
    anna: User


@pytest.fixture
async def env(runtime: Runtime, provider: str) -> AsyncIterator[Env]:
    org = await make_org(runtime, "Jeugdzorg West", oidc_issuer=provider, oidc_client_id=CLIENT_ID)
    await make_org(runtime, "Zonder Inlog")  # no issuer: not offered
    anna = await make_user(runtime, org, "Anna de Boer", roles="triage_member")
    settings = dataclasses.replace(
        runtime.settings, oidc_client_secrets={org.id: Secret(secrets.token_urlsafe(24))}
    )
    rt = dataclasses.replace(runtime, settings=settings)
    app = create_app(settings, runtime=rt)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Env(client, rt, org, anna)


async def start(env: Env, org_id: int | None = None) -> httpx.Response:
    page = await env.client.get("/login")
    assert page.status_code == 200
    return await env.client.post(
        "/login/oidc",
        data={"csrf_token": env.client.cookies["kp_csrf"], "organisation_id": org_id or env.org.id},
    )


async def authorize(authorize_url: str, sub: str) -> str:
    """The user picks who they are at the provider; returns the provider's redirect back."""
    async with httpx.AsyncClient() as browser:
        r = await browser.post(authorize_url, data={"sub": sub})
    assert r.status_code == 302, r.text
    return r.headers["location"]


async def log_in_as(env: Env, sub: str) -> httpx.Response:
    r = await start(env)
    assert r.status_code == 303
    callback = await authorize(r.headers["location"], sub)
    assert callback.startswith("http://testserver/login/oidc/callback?")
    return await env.client.get(callback)


async def principal(env: Env) -> Principal | None:
    raw = env.client.cookies.get(COOKIE_NAME)
    if not raw:
        return None
    token = SessionSigner(str(env.rt.settings.secret_key)).loads(raw, 3600)
    assert token
    async with env.rt.sessionmaker() as db:
        return await load_principal(db, token, env.rt.vault)


async def session_count(env: Env) -> int:
    async with env.rt.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(LoginSession)) or 0)


async def test_login_page_offers_only_organisations_with_an_issuer(env: Env) -> None:
    r = await env.client.get("/login")
    assert "Jeugdzorg West" in r.text
    assert "Zonder Inlog" not in r.text
    assert 'name="csrf_token"' in r.text


async def test_start_sends_the_browser_to_the_provider_with_state_nonce_and_pkce(
    env: Env, provider: str
) -> None:
    r = await start(env)
    assert r.status_code == 303
    url = urlsplit(r.headers["location"])
    assert f"{url.scheme}://{url.netloc}" == provider
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == "http://testserver/login/oidc/callback"
    assert q["code_challenge_method"] == "S256"
    assert {"state", "nonce", "code_challenge"} <= q.keys()
    assert "openid" in q["scope"].split()
    cookie = r.headers["set-cookie"]
    assert "kp_oidc=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Max-Age=600" in cookie


async def test_happy_path_lands_logged_in(env: Env) -> None:
    r = await log_in_as(env, "anna-sub")
    assert r.status_code == 303
    assert r.headers["location"] == "http://testserver/"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(COOKIE_NAME))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie

    me = await principal(env)
    assert me is not None and me.user_id == env.anna.id and me.is_staff
    async with env.rt.sessionmaker() as db:
        user = await db.get(User, env.anna.id)
        assert user is not None and user.oidc_subject == "anna-sub"  # kept after first login
        row = await db.scalar(select(LoginSession))
        assert row is not None and row.how == "oidc"
        actions = (await db.scalars(select(AuditEntry.action))).all()
    assert "auth.login" in actions

    # Second login: found by subject, discovery served from the cache.
    assert env.org.oidc_issuer is not None
    assert env.org.oidc_issuer.rstrip("/") in auth.provider_cache._metadata
    env.client.cookies.clear()
    r = await log_in_as(env, "anna-sub")
    assert r.status_code == 303
    me = await principal(env)
    assert me is not None and me.user_id == env.anna.id


async def test_unknown_subject_is_refused_and_no_account_is_made(env: Env) -> None:
    r = await log_in_as(env, "stranger@elsewhere.example")
    assert r.status_code == 403
    assert "We kennen u niet in Keerpunt" in r.text
    assert await principal(env) is None
    assert await session_count(env) == 0
    async with env.rt.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(User)) == 1
        refused = (
            await db.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login_refused"))
        ).all()
    assert len(refused) == 1
    assert "stranger" not in refused[0].detail


async def test_unverified_email_does_not_match_a_professional(env: Env) -> None:
    r = await log_in_as(env, "unverified-sub")
    assert r.status_code == 403
    assert await session_count(env) == 0


async def test_inactive_professional_is_refused(env: Env) -> None:
    async with env.rt.sessionmaker() as db, db.begin():
        user = await db.get(User, env.anna.id)
        assert user is not None
        user.active = False
    r = await log_in_as(env, "anna-sub")
    assert r.status_code == 403
    assert "staat uit" in r.text
    assert await session_count(env) == 0


async def test_state_mismatch_is_refused(env: Env) -> None:
    r = await start(env)
    callback = urlsplit(await authorize(r.headers["location"], "anna-sub"))
    q = {k: v[0] for k, v in parse_qs(callback.query).items()}
    q["state"] = "forged-" + q["state"]
    r = await env.client.get(urlunsplit(callback._replace(query=urlencode(q))))
    assert r.status_code == 400
    assert "hoort niet bij uw inlogpoging" in r.text
    assert await session_count(env) == 0


async def test_callback_without_the_login_cookie_is_refused(env: Env) -> None:
    r = await start(env)
    callback = await authorize(r.headers["location"], "anna-sub")
    env.client.cookies.delete("kp_oidc")
    r = await env.client.get(callback)
    assert r.status_code == 400
    assert "duurde te lang" in r.text
    assert await session_count(env) == 0


async def test_callback_can_be_used_only_once(env: Env) -> None:
    r = await start(env)
    callback = await authorize(r.headers["location"], "anna-sub")
    assert (await env.client.get(callback)).status_code == 303
    env.client.cookies.delete(COOKIE_NAME)
    r = await env.client.get(callback)  # replay: the state cookie is gone
    assert r.status_code == 400
    assert await session_count(env) == 1


async def test_provider_error_is_shown_in_plain_dutch(env: Env) -> None:
    r = await start(env)
    async with httpx.AsyncClient() as browser:
        denied = await browser.post(r.headers["location"], data={"action": "deny"})
    assert denied.status_code == 302
    r = await env.client.get(denied.headers["location"])
    assert r.status_code == 400
    assert "afgebroken" in r.text


async def test_provider_down_gives_a_message_not_a_500(runtime: Runtime) -> None:
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    org = await make_org(
        runtime, "Offline Zorg", oidc_issuer=f"http://127.0.0.1:{port}", oidc_client_id="x"
    )
    settings = dataclasses.replace(runtime.settings, oidc_client_secrets={org.id: Secret("s")})
    app = create_app(settings, runtime=dataclasses.replace(runtime, settings=settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        await client.get("/login")
        r = await client.post(
            "/login/oidc",
            data={"csrf_token": client.cookies["kp_csrf"], "organisation_id": org.id},
        )
    assert r.status_code == 502
    assert "reageert niet" in r.text


async def test_missing_organisation_choice_is_explained(env: Env) -> None:
    await env.client.get("/login")
    r = await env.client.post("/login/oidc", data={"csrf_token": env.client.cookies["kp_csrf"]})
    assert r.status_code == 422
    assert 'id="organisation-error"' in r.text
    assert "Kies uw organisatie." in r.text


async def _id_token_for(provider: str, client_id: str, nonce: str) -> tuple[str, str]:
    """An ID token straight from the provider for any client; returns (id_token, access)."""
    redirect = "http://testserver/elsewhere"
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect,
            "scope": "openid email",
            "state": "s",
            "nonce": nonce,
        }
    )
    back = await authorize(f"{provider}/oauth2/authorize?{query}", "anna-sub")
    code = parse_qs(urlsplit(back).query)["code"][0]
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{provider}/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
            auth=(client_id, "whatever"),
        )
    r.raise_for_status()
    body = r.json()
    return body["id_token"], body["access_token"]


async def test_id_token_for_another_client_is_refused(provider: str) -> None:
    metadata = await auth.provider_cache.metadata(provider)
    jwks = await auth.provider_cache.jwks(metadata)
    id_token, access = await _id_token_for(provider, "another-app", "n-1")

    def check(
        token: str = id_token,
        client_id: str = "another-app",
        nonce: str = "n-1",
        issuer: str = metadata["issuer"],
    ) -> dict[str, object]:
        return auth.validate_id_token(
            token, jwks=jwks, issuer=issuer, client_id=client_id, nonce=nonce, access_token=access
        )

    # The same token is fine for the client it was made for...
    assert check()["sub"] == "anna-sub"
    # ...but not for Keerpunt (aud), nor with another nonce, issuer or a broken signature.
    with pytest.raises(auth.LoginFailed):
        check(client_id=CLIENT_ID)
    with pytest.raises(auth.LoginFailed):
        check(nonce="replayed")
    with pytest.raises(auth.LoginFailed):
        check(issuer="http://evil.example")
    head, payload, signature = id_token.split(".")
    flipped = "AAAA" if signature[-4:] != "AAAA" else "BBBB"
    with pytest.raises(auth.LoginFailed):
        check(token=".".join([head, payload, signature[:-4] + flipped]))
