"""Who may log in, and how (inloggen).

Professionals log in through their own organisation's OpenID Connect provider (authorization
code flow with state, nonce and PKCE). Family members and the JIM never get a password: they
get a per-case invitation (uitnodiging), a link plus a one-time code of six digits, sent by two
different channels. Only hashes of the link token and the code are stored.

This module holds the rules; the HTTP edge (:mod:`keerpunt.platform.auth_routes`) only parses
input, keeps the signed cookies and renders. Talking to the identity provider is part of the
rules (discovery, token exchange, checking the ID token), so it lives here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform import audit
from keerpunt.platform.db import utcnow
from keerpunt.platform.errors import DomainError, InvalidInput, NotAllowed, NotFound
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import (
    FAMILY_ROLES,
    Case,
    CaseMember,
    Invitation,
    LoginSession,
    Organisation,
    StaffRole,
    User,
)
from keerpunt.platform.principal import Principal, family_principal, staff_principal
from keerpunt.platform.sessions import end_session, revoke_sessions_for_invitation, start_session
from keerpunt.platform.settings import Settings
from keerpunt.platform.uow import UnitOfWork
from keerpunt.platform.vault import Vault

with warnings.catch_warnings():
    # Authlib 1.9 prefers the "httpx2" package and warns once when it falls back to httpx,
    # which Keerpunt ships; the client API used here is the same on both.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = [
    "INVITATION_MAX_ATTEMPTS",
    "OIDC_STATE_MAX_AGE",
    "DemoMember",
    "DemoStaff",
    "InvitationExpired",
    "InvitationLocked",
    "InvitationProblem",
    "InvitationRevoked",
    "InvitationStatus",
    "InvitationUnknown",
    "InvitationUsed",
    "LoginFailed",
    "LoginRefused",
    "NewInvitation",
    "OidcClient",
    "OidcPending",
    "OrganisationChoice",
    "ProviderUnavailable",
    "Redemption",
    "WrongCode",
    "begin_oidc_login",
    "check_invitation",
    "check_oidc_callback",
    "create_invitation",
    "demo_login",
    "demo_people",
    "exchange_oidc_code",
    "find_professional",
    "invitations_for_case",
    "log_out",
    "member_for_login",
    "oidc_client",
    "oidc_organisations",
    "provider_cache",
    "redeem_invitation",
    "revoke_invitation",
    "set_session_locale",
    "start_login",
    "validate_id_token",
]

OIDC_STATE_MAX_AGE = 600  # seconds between "log in" and the provider sending the user back
OIDC_SCOPE = "openid email profile"
# Asymmetric signatures only: never "none", never a MAC keyed with the client secret.
_ID_TOKEN_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
_HTTP_TIMEOUT = 10.0
INVITATION_MAX_ATTEMPTS = 5
# Who may invite a family member besides the professionals at the case's table.
_INVITING_STAFF_ROLES = (StaffRole.COORDINATOR.value, StaffRole.REGISTRAR.value)


# ---- errors -----------------------------------------------------------------------------


class LoginFailed(DomainError):
    """The login did not complete (state mismatch, bad or foreign token, provider error)."""

    status_code = 400
    message = N_("Inloggen is niet gelukt. Probeer het opnieuw.")
    # The edge commits what the service recorded (an audit row, a failed attempt) even though
    # the request is refused: a refused attempt must leave a trace.
    keep_changes: ClassVar[bool] = False


class LoginRefused(LoginFailed):
    """The provider vouched for the person, but Keerpunt does not let them in."""

    status_code = 403
    message = N_(
        "We kennen u niet in Keerpunt. Vraag de beheerder van uw organisatie om u toe te voegen."
    )
    keep_changes = True


class ProviderUnavailable(LoginFailed):
    status_code = 502
    message = N_(
        "Het inlogsysteem van uw organisatie reageert niet. Probeer het over een paar minuten "
        "opnieuw."
    )


class InvitationProblem(DomainError):
    """An invitation that cannot be used; each reason has its own plain message."""

    status_code = 410
    message = N_("Deze uitnodiging werkt niet meer. Vraag om een nieuwe uitnodiging.")
    keep_changes: ClassVar[bool] = False


class InvitationUnknown(InvitationProblem):
    status_code = 404
    message = N_(
        "Deze link kennen we niet. Kijk of u de hele link uit de e-mail heeft gebruikt, "
        "of vraag om een nieuwe uitnodiging."
    )


class InvitationExpired(InvitationProblem):
    message = N_("Deze uitnodiging is verlopen. Vraag om een nieuwe uitnodiging.")


class InvitationRevoked(InvitationProblem):
    message = N_("Deze uitnodiging is ingetrokken. Vraag om een nieuwe uitnodiging.")


class InvitationUsed(InvitationProblem):
    message = N_(
        "Deze uitnodiging is al gebruikt. Een uitnodiging werkt maar één keer. "
        "Vraag om een nieuwe uitnodiging."
    )


class InvitationLocked(InvitationProblem):
    status_code = 403
    message = N_(
        "Deze uitnodiging is geblokkeerd, omdat de code te vaak fout was. "
        "Vraag om een nieuwe uitnodiging."
    )
    keep_changes = True


class WrongCode(InvitationProblem):
    """A wrong code; ``params['left']`` says how many tries remain."""

    status_code = 400
    message = N_("De code klopt niet. U kunt het nog %(left)s keer proberen.")
    keep_changes = True


# ---- OpenID Connect -----------------------------------------------------------------------


@dataclass(frozen=True)
class OrganisationChoice:
    id: int
    name: str


@dataclass(frozen=True)
class OidcPending:
    """What the login remembers between sending the user to the provider and their return.

    Kept in a short-lived signed cookie, never in the database.
    """

    organisation_id: int
    state: str
    nonce: str
    code_verifier: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "o": self.organisation_id,
            "s": self.state,
            "n": self.nonce,
            "v": self.code_verifier,
        }

    @classmethod
    def from_dict(cls, data: object) -> OidcPending | None:
        if not isinstance(data, dict):
            return None
        org, state, nonce, verifier = (data.get(k) for k in ("o", "s", "n", "v"))
        if not (
            isinstance(org, int)
            and isinstance(state, str)
            and isinstance(nonce, str)
            and isinstance(verifier, str)
        ):
            return None
        return cls(org, state, nonce, verifier)


class ProviderCache:
    """Discovery documents and key sets per issuer, so a login is not two extra round trips.

    A key set is fetched again when a token names a key we do not have (key rotation).
    """

    def __init__(self, ttl_seconds: float = 3600.0) -> None:
        self.ttl = ttl_seconds
        self._metadata: dict[str, tuple[float, dict[str, Any]]] = {}
        self._jwks: dict[str, tuple[float, dict[str, Any]]] = {}

    def clear(self) -> None:
        self._metadata.clear()
        self._jwks.clear()

    async def metadata(self, issuer: str) -> dict[str, Any]:
        issuer = issuer.rstrip("/")
        hit = self._metadata.get(issuer)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        doc = await _get_json(issuer + "/.well-known/openid-configuration")
        _check_metadata(issuer, doc)
        self._metadata[issuer] = (time.monotonic(), doc)
        return doc

    async def jwks(self, metadata: Mapping[str, Any], *, force: bool = False) -> dict[str, Any]:
        uri = str(metadata["jwks_uri"])
        hit = self._jwks.get(uri)
        if hit and not force and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        doc = await _get_json(uri)
        if not isinstance(doc.get("keys"), list):
            raise ProviderUnavailable()
        self._jwks[uri] = (time.monotonic(), doc)
        return doc


provider_cache = ProviderCache()


async def _get_json(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT, follow_redirects=False) as http:
            resp = await http.get(url, headers={"Accept": "application/json"})
            resp.raise_for_status()
            doc = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderUnavailable() from exc
    if not isinstance(doc, dict):
        raise ProviderUnavailable()
    return doc


def _check_metadata(issuer: str, doc: Mapping[str, Any]) -> None:
    # OpenID Connect Discovery 4.3: the issuer in the document must be the one we asked;
    # otherwise a provider could speak for another.
    if str(doc.get("issuer", "")).rstrip("/") != issuer:
        raise ProviderUnavailable()
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(key), str):
            raise ProviderUnavailable()


async def oidc_organisations(db: AsyncSession) -> list[OrganisationChoice]:
    """Organisations whose staff can log in: those with an issuer and a client id."""
    rows = await db.execute(
        select(Organisation.id, Organisation.name)
        .where(Organisation.oidc_issuer.is_not(None), Organisation.oidc_client_id.is_not(None))
        .order_by(Organisation.name)
    )
    return [OrganisationChoice(id=r.id, name=r.name) for r in rows]


@dataclass(frozen=True)
class OidcClient:
    """Keerpunt as a client of one organisation's provider. Never shown or logged."""

    organisation_id: int
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)


