"""Small factories and a login helper shared by the tests."""

from __future__ import annotations

import httpx

from keerpunt.platform.models import LoginSession, Organisation, User
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, start_session, token_hash


async def make_org(rt: Runtime, name: str, kind: str = "provider", **kw: object) -> Organisation:
    async with rt.sessionmaker() as db, db.begin():
        org = Organisation(name=name, kind=kind, **kw)
        db.add(org)
    return org


async def make_user(
    rt: Runtime, org: Organisation, name: str, roles: str = "", discipline: str | None = None
) -> User:
    async with rt.sessionmaker() as db, db.begin():
        user = User(
            organisation_id=org.id,
            display_name=name,
            email=f"{name.lower().replace(' ', '.')}@{org.name.lower().replace(' ', '')}.example",
            roles=roles,
            discipline=discipline,
        )
        db.add(user)
    return user


async def login(
    client: httpx.AsyncClient,
    rt: Runtime,
    *,
    user_id: int | None = None,
    member_id: int | None = None,
) -> str:
    """Log the client in directly (the login flows have their own tests); returns CSRF token."""
    async with rt.sessionmaker() as db, db.begin():
        token = await start_session(db, how="test", hours=1, user_id=user_id, member_id=member_id)
    cookie = SessionSigner(str(rt.settings.secret_key)).dumps(token)
    client.cookies.set(COOKIE_NAME, cookie)
    async with rt.sessionmaker() as db:
        row = await db.get(LoginSession, token_hash(token))
        assert row is not None
        return row.csrf_token
