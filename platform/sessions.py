"""Login sessions: a signed cookie holding a random token, backed by a server-side row.

The row is the truth: logout, expiry and revocation (for example of an invitation) take
effect at the next request because the cookie alone is never enough.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform.db import utcnow
from keerpunt.platform.models import CaseMember, LoginSession, User
from keerpunt.platform.principal import Principal, family_principal, staff_principal
from keerpunt.platform.vault import Vault

__all__ = [
    "COOKIE_NAME",
    "SessionSigner",
    "end_session",
    "end_user_sessions",
    "ended_logins",
    "load_principal",
    "revoke_sessions_for_invitation",
    "start_session",
]

COOKIE_NAME = "kp_session"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionSigner:
    def __init__(self, secret_key: str) -> None:
        self._s = URLSafeTimedSerializer(secret_key, salt="keerpunt-session")

    def dumps(self, token: str) -> str:
        return self._s.dumps(token)

    def loads(self, value: str, max_age: int) -> str | None:
        try:
            token = self._s.loads(value, max_age=max_age)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None


async def start_session(
    db: AsyncSession,
    *,
    how: str,
    hours: int,
    locale: str = "nl",
    user_id: int | None = None,
    member_id: int | None = None,
    invitation_id: int | None = None,
) -> str:
    """Create a login session and return the raw token for the cookie."""
    token = secrets.token_urlsafe(32)
    db.add(
        LoginSession(
            id=token_hash(token),
            user_id=user_id,
            member_id=member_id,
            invitation_id=invitation_id,
            csrf_token=secrets.token_urlsafe(32),
            locale=locale,
            how=how,
            expires_at=utcnow() + dt.timedelta(hours=hours),
        )
    )
    await db.flush()
    return token


async def end_session(db: AsyncSession, session_id: str) -> None:
    await db.execute(
        update(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def end_user_sessions(db: AsyncSession, user_id: int) -> int:
    """End every login of one professional now (left, or their rights changed); returns how
    many were still valid. Their open screens close too (the hub checks logins)."""
    now = utcnow()
    result = await db.execute(
        update(LoginSession)
        .where(
            LoginSession.user_id == user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        )
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def revoke_sessions_for_invitation(db: AsyncSession, invitation_id: int) -> None:
    await db.execute(
        update(LoginSession)
        .where(LoginSession.invitation_id == invitation_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def ended_logins(db: AsyncSession, session_ids: set[str]) -> set[str]:
    """The login sessions among these that no longer let anyone in, by the rule of
    :func:`load_principal`: logged out or revoked, expired, the professional deactivated, or
    the family member taken off the case. One query, for a room of open screens at once."""
    rows = await db.execute(
        select(
            LoginSession.id,
            LoginSession.revoked_at,
            LoginSession.expires_at,
            User.active,
            CaseMember.id,
            CaseMember.removed_at,
        )
        .outerjoin(User, User.id == LoginSession.user_id)
        .outerjoin(CaseMember, CaseMember.id == LoginSession.member_id)
        .where(LoginSession.id.in_(session_ids))
    )
    now = utcnow()
    valid = {
        sid
        for sid, revoked, expires, active, member, removed in rows
        if revoked is None and expires > now and (active if member is None else removed is None)
    }
    return session_ids - valid


async def load_principal(db: AsyncSession, token: str, vault: Vault) -> Principal | None:
    """The principal behind a cookie token, or None if unknown, expired or revoked."""
    sid = token_hash(token)
    row = (
        await db.execute(select(LoginSession).where(LoginSession.id == sid))
    ).scalar_one_or_none()
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.user_id is not None:
        user = await db.get(User, row.user_id)
        if user is None or not user.active:
            return None
        return staff_principal(user, session_id=sid, locale=row.locale, csrf_token=row.csrf_token)
    member = await db.get(CaseMember, row.member_id) if row.member_id else None
    if member is None or member.removed_at is not None:
        return None
    cipher = await vault.cipher(db, member.case_id)
    name = cipher.decrypt("member.name", member.name_enc) if not cipher.shredded else None
    return family_principal(
        member,
        display_name=name or "",
        session_id=sid,
        locale=row.locale,
        csrf_token=row.csrf_token,
    )
