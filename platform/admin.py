"""Provisioning for a real deployment: organisations, their login issuer, and staff accounts.

Professionals log in through their own organisation's OpenID Connect provider, but only as a
person Keerpunt already knows: an administrator adds them here (``keerpunt user add``), and
ends that here when they leave (``keerpunt user deactivate``) or their job changes
(``keerpunt user roles``). Both end every login the person has at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform import audit
from keerpunt.platform.models import Discipline, Organisation, OrgKind, StaffRole, User
from keerpunt.platform.sessions import end_user_sessions

__all__ = [
    "AdminError",
    "StaffChange",
    "StaffLine",
    "activate_user",
    "add_organisation",
    "add_user",
    "deactivate_user",
    "list_users",
    "set_oidc",
    "set_roles",
]


class AdminError(ValueError):
    """Refused provisioning input; the message says what to change."""


async def _org(db: AsyncSession, name: str) -> Organisation:
    org = await db.scalar(select(Organisation).where(Organisation.name == name))
    if org is None:
        raise AdminError(f"No organisation named {name!r}; add it first with 'keerpunt org add'.")
    return org


async def add_organisation(
    db: AsyncSession,
    *,
    name: str,
    kind: str,
    agb_code: str | None = None,
    cbs_code: str | None = None,
    penvoerder: bool = False,
    region: str | None = None,
) -> Organisation:
    if kind not in set(OrgKind):
        raise AdminError(f"kind must be one of {', '.join(OrgKind)}")
    if agb_code is not None and not (agb_code.isdigit() and len(agb_code) == 8):
        raise AdminError("An AGB code has 8 digits.")
    if cbs_code is not None and not (cbs_code.isdigit() and len(cbs_code) == 4):
        raise AdminError("A CBS municipality code has 4 digits (e.g. 0150 for Deventer).")
    if kind == OrgKind.PROVIDER and agb_code is None:
        raise AdminError("A provider needs its AGB code.")
    if kind == OrgKind.MUNICIPALITY and cbs_code is None:
        raise AdminError("A municipality needs its CBS code.")
    if await db.scalar(select(Organisation.id).where(Organisation.name == name)):
        raise AdminError(f"An organisation named {name!r} exists already.")
    org = Organisation(
        name=name,
        kind=kind,
        agb_code=agb_code,
        cbs_code=cbs_code,
        is_penvoerder=penvoerder,
        region=region,
    )
    db.add(org)
    await db.flush()
    await audit.record(db, None, "admin.organisation_added", detail=f"organisation={org.id}")
    return org


async def set_oidc(db: AsyncSession, *, organisation: str, issuer: str, client_id: str) -> int:
    """Point an organisation's staff login at its OpenID Connect issuer; returns its id (the
    client secret goes in KEERPUNT_OIDC_SECRET_<id>, never in the database)."""
    if not issuer.startswith("https://") and not issuer.startswith("http://127.0.0.1"):
        raise AdminError("The issuer must be an https:// URL.")
    org = await _org(db, organisation)
    org.oidc_issuer, org.oidc_client_id = issuer.rstrip("/"), client_id
    await audit.record(db, None, "admin.oidc_set", detail=f"organisation={org.id}")
    return org.id


def _check_roles(roles: Sequence[str], discipline: str | None) -> None:
    unknown = set(roles) - set(StaffRole)
    if unknown or not roles:
        raise AdminError(f"roles must be some of {', '.join(StaffRole)}")
    if discipline is not None and discipline not in set(Discipline):
        raise AdminError(f"discipline must be one of {', '.join(Discipline)}")


async def add_user(
    db: AsyncSession,
    *,
    organisation: str,
    name: str,
    email: str,
    roles: list[str],
    discipline: str | None = None,
) -> User:
    _check_roles(roles, discipline)
    if "@" not in email:
        raise AdminError("Give the e-mail address the organisation's login reports.")
    org = await _org(db, organisation)
    if await db.scalar(select(User.id).where(User.email == email.lower())):
        raise AdminError(f"A user with e-mail {email} exists already.")
    user = User(
        organisation_id=org.id,
        display_name=name,
        email=email.lower(),
        roles=",".join(sorted(roles)),
        discipline=discipline,
    )
    db.add(user)
    await db.flush()
    await audit.record(db, None, "admin.user_added", detail=f"user={user.id}")
    return user


@dataclass(frozen=True)
class StaffLine:
    """One staff account as ``keerpunt user list`` shows it."""

    user_id: int
    name: str
    email: str
    organisation: str
    roles: tuple[str, ...]
    discipline: str | None
    active: bool


@dataclass(frozen=True)
class StaffChange:
    """What a change to an account did: ``changed`` False when it was so already."""

    user_id: int
    changed: bool
    sessions_ended: int
    message: str


async def _user(db: AsyncSession, email: str) -> User:
    user = await db.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise AdminError(f"No user with e-mail {email.strip()}; 'keerpunt user list' shows who.")
    return user


async def list_users(db: AsyncSession, organisation: str | None = None) -> list[StaffLine]:
    """Every staff account (of one organisation), by organisation and name."""
    query = select(User, Organisation.name).join(Organisation)
    if organisation is not None:
        query = query.where(User.organisation_id == (await _org(db, organisation)).id)
    rows = await db.execute(query.order_by(Organisation.name, User.display_name, User.id))
    return [
        StaffLine(
            u.id, u.display_name, u.email, org, tuple(sorted(u.role_set)), u.discipline, u.active
        )
        for u, org in rows
    ]


async def deactivate_user(db: AsyncSession, *, email: str) -> StaffChange:
    """Someone leaves (uit dienst): they can no longer log in, and every login they have ends
    now, open meeting screens included. What they wrote stays, under their name."""
    user = await _user(db, email)
    if not user.active:
        return StaffChange(user.id, False, 0, f"{user.display_name} was deactivated already.")
    user.active = False
    ended = await end_user_sessions(db, user.id)
    await audit.record(
        db, None, "admin.user_deactivated", detail=f"user={user.id} sessions_ended={ended}"
    )
    return StaffChange(
        user.id, True, ended, f"{user.display_name} deactivated; {ended} login(s) ended."
    )


async def activate_user(db: AsyncSession, *, email: str) -> StaffChange:
    """Let a deactivated person log in again (through their organisation, as before)."""
    user = await _user(db, email)
    if user.active:
        return StaffChange(user.id, False, 0, f"{user.display_name} is active already.")
    user.active = True
    await audit.record(db, None, "admin.user_activated", detail=f"user={user.id}")
    return StaffChange(user.id, True, 0, f"{user.display_name} may log in again.")


async def set_roles(
    db: AsyncSession,
    *,
    email: str,
    roles: Sequence[str],
    discipline: str | None = None,
) -> StaffChange:
    """A new job: the person's roles (and discipline, when given) become these. Rights are
    read when someone logs in, so every login under the old ones ends now."""
    _check_roles(roles, discipline)
    user = await _user(db, email)
    new_roles = ",".join(sorted(set(roles)))
    new_discipline = user.discipline if discipline is None else discipline
    if (new_roles, new_discipline) == (user.roles, user.discipline):
        return StaffChange(user.id, False, 0, f"{user.display_name}: no change.")
    detail = f"user={user.id} roles={user.roles}->{new_roles}"
    if new_discipline != user.discipline:
        detail += f" discipline={user.discipline or '-'}->{new_discipline}"
    user.roles, user.discipline = new_roles, new_discipline
    ended = await end_user_sessions(db, user.id)
    await audit.record(db, None, "admin.user_changed", detail=f"{detail} sessions_ended={ended}")
    return StaffChange(
        user.id, True, ended, f"{user.display_name} now has {new_roles}; {ended} login(s) ended."
    )
