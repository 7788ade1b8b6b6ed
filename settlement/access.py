"""Who may see and change what in settlement (no HTTP): finance staff of the penvoerder see
everything; a provider's staff see and enter only the care of their own organisation."""

from __future__ import annotations

from keerpunt.platform.errors import NotAllowed
from keerpunt.platform.models import Organisation, OrgKind, StaffRole
from keerpunt.platform.uow import UnitOfWork

__all__ = ["check_finance_access", "check_settlement_access"]


async def check_finance_access(uow: UnitOfWork) -> Organisation:
    """Only finance staff of the penvoerder (lead contractor) see or change settlement."""
    who = uow.who
    if not who.has(StaffRole.FINANCE) or who.organisation_id is None:
        raise NotAllowed()
    org = await uow.db.get(Organisation, who.organisation_id)
    if org is None or not org.is_penvoerder:
        raise NotAllowed()
    return org


async def check_settlement_access(uow: UnitOfWork) -> tuple[Organisation, bool]:
    """The viewer's organisation and whether it is the penvoerder's finance (sees all).

    Otherwise only staff of a provider (zorgaanbieder) get in, for their own care only; so
    does the provider's own system with its API token (it never holds the finance role)."""
    who = uow.who
    if not (who.is_staff or who.api_token_id is not None) or who.organisation_id is None:
        raise NotAllowed()
    org = await uow.db.get(Organisation, who.organisation_id)
    if org is None:
        raise NotAllowed()
    if org.is_penvoerder and who.has(StaffRole.FINANCE):
        return org, True
    if org.kind != OrgKind.PROVIDER:
        raise NotAllowed()
    return org, False
