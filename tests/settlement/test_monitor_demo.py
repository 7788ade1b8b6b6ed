"""The demo fills the funder's monitor: ``make run`` shows figures, not empty tables."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from keerpunt.platform import demo
from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.monitor_service import monitor_report, triage_hours_page
from keerpunt.settlement.rules import quarter_of

pytestmark = pytest.mark.anyio


async def test_demo_fills_the_previous_quarter(runtime: Runtime) -> None:
    assert await demo.load(runtime)
    async with runtime.sessionmaker() as db:
        users = list(await db.scalars(select(User)))
    funder = next(u for u in users if "funder" in u.role_set)
    finance = next(u for u in users if "finance" in u.role_set)
    quarter = quarter_of(dt.datetime.now(AMSTERDAM).date()).previous
    async with runtime.unit_of_work(staff_principal(funder)) as uow:
        report = await monitor_report(uow, quarter)
    assert report.youths.value >= 8 and not report.youths.suppressed
    assert report.providers >= 5
    assert report.cost_cents > 0
    assert report.triage.amount_cents > 0
    assert report.budget.budget_cents == 110_000_00
    assert {r.form for r in report.help_forms if r.youths.value} >= {"ambulant", "short_stay"}
    async with runtime.unit_of_work(staff_principal(finance)) as uow:
        page = await triage_hours_page(uow, quarter)
    assert len(page.hours.providers) >= 5
    assert page.hours.unpriced  # the social-domain expert has no rate yet
