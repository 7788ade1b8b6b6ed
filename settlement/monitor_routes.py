"""HTTP routes of the funder's monitor, the triage-team time page and its rates and budgets
(thin: parse the quarter or form, call the service, render or send the file)."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from keerpunt.platform.errors import InvalidInput
from keerpunt.platform.i18n import AMSTERDAM, money
from keerpunt.platform.models import StaffRole
from keerpunt.platform.principal import Principal
from keerpunt.platform.web import field, form, is_htmx, render, require, unit_of_work
from keerpunt.settlement.monitor import (
    DISCIPLINE_LABELS,
    SMALL,
    charts,
    monitor_csv,
    monitor_xlsx,
)
from keerpunt.settlement.monitor_service import monitor_report, triage_hours_page
from keerpunt.settlement.rules import InvalidQuarter, Quarter, parse_quarter, quarter_of
from keerpunt.settlement.triage_hours import (
    BUDGET_FIELDS,
    RATE_FIELDS,
    read_budget_form,
    read_rate_form,
)
from keerpunt.settlement.triage_rates import (
    add_discipline_rate,
    remove_discipline_rate,
    set_triage_budget,
    triage_rates_page,
)


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


# ---- the discipline rates and yearly budget (the penvoerder's finance staff) ----


async def _rates_page(
    request: Request,
    who: Principal,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    saved: str | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        page = await triage_rates_page(uow)
    # A history restore asks for the whole page even though it comes from htmx.
    fragment = is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"
    return render(
        request,
        f"settlement/{'_partials/' if fragment else ''}triage_rates.html",
        {
            "page": page,
            "disciplines": DISCIPLINE_LABELS,
            "errors": errors or {},
            "values": values or {},
            "saved": saved,
        },
        status_code=status_code,
    )


async def triage_rates(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    saved = request.query_params.get("saved", "")
    known = saved in {"rate", "budget", "removed"}
    return await _rates_page(request, who, saved=saved if known else None)


async def _saved(request: Request, who: Principal, what: str) -> Response:
    if is_htmx(request):
        return await _rates_page(request, who, saved=what)
    url = request.url_for("settlement.triage_rates").include_query_params(saved=what)
    return RedirectResponse(str(url), status_code=303)


async def triage_rate_add(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    data = await form(request)
    values = {name: field(data, name) for name in RATE_FIELDS}
    try:
        # The transaction rolls back on bad input: nothing is saved.
        async with unit_of_work(request, who) as uow:
            await add_discipline_rate(uow, read_rate_form(values))
    except InvalidInput as exc:
        return await _rates_page(request, who, errors=exc.errors, values=values, status_code=422)
    return await _saved(request, who, "rate")


async def triage_rate_remove(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    rate_id: int = request.path_params["rate_id"]
    try:
        async with unit_of_work(request, who) as uow:
            await remove_discipline_rate(uow, rate_id)
    except InvalidInput as exc:
        return await _rates_page(request, who, errors=exc.errors, status_code=422)
    return await _saved(request, who, "removed")


async def triage_budget_set(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    data = await form(request)
    values = {name: field(data, name) for name in BUDGET_FIELDS}
    try:
        async with unit_of_work(request, who) as uow:
            await set_triage_budget(uow, read_budget_form(values))
    except InvalidInput as exc:
        return await _rates_page(request, who, errors=exc.errors, values=values, status_code=422)
    return await _saved(request, who, "budget")


routes: list[BaseRoute] = [
    Route("/settlement/monitor", monitor, name="settlement.monitor"),
    Route("/settlement/monitor.xlsx", monitor_xlsx_file, name="settlement.monitor_xlsx"),
    Route("/settlement/monitor.csv", monitor_csv_file, name="settlement.monitor_csv"),
    Route("/settlement/triage-hours", triage_hours, name="settlement.triage_hours"),
    Route("/settlement/triage-rates", triage_rates, name="settlement.triage_rates"),
    Route(
        "/settlement/triage-rates/rate",
        triage_rate_add,
        methods=["POST"],
        name="settlement.triage_rate_add",
    ),
    Route(
        "/settlement/triage-rates/{rate_id:int}/remove",
        triage_rate_remove,
        methods=["POST"],
        name="settlement.triage_rate_remove",
    ),
    Route(
        "/settlement/triage-rates/budget",
        triage_budget_set,
        methods=["POST"],
        name="settlement.triage_budget_set",
    ),
]
