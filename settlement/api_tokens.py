"""API tokens (API-sleutels): how a provider's own system signs in to the JSON API.

One token per organisation, with scopes and an optional last day. The secret (``kp_`` and 43
random characters: 32 bytes) is shown once when it is made; only its SHA-256 is stored, so a
copy of the database opens nothing. A provider's finance staff make, replace and revoke their
own organisation's token; every change is audited. No HTTP here.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform import audit
from keerpunt.platform.db import utcnow
from keerpunt.platform.errors import DomainError, InvalidInput, NotAllowed, NotFound
from keerpunt.platform.i18n import AMSTERDAM, N_
from keerpunt.platform.models import Organisation, OrgKind, StaffRole, User
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.models import ApiToken

__all__ = [
    "SCOPE_LABELS",
    "TOKEN_PREFIX",
    "ApiClient",
    "NewToken",
    "Scope",
    "TokenPage",
    "TokenRefused",
    "TokenView",
    "authenticate",
    "check_token_admin",
    "create_token",
    "revoke_token",
    "token_page",
]

TOKEN_PREFIX = "kp_"  # noqa: S105 (a recognisable prefix, not a secret)
# Writing "last used" on every call would make each read a write; a minute is precise enough.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class Scope(enum.StrEnum):
    """What a token may do."""

    DELIVERIES_WRITE = "deliveries:write"
    DELIVERIES_READ = "deliveries:read"
    ALLOCATIONS_READ = "allocations:read"


SCOPE_LABELS: dict[Scope, str] = {
    Scope.DELIVERIES_WRITE: N_("Geleverde zorg doorgeven"),
    Scope.DELIVERIES_READ: N_("Geleverde zorg en bedragen inzien"),
    Scope.ALLOCATIONS_READ: N_("Eigen toewijzingen inzien"),
}


class TokenRefused(DomainError):
    """The bearer token is missing, unknown, expired or revoked (HTTP 401)."""

    status_code = 401
    message = N_("De API-sleutel ontbreekt, is onbekend, verlopen of ingetrokken.")


@dataclass(frozen=True)
class ApiClient:
    """An authenticated call: the organisation's system as principal, and its scopes."""

    principal: Principal
    scopes: frozenset[str]


@dataclass(frozen=True)
class TokenView:
    id: int
    prefix: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    expired: bool

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not self.expired


@dataclass(frozen=True)
class TokenPage:
    """The token page: the organisation, its current token (if any) and the ones before."""

    organisation_name: str
    current: TokenView | None
    earlier: list[TokenView]


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``secret`` is shown this once and never again."""

    secret: str
    view: TokenView


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def check_token_admin(uow: UnitOfWork) -> Organisation:
    """Only a provider's own finance staff manage its API token: the secret is seen by the
    organisation whose system uses it, and by nobody else (not even the penvoerder)."""
    who = uow.who
    if not who.has(StaffRole.FINANCE) or who.organisation_id is None:
        raise NotAllowed()
    org = await uow.db.get(Organisation, who.organisation_id)
    if org is None or org.kind != OrgKind.PROVIDER:
        raise NotAllowed()
    return org


def _view(row: ApiToken, created_by: str, now: dt.datetime) -> TokenView:
    return TokenView(
        id=row.id,
        prefix=row.prefix,
        scopes=tuple(s for s in row.scopes.split(",") if s),
        created_at=row.created_at,
        created_by=created_by,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        expired=row.expires_at is not None and row.expires_at <= now,
    )


async def token_page(uow: UnitOfWork) -> TokenPage:
    """The organisation's tokens, newest first; none of them with its secret."""
    org = await check_token_admin(uow)
    rows = await uow.db.execute(
        select(ApiToken, User.display_name)
        .outerjoin(User, User.id == ApiToken.created_by_id)
        .where(ApiToken.organisation_id == org.id)
        .order_by(ApiToken.id.desc())
    )
    now = utcnow()
    views = [_view(t, name or "", now) for t, name in rows]
    current = next((v for v in views if v.revoked_at is None), None)
    return TokenPage(org.name, current, [v for v in views if v is not current])