async def oidc_client(db: AsyncSession, settings: Settings, organisation_id: int) -> OidcClient:
    """The client settings for an organisation; its secret comes from the environment."""
    org = await db.get(Organisation, organisation_id)
    if org is None or not org.oidc_issuer or not org.oidc_client_id:
        raise InvalidInput({"organisation_id": N_("Kies uw organisatie.")})
    secret = settings.oidc_client_secrets.get(org.id)
    if secret is None:
        raise LoginFailed(
            N_(
                "Inloggen via deze organisatie is nog niet ingesteld. "
                "Neem contact op met de beheerder van Keerpunt."
            )
        )
    return OidcClient(org.id, org.oidc_issuer.rstrip("/"), org.oidc_client_id, str(secret))


def _oauth_client(client: OidcClient, redirect_uri: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=client.client_secret,
        scope=OIDC_SCOPE,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=_HTTP_TIMEOUT,
    )


async def begin_oidc_login(client: OidcClient, redirect_uri: str) -> tuple[str, OidcPending]:
    """The provider's authorization URL and what to remember until the user comes back."""
    metadata = await provider_cache.metadata(client.issuer)
    pending = OidcPending(
        organisation_id=client.organisation_id,
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(48),  # 64 characters; RFC 7636 asks 43 to 128
    )
    async with _oauth_client(client, redirect_uri) as oauth:
        url, _ = oauth.create_authorization_url(
            metadata["authorization_endpoint"],
            state=pending.state,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
        )
    return str(url), pending


