"""HTTP routes of the funder's monitor and the triage-team time page (thin: parse the quarter,
call the service, render or send the file)."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keerpunt.platform.i18n import AMSTERDAM, money
from keerpunt.platform.models import StaffRole
from keerpunt.platform.web import render, require, unit_of_work
from keerpunt.settlement.monitor import (
    DISCIPLINE_LABELS,
    SMALL,
    charts,
    monitor_csv,
    monitor_xlsx,
)
from keerpunt.settlement.monitor_service import monitor_report, triage_hours_page
from keerpunt.settlement.rules import InvalidQuarter, Quarter, parse_quarter, quarter_of


def _quarter(request: Request) -> tuple[Quarter, str, str | None]:
    """The asked quarter (``?quarter=2026Q3``), else the previous one: the last that is over."""
    raw = request.query_params.get("quarter", "").strip()
    today = quarter_of(dt.datetime.now(AMSTERDAM).date()).previous
    if not raw:
        return today, raw, None
    try:
        return parse_quarter(raw), raw, None
    except InvalidQuarter as exc:
        return today, raw, exc.message


async def monitor(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE, StaffRole.FUNDER)
    chosen, raw, error = _quarter(request)
    async with unit_of_work(request, who) as uow:
        report = await monitor_report(uow, chosen)
    return render(
        request,
        "settlement/monitor.html",
        {
            "report": report,
            "charts": charts(report, money),
            "raw": raw,
            "error": error,
            "small": SMALL,
        },
        status_code=400 if error else 200,
    )


async def _download(request: Request, how: str) -> Response:
    who = require(request, StaffRole.FINANCE, StaffRole.FUNDER)
    chosen, _raw, error = _quarter(request)
    if error:
        raise InvalidQuarter()
    async with unit_of_work(request, who) as uow:
        report = await monitor_report(uow, chosen, how=how)
    if how == "xlsx":
        data = monitor_xlsx(report)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        data = monitor_csv(report)
        media = "text/csv; charset=utf-8"
    return Response(
        data,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="monitor-{chosen.code}.{how}"',
            "Cache-Control": "no-store",
        },
    )


async def monitor_xlsx_file(request: Request) -> Response:
    return await _download(request, "xlsx")


async def monitor_csv_file(request: Request) -> Response:
    return await _download(request, "csv")


async def triage_hours(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    chosen, raw, error = _quarter(request)
    async with unit_of_work(request, who) as uow:
        page = await triage_hours_page(uow, chosen)
    return render(
        request,
        "settlement/monitor_triage_hours.html",
        {"page": page, "raw": raw, "error": error, "disciplines": DISCIPLINE_LABELS},
        status_code=400 if error else 200,
    )


routes: list[BaseRoute] = [
    Route("/settlement/monitor", monitor, name="settlement.monitor"),
    Route("/settlement/monitor.xlsx", monitor_xlsx_file, name="settlement.monitor_xlsx"),
    Route("/settlement/monitor.csv", monitor_csv_file, name="settlement.monitor_csv"),
    Route("/settlement/triage-hours", triage_hours, name="settlement.triage_hours"),
]
