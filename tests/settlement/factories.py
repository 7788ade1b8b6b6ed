"""Test data for settlement: a penvoerder with finance staff, providers, and fixed arrangements.

Triage rows are written directly (settlement only reads what a closed session left behind).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from keerpunt.platform.models import Case, Organisation, User
from keerpunt.platform.principal import Principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.models import Contract
from keerpunt.triage.models import ArrangementLine, TriageSession
from tests.helpers import make_org, make_user


@dataclass
class Region:
    penvoerder: Organisation
    finance: User  # finance staff of the penvoerder
    coordinator: User  # penvoerder staff without the finance role
    other_finance: User  # finance staff of an organisation that is not the penvoerder
    horizon: Organisation
    altra: Organisation
    wijkteam: Organisation


async def build_region(rt: Runtime) -> Region:
    penvoerder = await make_org(rt, "Pactum", is_penvoerder=True, agb_code="98000005")
    horizon = await make_org(rt, "Horizon", agb_code="98000011")
    altra = await make_org(rt, "Altra", agb_code="98000022")
    wijkteam = await make_org(rt, "Wijkteam Oost", kind="other")
    return Region(
        penvoerder=penvoerder,
        finance=await make_user(rt, penvoerder, "Fien Financien", "finance"),
        coordinator=await make_user(rt, penvoerder, "Carla Coord", "coordinator"),
        other_finance=await make_user(rt, horizon, "Henk Horizon", "finance"),
        horizon=horizon,
        altra=altra,
        wijkteam=wijkteam,
    )


def principal(user: User) -> Principal:
    return staff_principal(user, session_id="test")


async def add_tariff(
    rt: Runtime,
    provider: Organisation,
    tariff_cents: int,
    valid_from: dt.date,
    valid_to: dt.date | None = None,
    *,
    product_code: str = "45A52",
    unit: str = "04",
) -> None:
    async with rt.sessionmaker() as db, db.begin():
        db.add(
            Contract(
                provider_id=provider.id,
                product_category=product_code[:2],
                product_code=product_code,
                description="Ambulante jeugdhulp",
                unit=unit,
                tariff_cents=tariff_cents,
                valid_from=valid_from,
                valid_to=valid_to,
            )
        )


_counter = iter(range(1, 1_000_000))


async def add_arrangement(
    rt: Runtime,
    registrar: User,
    lines: list[tuple[Organisation, str, int, dt.date, dt.date]],
    *,
    status: str = "closed",
    pseudonym: str | None = None,
) -> str:
    """A case with one triage session (``status``) and its arrangement lines
    (provider, product code, minutes per week, start, end); returns the case pseudonym."""
    pseudonym = pseudonym or f"Casus-{next(_counter):04d}"
    async with rt.sessionmaker() as db, db.begin():
        case = Case(pseudonym=pseudonym, age_band="12-15", registered_by_id=registrar.id)
        db.add(case)
        await db.flush()
        session = TriageSession(
            case_id=case.id,
            scheduled_at=dt.datetime(2026, 6, 1, 10, tzinfo=dt.UTC),
            status=status,
            planned_by_id=registrar.id,
        )
        db.add(session)
        await db.flush()
        for provider, code, minutes, start, end in lines:
            db.add(
                ArrangementLine(
                    session_id=session.id,
                    provider_id=provider.id,
                    product_code=code,
                    minutes_per_week=minutes,
                    start_date=start,
                    end_date=end,
                    author=f"user:{registrar.id}",
                )
            )
    return pseudonym


async def add_case(rt: Runtime, registrar: User) -> Case:
    """A case as settlement sees it: only its pseudonym (no personal data is needed)."""
    async with rt.sessionmaker() as db, db.begin():
        case = Case(
            pseudonym=f"Casus-{next(_counter):04d}", age_band="12-15", registered_by_id=registrar.id
        )
        db.add(case)
    return case
