"""The discipline rates and yearly triage budgets in the database (tarieven en budget
triageteam), kept by the penvoerder's finance staff for their region; the rules are the pure
functions of :mod:`~keerpunt.settlement.triage_hours`. Inside the caller's unit of work; never
commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform import audit
from keerpunt.platform.db import utcnow
from keerpunt.platform.errors import NotFound
from keerpunt.platform.models import Organisation
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_finance_access
from keerpunt.settlement.models import DisciplineRateRow, SettlementRun, TriageBudgetRow
from keerpunt.settlement.rules import parse_quarter
from keerpunt.settlement.triage_hours import (
    PILOT_BUDGETS,
    PILOT_RATES,
    PILOT_REGION,
    BudgetDraft,
    DisciplineRate,
    TriageBudget,
    check_budget_year,
    may_remove,
    plan_new_rate,
    plan_rate_removal,
    region_key,
)

__all__ = [
    "TriageRatesPage",
    "add_discipline_rate",
    "budget_of",
    "closed_until",
    "load_pilot_values",
    "rates_of",
    "remove_discipline_rate",
    "set_triage_budget",
    "triage_rates_page",
]


def _rate(row: DisciplineRateRow) -> DisciplineRate:
    return DisciplineRate(
        row.discipline, row.cents_per_hour, row.valid_from, row.valid_to, id=row.id
    )


async def rates_of(db: AsyncSession, region: str | None) -> list[DisciplineRate]:
    """Every discipline rate of the region, per discipline, oldest first."""
    rows = await db.scalars(
        select(DisciplineRateRow)
        .where(DisciplineRateRow.region == region_key(region))
        .order_by(DisciplineRateRow.discipline, DisciplineRateRow.valid_from)
    )
    return [_rate(r) for r in rows]


async def budgets_of(db: AsyncSession, region: str | None) -> list[TriageBudget]:
    rows = await db.scalars(
        select(TriageBudgetRow)
        .where(TriageBudgetRow.region == region_key(region))
        .order_by(TriageBudgetRow.year)
    )
    return [TriageBudget(r.region, r.year, r.cents) for r in rows]


async def budget_of(db: AsyncSession, region: str | None, year: int) -> TriageBudget | None:
    """The region's triage budget for ``year``, if one is set."""
    row = await db.scalar(
        select(TriageBudgetRow).where(
            TriageBudgetRow.region == region_key(region), TriageBudgetRow.year == year
        )
    )
    return TriageBudget(row.region, row.year, row.cents) if row else None


async def closed_until(db: AsyncSession) -> dt.date | None:
    """The last day of the last closed quarter (afgesloten kwartaal), if any."""
    codes = (await db.scalars(select(SettlementRun.quarter))).all()
    return max((parse_quarter(c).end for c in codes), default=None)


@dataclass(frozen=True)
class TriageRatesPage:
    region: str
    rates: tuple[DisciplineRate, ...]  # per discipline, oldest first
    budgets: tuple[TriageBudget, ...]  # by year
    closed_until: dt.date | None

    def removable(self, rate: DisciplineRate) -> bool:
        """Whether the rate may still be taken away (it starts after every closed quarter)."""
        return may_remove(rate, self.closed_until)


async def triage_rates_page(uow: UnitOfWork) -> TriageRatesPage:
    """The region's discipline rates and yearly budgets. Only the penvoerder's finance
    staff."""
    penvoerder = await check_finance_access(uow)
    return TriageRatesPage(
        region_key(penvoerder.region),
        tuple(await rates_of(uow.db, penvoerder.region)),
        tuple(await budgets_of(uow.db, penvoerder.region)),
        await closed_until(uow.db),
    )


async def _locked_penvoerder(uow: UnitOfWork) -> Organisation:
    # Lock the penvoerder's row so two finance users cannot write overlapping rates (or the
    # same year's budget) at once; on SQLite the write transaction already serialises this.
    org = await check_finance_access(uow)
    locked = await uow.db.scalar(
        select(Organisation).where(Organisation.id == org.id).with_for_update()
    )
    assert locked is not None
    return locked