def check_oidc_callback(pending: OidcPending | None, params: Mapping[str, str]) -> OidcPending:
    """The provider's answer belongs to the login this browser started (state), or a refusal."""
    if pending is None:
        raise LoginFailed(
            N_(
                "Het inloggen duurde te lang, of is in een ander venster begonnen. "
                "Probeer het opnieuw."
            )
        )
    if params.get("error"):
        raise LoginFailed(
            N_(
                "Uw organisatie heeft het inloggen afgebroken. Probeer het opnieuw, of vraag "
                "de beheerder van uw organisatie om hulp."
            )
        )
    state = params.get("state", "")
    if not state or not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise LoginFailed(
            N_(
                "Dit antwoord van uw organisatie hoort niet bij uw inlogpoging. "
                "Probeer het opnieuw."
            )
        )
    if not params.get("code"):
        raise LoginFailed()
    return pending


def validate_id_token(
    id_token: str,
    *,
    jwks: Mapping[str, Any],
    issuer: str,
    client_id: str,
    nonce: str,
    access_token: str | None = None,
    algorithms: list[str] | None = None,
    leeway: int = 60,
) -> dict[str, Any]:
    """The claims of an ID token after checking signature, iss, aud, exp, iat and nonce.

    Raises :class:`InvalidKeyIdError` when the token names a key the set lacks (the caller
    fetches the key set again), :class:`LoginFailed` for anything else wrong.
    """
    allowed = [a for a in (algorithms or ["RS256"]) if a in _ID_TOKEN_ALGORITHMS] or ["RS256"]
    try:
        key_set = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        token = jwt.decode(id_token, key_set, algorithms=allowed)
    except InvalidKeyIdError:
        raise
    except (JoseError, ValueError, TypeError) as exc:
        raise LoginFailed() from exc
    params: dict[str, Any] = {"nonce": nonce, "client_id": client_id}
    if access_token:
        params["access_token"] = access_token
    claims = CodeIDToken(
        token.claims,
        token.header,
        {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": client_id},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "nonce": {"essential": True},
        },
        params,
    )
    try:
        claims.validate(leeway=leeway)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise LoginFailed() from exc
    return dict(claims)


async def exchange_oidc_code(
    client: OidcClient, pending: OidcPending, code: str, redirect_uri: str
) -> dict[str, Any]:
    """Trade the code for tokens (with the PKCE verifier) and return the checked ID token claims.

    No database here: the edge must not hold a transaction open while the provider answers.
    """
    metadata = await provider_cache.metadata(client.issuer)
    try:
        async with _oauth_client(client, redirect_uri) as oauth:
            token = await oauth.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=pending.code_verifier,
                redirect_uri=redirect_uri,
            )
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code >= 500:
            raise ProviderUnavailable() from exc
        raise LoginFailed() from exc
    except httpx.HTTPError as exc:
        raise ProviderUnavailable() from exc
    except (OAuthError, ValueError, KeyError) as exc:
        raise LoginFailed() from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise LoginFailed()
    access_token = token.get("access_token")
    algorithms = list(metadata.get("id_token_signing_alg_values_supported") or ["RS256"])

    def check(jwks: Mapping[str, Any]) -> dict[str, Any]:
        return validate_id_token(
            id_token,
            jwks=jwks,
            issuer=str(metadata["issuer"]),
            client_id=client.client_id,
            nonce=pending.nonce,
            access_token=access_token if isinstance(access_token, str) else None,
            algorithms=algorithms,
        )

    try:
        return check(await provider_cache.jwks(metadata))
    except InvalidKeyIdError:
        try:  # the provider rotated its keys since we cached them
            return check(await provider_cache.jwks(metadata, force=True))
        except InvalidKeyIdError as exc:
            raise LoginFailed() from exc


