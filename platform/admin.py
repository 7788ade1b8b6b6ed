"""Provisioning for a real deployment: organisations, their login issuer, and staff accounts.

Professionals log in through their own organisation's OpenID Connect provider, but only as a
person Keerpunt already knows: an administrator adds them here (``keerpunt user add``).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform import audit
from keerpunt.platform.models import Discipline, Organisation, OrgKind, StaffRole, User

__all__ = ["AdminError", "add_organisation", "add_user", "set_oidc"]


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


async def add_user(
    db: AsyncSession,
    *,
    organisation: str,
    name: str,
    email: str,
    roles: list[str],
    discipline: str | None = None,
) -> User:
    unknown = set(roles) - set(StaffRole)
    if unknown or not roles:
        raise AdminError(f"roles must be some of {', '.join(StaffRole)}")
    if discipline is not None and discipline not in set(Discipline):
        raise AdminError(f"discipline must be one of {', '.join(Discipline)}")
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