async def add_discipline_rate(uow: UnitOfWork, draft: DisciplineRate) -> DisciplineRate:
    """A new rate of a discipline from a date (indexering): the running rate ends the day
    before; overlapping periods and a start inside a closed quarter are refused
    (:func:`~keerpunt.settlement.triage_hours.plan_new_rate`)."""
    penvoerder = await _locked_penvoerder(uow)
    region = region_key(penvoerder.region)
    change = plan_new_rate(await rates_of(uow.db, region), draft, await closed_until(uow.db))
    ended = ""
    if change.ends is not None:
        old = await uow.db.get(DisciplineRateRow, change.ends.id)
        assert old is not None
        old.valid_to = draft.valid_from - dt.timedelta(days=1)
        ended = f" ended={old.id}"
    row = DisciplineRateRow(
        region=region,
        discipline=draft.discipline,
        cents_per_hour=draft.cents_per_hour,
        valid_from=draft.valid_from,
        valid_to=draft.valid_to,
        created_by_id=uow.who.user_id,
    )
    uow.db.add(row)
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.triage_rate.add",
        purpose="settlement",
        detail=(
            f"rate={row.id} discipline={row.discipline} cents={row.cents_per_hour} "
            f"from={row.valid_from} to={row.valid_to or ''}{ended}"
        ),
    )
    return _rate(row)


async def remove_discipline_rate(uow: UnitOfWork, rate_id: int) -> DisciplineRate:
    """Take away a rate typed wrongly, while it starts after the last closed quarter; the
    rate before it runs on (:func:`~keerpunt.settlement.triage_hours.plan_rate_removal`).
    A rate of another region does not exist for this viewer."""
    penvoerder = await _locked_penvoerder(uow)
    rates = await rates_of(uow.db, penvoerder.region)
    target = next((r for r in rates if r.id == rate_id), None)
    if target is None:
        raise NotFound()
    removal = plan_rate_removal(rates, target, await closed_until(uow.db))
    row = await uow.db.get(DisciplineRateRow, rate_id)
    assert row is not None
    await uow.db.delete(row)
    extended = ""
    if removal.runs_on is not None:
        before = await uow.db.get(DisciplineRateRow, removal.runs_on.id)
        assert before is not None
        before.valid_to = target.valid_to
        extended = f" runs_on={before.id}"
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.triage_rate.remove",
        purpose="settlement",
        detail=(
            f"rate={rate_id} discipline={target.discipline} cents={target.cents_per_hour} "
            f"from={target.valid_from} to={target.valid_to or ''}{extended}"
        ),
    )
    return target


async def set_triage_budget(uow: UnitOfWork, draft: BudgetDraft) -> TriageBudget:
    """Set the region's triage budget of a year (new, or a changed amount), until every
    quarter of that year is closed."""
    penvoerder = await _locked_penvoerder(uow)
    region = region_key(penvoerder.region)
    check_budget_year(draft.year, await closed_until(uow.db))
    row = await uow.db.scalar(
        select(TriageBudgetRow).where(
            TriageBudgetRow.region == region, TriageBudgetRow.year == draft.year
        )
    )
    was = "" if row is None else str(row.cents)
    if row is None:
        row = TriageBudgetRow(region=region, year=draft.year, cents=draft.cents)
        uow.db.add(row)
    row.cents = draft.cents
    row.changed_by_id = uow.who.user_id
    row.changed_at = utcnow()
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.triage_budget.set",
        purpose="settlement",
        detail=f"year={draft.year} cents={draft.cents} was={was}",
    )
    return TriageBudget(region, draft.year, draft.cents)


async def load_pilot_values(db: AsyncSession, region: str = PILOT_REGION) -> None:
    """The pilot's rates and budgets for ``region``, where it has none yet (the demo; a
    migrated database has them for IJsselland already)."""
    key = region_key(region)
    if not await rates_of(db, key):
        db.add_all(
            DisciplineRateRow(
                region=key,
                discipline=r.discipline,
                cents_per_hour=r.cents_per_hour,
                valid_from=r.valid_from,
                valid_to=r.valid_to,
            )
            for r in PILOT_RATES
        )
    have = {b.year for b in await budgets_of(db, key)}
    db.add_all(
        TriageBudgetRow(region=key, year=b.year, cents=b.cents)
        for b in PILOT_BUDGETS
        if b.year not in have
    )
    await db.flush()
