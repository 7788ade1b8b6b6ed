"""Who may see and change what in settlement (no HTTP): finance staff of the penvoerder see
everything; a provider's staff see and enter only the care of their own organisation."""

from __future__ import annotations

from keerpunt.platform.errors import NotAllowed
from keerpunt.platform.models import Organisation, OrgKind, StaffRole
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import UnitOfWork

__all__ = ["check_finance_access", "check_settlement_access", "menu_pages"]


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


def menu_pages(who: Principal | None) -> frozenset[str]:
    """The settlement pages (route names) this person may open, for the main menu: the same
    rules as the checks of those pages, from what the principal knows of its organisation.
    The pages behind them (contracts and the run from the quarter, bank accounts from the
    kassier, the import from the allocations, triage hours from the monitor) link on."""
    if who is None or not who.is_staff:
        return frozenset()
    finance = who.has(StaffRole.FINANCE)
    provider = who.organisation_kind == OrgKind.PROVIDER
    lead = finance and who.at_penvoerder  # the penvoerder's finance staff: everything
    pages = {
        "settlement.quarter": lead,
        "settlement.kassier_index": lead or (finance and provider),
        "settlement.allocations": lead or provider,  # a provider's staff: its own care
        "settlement.monitor": lead or who.has(StaffRole.FUNDER),
        "settlement.triage_rates": lead,  # the triage team's rates and budget
        "settlement.api_token": finance and provider,
    }
    return frozenset(name for name, may in pages.items() if may)