async def find_professional(
    db: AsyncSession, organisation_id: int, claims: Mapping[str, Any]
) -> User:
    """The professional the provider vouched for, or a refusal.

    Found by the provider's subject; on a first login by the verified e-mail address of a
    professional who was added beforehand, whose subject is then kept. Keerpunt never
    creates an account on its own.
    """
    subject = str(claims["sub"])
    user = await db.scalar(
        select(User).where(User.organisation_id == organisation_id, User.oidc_subject == subject)
    )
    if user is None:
        email = claims.get("email")
        if isinstance(email, str) and email and claims.get("email_verified") is True:
            user = await db.scalar(
                select(User).where(
                    User.organisation_id == organisation_id,
                    func.lower(User.email) == email.strip().lower(),
                    User.oidc_subject.is_(None),
                )
            )
            if user is not None and user.active:
                user.oidc_subject = subject  # from now on the subject identifies them
    if user is None:
        await audit.record(
            db, None, "auth.login_refused", detail=f"organisation:{organisation_id} reason:unknown"
        )
        raise LoginRefused()
    if not user.active:
        await audit.record(db, None, "auth.login_refused", detail=f"user:{user.id} reason:inactive")
        raise LoginRefused(
            N_(
                "Uw account in Keerpunt staat uit. "
                "Neem contact op met de beheerder van uw organisatie."
            )
        )
    return user


# ---- login sessions --------------------------------------------------------------------------


async def start_login(
    db: AsyncSession,
    *,
    how: str,
    hours: int,
    locale: str,
    user: User | None = None,
    member: CaseMember | None = None,
    invitation_id: int | None = None,
    previous_session_id: str | None = None,
) -> str:
    """Start a login session for a professional or a family member; returns the cookie token.

    A session that was still open in this browser ends first, so one browser is one person.
    """
    if previous_session_id:
        await end_session(db, previous_session_id)
    if user is not None:
        who = staff_principal(user)
        token = await start_session(db, how=how, hours=hours, locale=locale, user_id=user.id)
        await audit.record(db, who, "auth.login", detail=f"how={how}")
        return token
    assert member is not None
    token = await start_session(
        db,
        how=how,
        hours=hours,
        locale=locale,
        member_id=member.id,
        invitation_id=invitation_id,
    )
    await audit.record(
        db, family_principal(member), "auth.login", case_id=member.case_id, detail=f"how={how}"
    )
    return token


async def log_out(db: AsyncSession, who: Principal) -> None:
    """Uitloggen: the server-side session ends, so the old cookie no longer works anywhere."""
    await end_session(db, who.session_id)
    await audit.record(db, who, "auth.logout", case_id=who.case_id)


async def set_session_locale(db: AsyncSession, session_id: str, locale: str) -> None:
    await db.execute(
        update(LoginSession).where(LoginSession.id == session_id).values(locale=locale)
    )


# ---- invitations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NewInvitation:
    """Shown once to the sender; Keerpunt keeps only hashes."""

    invitation_id: int
    link_token: str
    code: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Redemption:
    member_id: int
    invitation_id: int
    case_id: int


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _code_hash(token: str, code: str) -> str:
    # Keyed with the link token, which is never stored: six digits alone would be guessed
    # from a stolen database in a second, this needs the 256-bit token as well.
    return hmac.new(token.encode(), code.encode(), hashlib.sha256).hexdigest()


def _normalise_code(raw: str) -> str | None:
    code = "".join(ch for ch in raw if not ch.isspace() and ch != "-")
    return code if len(code) == 6 and code.isascii() and code.isdigit() else None


