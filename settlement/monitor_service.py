"""Reads for the triage-team time page and the funder's monitor, inside the caller's unit of
work (never commits). Triage is asked only through its service; the figures are put together
by the pure functions of :mod:`~keerpunt.settlement.triage_hours` and
:mod:`~keerpunt.settlement.monitor`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select

from keerpunt.platform import audit
from keerpunt.platform.errors import NotAllowed
from keerpunt.platform.models import Organisation, StaffRole
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_finance_access
from keerpunt.settlement.models import Contract
from keerpunt.settlement.monitor import MonitorReport, assemble_monitor
from keerpunt.settlement.rules import ContractTerms, ProviderInfo, Quarter, assemble_overview
from keerpunt.settlement.triage_hours import (
    BudgetStatus,
    TriageHours,
    budget_status,
    price_team_time,
)
from keerpunt.settlement.triage_rates import budget_of, rates_of
from keerpunt.triage import service as triage

__all__ = [
    "TriageHoursPage",
    "check_monitor_access",
    "monitor_report",
    "triage_hours_page",
]


async def check_monitor_access(uow: UnitOfWork) -> Organisation:
    """The monitor is for the penvoerder's finance staff and the funder (gemeente /
    financier); it returns the penvoerder whose region the figures are about."""
    who = uow.who
    if not who.is_staff or who.organisation_id is None:
        raise NotAllowed()
    if who.has(StaffRole.FINANCE):
        org = await uow.db.get(Organisation, who.organisation_id)
        if org is not None and org.is_penvoerder:
            return org
    if who.has(StaffRole.FUNDER):
        own = await uow.db.get(Organisation, who.organisation_id)
        penvoerders = (
            await uow.db.scalars(
                select(Organisation)
                .where(Organisation.is_penvoerder.is_(True))
                .order_by(Organisation.id)
            )
        ).all()
        same = [p for p in penvoerders if own is not None and p.region == own.region]
        if same or penvoerders:
            return (same or list(penvoerders))[0]
    raise NotAllowed()


@dataclass(frozen=True)
class TriageHoursPage:
    quarter: Quarter
    region: str
    hours: TriageHours
    budget: BudgetStatus
    unconfirmed_sessions: int


async def _team_time(
    uow: UnitOfWork, penvoerder: Organisation, quarter: Quarter
) -> tuple[TriageHours, BudgetStatus, int]:
    year_start = dt.date(quarter.year, 1, 1)
    year = await triage.triage_team_time(uow.db, year_start, quarter.end)
    in_quarter = [r for r in year.rows if r.day >= quarter.start]
    unconfirmed = await triage.triage_team_time(uow.db, quarter.start, quarter.end)
    rates = await rates_of(uow.db, penvoerder.region)
    hours = price_team_time(in_quarter, rates)
    used = price_team_time(year.rows, rates).amount_cents
    budget = budget_status(await budget_of(uow.db, penvoerder.region, quarter.year), used)
    return hours, budget, unconfirmed.unconfirmed_sessions


async def triage_hours_page(uow: UnitOfWork, quarter: Quarter) -> TriageHoursPage:
    """Triage-team time of a quarter per seconding provider and discipline, at the discipline
    rates, and the year's budget used up to the quarter's end (verrekening inzet triageleden).
    Only the penvoerder's finance staff."""
    penvoerder = await check_finance_access(uow)
    hours, budget, unconfirmed = await _team_time(uow, penvoerder, quarter)
    return TriageHoursPage(quarter, penvoerder.region or "", hours, budget, unconfirmed)


async def monitor_report(uow: UnitOfWork, quarter: Quarter, *, how: str = "page") -> MonitorReport:
    """The funder's quarterly figures (kwartaalmonitor): non-personal, small numbers
    suppressed. A download (``how``: "xlsx", "csv") is audited."""
    penvoerder = await check_monitor_access(uow)
    lines = await triage.fixed_arrangement_lines(uow.db, quarter.start, quarter.end)
    provider_ids = {ln.provider_id for ln in lines}
    amounts: dict[int, int] = {}
    if provider_ids:
        contracts = await uow.db.scalars(
            select(Contract).where(
                Contract.provider_id.in_(provider_ids),
                Contract.valid_from <= quarter.end,
                or_(Contract.valid_to.is_(None), Contract.valid_to >= quarter.start),
            )
        )
        terms = [
            ContractTerms(
                c.provider_id,
                c.product_code,
                c.unit,
                c.tariff_cents,
                c.valid_from,
                c.valid_to,
                c.description,
            )
            for c in contracts
        ]
        providers = {i: ProviderInfo(i, f"#{i}", None) for i in provider_ids}
        overview = assemble_overview(quarter, lines, terms, providers)
        amounts = {ln.line_id: ln.amount_cents for b in overview.providers for ln in b.lines}
    hours, budget, unconfirmed = await _team_time(uow, penvoerder, quarter)
    half_start = dt.date(quarter.year, 1 if quarter.q <= 2 else 7, 1)
    half_end = dt.date(quarter.year, 7, 1) if quarter.q <= 2 else dt.date(quarter.year + 1, 1, 1)
    ret = await triage.ret_allocations_per_provider(uow.db, half_start, half_end)
    if how != "page":  # a file leaves the platform: note who took which quarter
        await audit.record(
            uow.db, uow.who, "settlement.monitor", purpose="monitor", detail=f"{quarter.code} {how}"
        )
    return assemble_monitor(quarter, lines, amounts, hours, budget, unconfirmed, ret)