def _last_moment(day: dt.date) -> dt.datetime:
    """The end of ``day`` in Amsterdam, in UTC: a token "valid until 31-12" works all day."""
    start_next = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), AMSTERDAM)
    return start_next.astimezone(dt.UTC)


REPLACE_FIRST = N_(
    "Uw organisatie heeft al een API-sleutel. Vink aan dat de nieuwe sleutel de oude "
    "vervangt. De oude sleutel werkt daarna niet meer."
)


async def _revoke(uow: UnitOfWork, row: ApiToken, why: str) -> None:
    row.revoked_at = utcnow()
    row.revoked_by_id = uow.who.user_id
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.api_token.revoke",
        purpose="settlement",
        detail=f"token={row.id} organisation={row.organisation_id} prefix={row.prefix} {why}",
    )


async def create_token(
    uow: UnitOfWork,
    scopes: Collection[str],
    last_day: dt.date | None,
    *,
    replace: bool,
    today: dt.date,
) -> NewToken:
    """Make the organisation's API token with ``scopes``, valid through ``last_day`` (or
    until revoked). An organisation has one token: a current one is revoked in the same
    step, but only when the admin confirmed that (``replace``)."""
    org = await check_token_admin(uow)
    errors: dict[str, str] = {}
    known = {s.value for s in Scope}
    if not scopes or not set(scopes) <= known:
        errors["scopes"] = N_("Kies minstens één recht.")
    if last_day is not None and last_day < today:
        errors["last_day"] = N_("Kies een datum vanaf vandaag.")
    if errors:
        raise InvalidInput(errors)
    # Lock the organisation: two admins making a token at once get one token, not two.
    await uow.db.execute(select(Organisation.id).where(Organisation.id == org.id).with_for_update())
    current = await uow.db.scalar(
        select(ApiToken).where(ApiToken.organisation_id == org.id, ApiToken.revoked_at.is_(None))
    )
    if current is not None:
        if not replace:
            raise InvalidInput({"replace": REPLACE_FIRST})
        await _revoke(uow, current, "why=replaced")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        organisation_id=org.id,
        prefix=secret[:10],
        secret_hash=secret_hash(secret),
        scopes=",".join(s.value for s in Scope if s.value in scopes),
        expires_at=_last_moment(last_day) if last_day else None,
        created_by_id=uow.who.user_id,
    )
    uow.db.add(row)
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.api_token.create",
        purpose="settlement",
        detail=(
            f"token={row.id} organisation={org.id} prefix={row.prefix} scopes={row.scopes} "
            f"until={last_day or ''}"
        ),
    )
    return NewToken(secret, _view(row, uow.who.display_name, utcnow()))


async def revoke_token(uow: UnitOfWork, token_id: int) -> None:
    """Revoke one of the organisation's tokens (intrekken): it stops working at once. Another
    organisation's token reads as one that does not exist."""
    org = await check_token_admin(uow)
    row = await uow.db.get(ApiToken, token_id, with_for_update=True)
    if row is None or row.organisation_id != org.id:
        raise NotFound()
    if row.revoked_at is None:
        await _revoke(uow, row, "why=revoked")


async def authenticate(db: AsyncSession, bearer: str | None, locale: str) -> ApiClient:
    """The client behind a bearer token; :class:`TokenRefused` when it is missing, unknown,
    expired or revoked. Records when the token was last used (to the minute)."""
    if not bearer or not bearer.startswith(TOKEN_PREFIX) or len(bearer) > 100:
        raise TokenRefused()
    row = await db.scalar(select(ApiToken).where(ApiToken.secret_hash == secret_hash(bearer)))
    now = utcnow()
    if row is None or row.revoked_at is not None:
        raise TokenRefused()
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenRefused()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        await db.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    principal = Principal(
        session_id="",
        display_name=f"API {row.prefix}",
        organisation_id=row.organisation_id,
        api_token_id=row.id,
        locale=locale,
    )
    return ApiClient(principal, frozenset(s for s in row.scopes.split(",") if s))