async def _check_may_invite(db: AsyncSession, who: Principal, case_id: int) -> None:
    if not who.is_staff:
        raise NotAllowed()
    if any(who.has(r) for r in _INVITING_STAFF_ROLES):
        return
    at_table = await db.scalar(
        select(CaseMember.id).where(
            CaseMember.case_id == case_id,
            CaseMember.user_id == who.user_id,
            CaseMember.removed_at.is_(None),
        )
    )
    if at_table is None:
        raise NotAllowed()


async def create_invitation(
    uow: UnitOfWork, member_id: int, *, days: int, case_id: int | None = None
) -> NewInvitation:
    """Invite a family member or the JIM to one case (uitnodiging): a link plus a code.

    Allowed for the coordinator, the registrar, and the professionals at the case's table.
    A new invitation replaces the unused ones the member still had.
    """
    db, who = uow.db, uow.who
    member = await db.get(CaseMember, member_id)
    if member is None or member.removed_at is not None:
        raise NotFound()
    if case_id is not None and member.case_id != case_id:
        raise NotFound()
    await _check_may_invite(db, who, member.case_id)
    case = await db.get(Case, member.case_id)
    if case is None or case.shredded_at is not None:
        raise NotFound()
    if member.role not in FAMILY_ROLES:
        raise InvalidInput(
            {}, N_("Alleen de jongere, ouders, voogd en JIM krijgen een uitnodiging met een code.")
        )
    now = utcnow()
    await db.execute(
        update(Invitation)
        .where(
            Invitation.member_id == member.id,
            Invitation.used_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(1_000_000):06d}"
    invitation = Invitation(
        member_id=member.id,
        token_hash=_token_hash(token),
        code_hash=_code_hash(token, code),
        created_by_id=who.user_id,
        created_at=now,
        expires_at=now + dt.timedelta(days=days),
        failed_attempts=0,
    )
    db.add(invitation)
    await db.flush()
    await audit.record(
        db,
        who,
        "auth.invitation_created",
        case_id=member.case_id,
        detail=f"invitation:{invitation.id} member:{member.id}",
    )
    return NewInvitation(invitation.id, token, code, invitation.expires_at)


async def _usable_invitation(
    db: AsyncSession, token: str, *, for_update: bool
) -> tuple[Invitation, CaseMember]:
    query = select(Invitation).where(Invitation.token_hash == _token_hash(token))
    if for_update:
        query = query.with_for_update()  # two tabs redeeming at once: one wins
    invitation = await db.scalar(query)
    if invitation is None:
        raise InvitationUnknown()
    if invitation.revoked_at is not None:
        raise InvitationRevoked()
    if invitation.used_at is not None:
        raise InvitationUsed()
    if invitation.failed_attempts >= INVITATION_MAX_ATTEMPTS:
        raise InvitationLocked()
    if invitation.expires_at <= utcnow():
        raise InvitationExpired()
    member = await db.get(CaseMember, invitation.member_id)
    case = await db.get(Case, member.case_id) if member else None
    if member is None or member.removed_at is not None or case is None or case.shredded_at:
        raise InvitationRevoked()
    return invitation, member


async def check_invitation(db: AsyncSession, token: str) -> None:
    """Raise the plain reason when the link can no longer be used."""
    await _usable_invitation(db, token, for_update=False)


async def redeem_invitation(db: AsyncSession, token: str, code: str) -> Redemption:
    """Use an invitation once: the right code logs the member in, a wrong one counts.

    After five wrong codes the invitation is locked for good. Brute force is bounded by this
    lock per invitation: one in 200,000 for each invitation an attacker has the link of.
    """
    invitation, member = await _usable_invitation(db, token, for_update=True)
    normalised = _normalise_code(code)
    if normalised is None:
        raise InvalidInput({"code": N_("Vul de code van 6 cijfers in.")})
    if not hmac.compare_digest(_code_hash(token, normalised), invitation.code_hash):
        invitation.failed_attempts += 1
        await db.flush()
        await audit.record(
            db,
            None,
            "auth.invitation_wrong_code",
            case_id=member.case_id,
            detail=f"invitation:{invitation.id} attempt:{invitation.failed_attempts}",
        )
        left = INVITATION_MAX_ATTEMPTS - invitation.failed_attempts
        if left <= 0:
            raise InvitationLocked()
        raise WrongCode(left=left)
    invitation.used_at = utcnow()
    await db.flush()
    return Redemption(member_id=member.id, invitation_id=invitation.id, case_id=member.case_id)


async def revoke_invitation(uow: UnitOfWork, invitation_id: int) -> int:
    """Intrekken: the invitation stops working and a session started from it ends now.

    Returns the case id.
    """
    db, who = uow.db, uow.who
    invitation = await db.get(Invitation, invitation_id)
    member = await db.get(CaseMember, invitation.member_id) if invitation else None
    if invitation is None or member is None:
        raise NotFound()
    await _check_may_invite(db, who, member.case_id)
    if invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
    await revoke_sessions_for_invitation(db, invitation.id)
    await audit.record(
        db,
        who,
        "auth.invitation_revoked",
        case_id=member.case_id,
        detail=f"invitation:{invitation.id} member:{member.id}",
    )
    return member.case_id


@dataclass(frozen=True)
class InvitationStatus:
    """An invitation as the people who manage them see it (never the link or the code)."""

    invitation_id: int
    member_id: int
    state: str  # open | used | revoked | expired | locked
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None


async def invitations_for_case(
    db: AsyncSession, who: Principal, case_id: int
) -> dict[int, list[InvitationStatus]]:
    """Per family member, their invitations, newest first, for those who may invite; empty
    for everyone else."""
    try:
        await _check_may_invite(db, who, case_id)
    except NotAllowed:
        return {}
    now = utcnow()
    rows = await db.scalars(
        select(Invitation)
        .join(CaseMember, CaseMember.id == Invitation.member_id)
        .where(CaseMember.case_id == case_id)
        .order_by(Invitation.created_at.desc())
    )
    out: dict[int, list[InvitationStatus]] = {}
    for inv in rows:
        state = (
            "revoked"
            if inv.revoked_at
            else "used"
            if inv.used_at
            else "locked"
            if inv.failed_attempts >= INVITATION_MAX_ATTEMPTS
            else "expired"
            if inv.expires_at <= now
            else "open"
        )
        out.setdefault(inv.member_id, []).append(
            InvitationStatus(
                inv.id, inv.member_id, state, inv.created_at, inv.expires_at, inv.used_at
            )
        )
    return out


async def member_for_login(db: AsyncSession, member_id: int) -> CaseMember:
    member = await db.get(CaseMember, member_id)
    if member is None or member.removed_at is not None:
        raise InvitationRevoked()
    return member


# ---- demo ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoStaff:
    user_id: int
    name: str
    organisation: str
    roles: tuple[str, ...]
    discipline: str | None


@dataclass(frozen=True)
class DemoMember:
    member_id: int
    case_pseudonym: str
    name: str
    role: str


async def demo_people(db: AsyncSession, vault: Vault) -> tuple[list[DemoStaff], list[DemoMember]]:
    """Everyone one can log in as in a demo: active professionals and the families."""
    users = (
        await db.scalars(
            select(User)
            .join(Organisation, Organisation.id == User.organisation_id)
            .where(User.active.is_(True))
            .order_by(Organisation.name, User.display_name)
        )
    ).all()
    staff = [
        DemoStaff(
            u.id, u.display_name, u.organisation.name, tuple(sorted(u.role_set)), u.discipline
        )
        for u in users
    ]
    rows = (
        await db.execute(
            select(CaseMember, Case.pseudonym)
            .join(Case, Case.id == CaseMember.case_id)
            .where(
                CaseMember.role.in_([r.value for r in FAMILY_ROLES]),
                CaseMember.removed_at.is_(None),
                Case.shredded_at.is_(None),
            )
            .order_by(Case.pseudonym, CaseMember.id)
        )
    ).all()
    members: list[DemoMember] = []
    for member, pseudonym in rows:
        cipher = await vault.cipher(db, member.case_id)
        name = None if cipher.shredded else cipher.decrypt("member.name", member.name_enc)
        members.append(DemoMember(member.id, pseudonym, name or "", member.role))
    return staff, members


async def demo_login(
    db: AsyncSession,
    *,
    user_id: int | None,
    member_id: int | None,
    hours: int,
    locale: str,
    previous_session_id: str | None = None,
) -> str:
    """Log in as anyone, without a provider or invitation. The edge allows it in demo mode only."""
    user = await db.get(User, user_id) if user_id is not None else None
    member = await db.get(CaseMember, member_id) if member_id is not None and not user else None
    if user is not None and user.active:
        return await start_login(
            db,
            how="demo",
            hours=hours,
            locale=locale,
            user=user,
            previous_session_id=previous_session_id,
        )
    if member is not None and member.removed_at is None and member.role in FAMILY_ROLES:
        return await start_login(
            db,
            how="demo",
            hours=hours,
            locale=locale,
            member=member,
            previous_session_id=previous_session_id,
        )
    raise NotFound()
