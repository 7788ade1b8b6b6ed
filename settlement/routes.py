"""HTTP routes of settlement (thin: parse, call the service, render)."""

from __future__ import annotations

import datetime as dt

from babel.numbers import format_decimal
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from keerpunt.platform.errors import InvalidInput
from keerpunt.platform.i18n import AMSTERDAM, current_locale, today
from keerpunt.platform.models import StaffRole
from keerpunt.platform.principal import Principal
from keerpunt.platform.web import (
    field,
    form,
    is_htmx,
    render,
    require,
    runtime,
    unit_of_work,
)
from keerpunt.settlement.proposals import allocation_proposals
from keerpunt.settlement.service import (
    BAD_DATE,
    CONTRACT_FIELDS,
    DELIVERY_FIELDS,
    PHASE_DONE,
    PHASE_TEXT,
    UNITS,
    CloseJob,
    Closer,
    InvalidQuarter,
    LaterQuarterClosed,
    Quarter,
    QuarterNotOver,
    QuarterOverview,
    add_contract,
    allocations_page,
    check_finance_access,
    closing_state,
    count_text,
    end_contract,
    list_contracts,
    own_statements,
    parse_date,
    parse_quarter,
    provider_choices,
    provider_statement,
    provider_statement_csv,
    quarter_of,
    quarter_overview,
    read_contract_form,
    read_delivery_form,
    record_delivery,
    run_declarations,
    run_page,
    run_statement,
    statement_pdf,
    statement_pdf_name,
    statement_providers,
)


def _fragment(request: Request) -> bool:
    # A history restore asks for the whole page even though it comes from htmx.
    return is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"


def _template(request: Request, name: str) -> str:
    return f"settlement/_partials/{name}" if _fragment(request) else f"settlement/{name}"


async def quarter(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    raw = request.query_params.get("q", "").strip()
    error: str | None = None
    chosen: Quarter | None = None
    overview: QuarterOverview | None = None
    try:
        chosen = parse_quarter(raw) if raw else quarter_of(dt.datetime.now(AMSTERDAM).date())
    except InvalidQuarter as exc:
        error = exc.message
    async with unit_of_work(request, who) as uow:
        if chosen is None:
            await check_finance_access(uow)
        else:
            overview = await quarter_overview(uow, chosen)
    return render(
        request,
        _template(request, "quarter.html"),
        {
            "quarter": chosen,
            "overview": overview,
            "raw": raw,
            "error": error,
            "units": UNITS,
        },
        status_code=400 if error else 200,
    )


async def _contracts_page(
    request: Request,
    who: Principal,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    added: int | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        contracts = await list_contracts(uow)
        providers = await provider_choices(uow)
    return render(
        request,
        _template(request, "contracts.html"),
        {
            "contracts": contracts,
            "providers": providers,
            "units": UNITS,
            "errors": errors or {},
            "values": values or {},
            "added": next((c for c in contracts if c.id == added), None),
        },
        status_code=status_code,
    )


async def contracts(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    added = request.query_params.get("added", "")
    return await _contracts_page(request, who, added=int(added) if added.isdecimal() else None)


async def contract_add(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    data = await form(request)
    values = {name: field(data, name) for name in CONTRACT_FIELDS}
    try:
        # The transaction rolls back on bad input: nothing is saved.
        async with unit_of_work(request, who) as uow:
            row = await add_contract(uow, read_contract_form(values))
    except InvalidInput as exc:
        return await _contracts_page(
            request, who, errors=exc.errors, values=values, status_code=422
        )
    if _fragment(request):
        return await _contracts_page(request, who, added=row.id)
    url = request.url_for("settlement.contracts").include_query_params(added=row.id)
    return RedirectResponse(str(url), status_code=303)


async def contract_end(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    contract_id: int = request.path_params["contract_id"]
    raw = field(await form(request), "valid_to")
    # Field errors of these small per-row forms are keyed by row: "end-<id>".
    key = f"end-{contract_id}"
    try:
        valid_to = parse_date(raw)
        if valid_to is None:
            raise InvalidInput({"valid_to": BAD_DATE})
        async with unit_of_work(request, who) as uow:
            row = await end_contract(uow, contract_id, valid_to)
    except InvalidInput as exc:
        return await _contracts_page(
            request,
            who,
            errors={key: next(iter(exc.errors.values()))},
            values={key: raw},
            status_code=422,
        )
    if _fragment(request):
        return await _contracts_page(request, who, added=row.id)
    url = request.url_for("settlement.contracts").include_query_params(added=row.id)
    return RedirectResponse(str(url), status_code=303)


async def _allocations_page(
    request: Request,
    who: Principal,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    added: int | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        page = await allocations_page(uow, today())
        proposals = await allocation_proposals(uow, today())
        statements = await own_statements(uow)
    added_line = next(
        (
            (a, d)
            for a in page.allocations
            for d in a.deliveries
            if added is not None and d.id == added
        ),
        None,
    )
    return render(
        request,
        _template(request, "allocations.html"),
        {
            "page": page,
            "errors": errors or {},
            "values": values or {},
            "added": added_line,
            "proposals": proposals,
            "statements": statements,
            "confirmed": request.query_params.get("confirmed", "")[:20],
        },
        status_code=status_code,
    )


async def allocations(request: Request) -> Response:
    who = require(request)
    added = request.query_params.get("added", "")
    return await _allocations_page(request, who, added=int(added) if added.isdecimal() else None)


async def delivery_add(request: Request) -> Response:
    who = require(request)
    data = await form(request)
    values = {name: field(data, name) for name in DELIVERY_FIELDS}
    try:
        draft = read_delivery_form(values)
        # The transaction rolls back on a refusal: nothing is saved.
        async with unit_of_work(request, who) as uow:
            saved = await record_delivery(uow, draft)
    except InvalidInput as exc:
        return await _allocations_page(
            request, who, errors=exc.errors, values=values, status_code=422
        )
    if _fragment(request):
        return await _allocations_page(request, who, added=saved.id)
    url = request.url_for("settlement.allocations").include_query_params(added=saved.id)
    return RedirectResponse(str(url), status_code=303)


def _run_quarter(raw: str) -> Quarter:
    # Default: the last quarter that is over, the one a penvoerder closes next.
    return parse_quarter(raw) if raw else quarter_of(today()).previous


def _closer(request: Request) -> Closer:
    """The closings under way in this server process (made on first use)."""
    state = request.app.state
    closer: Closer | None = getattr(state, "settlement_closer", None)
    if closer is None:
        closer = Closer(runtime(request))
        state.settlement_closer = closer
    return closer


def _count(n: int) -> str:
    return format_decimal(n, locale=current_locale.get())


def _progress(job: CloseJob) -> dict[str, object]:
    return {
        "job": job,
        "focus": False,
        "phase_text": PHASE_TEXT.get(job.phase, ""),
        "count_text": count_text(job.phase, job.done, job.total, _count),
    }


async def _run_page(
    request: Request,
    who: Principal,
    raw: str,
    *,
    error: str | None = None,
    status_code: int = 200,
    announce: str | None = None,
    closed_announce: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    chosen: Quarter | None = None
    page = None
    job: CloseJob | None = None
    close_error: str | None = None
    statements: list[tuple[int, str]] = []
    try:
        chosen = _run_quarter(raw)
    except InvalidQuarter as exc:
        error, status_code = exc.message, 400
    if chosen is not None:
        # Closing here: its progress from memory, with the counts.
        job = _closer(request).running(chosen.code, who)
    if job is None:
        # Only reads: on SQLite a closing in another process holds the write lock meanwhile.
        async with runtime(request).read_only(who) as uow:
            if chosen is None:
                await check_finance_access(uow)
            else:
                closing = await closing_state(uow, chosen)
                # Closing elsewhere: its progress from the database, never the preview.
                job, close_error = closing.running, closing.error
                if job is None:
                    page = await run_page(uow, chosen, today())
                    if page.run is not None:
                        statements = await statement_providers(uow, chosen)
                        announce = announce or closed_announce
    context: dict[str, object] = {
        "page": page,
        "quarter": chosen,
        "raw": raw,
        "error": error,
        "close_error": close_error,
        "statements": statements,
        "announce": announce,
        "job": None,
    }
    if job is not None:
        context.update(_progress(job))
    return render(
        request,
        _template(request, "run.html"),
        context,
        status_code=status_code,
        headers=headers,
    )


async def run(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    return await _run_page(request, who, request.query_params.get("q", "").strip())


async def run_close(request: Request) -> Response:
    """The penvoerder's button: check at once, then close in the background (or watch the
    closing already under way, in whichever process)."""
    who = require(request, StaffRole.FINANCE)
    raw = field(await form(request), "q")
    try:
        chosen = parse_quarter(raw)
        started = await _closer(request).start(who, chosen, today())
    except (InvalidQuarter, QuarterNotOver, LaterQuarterClosed) as exc:
        return await _run_page(request, who, raw, error=exc.message, status_code=exc.status_code)
    if _fragment(request):
        announce = PHASE_TEXT.get(started.phase) if isinstance(started, CloseJob) else None
        return await _run_page(request, who, chosen.code, announce=announce)
    url = request.url_for("settlement.run").include_query_params(q=chosen.code)
    return RedirectResponse(str(url), status_code=303)


async def run_progress(request: Request) -> Response:
    """Polled by the run page while a quarter closes: the progress (from memory when it closes
    in this process, else from the database), and at the end the run."""
    who = require(request, StaffRole.FINANCE)
    chosen = parse_quarter(request.path_params["quarter"])
    if not _fragment(request):
        url = request.url_for("settlement.run").include_query_params(q=chosen.code)
        return RedirectResponse(str(url), status_code=303)
    seen = request.query_params.get("seen", "")
    job = _closer(request).running(chosen.code, who)
    if job is None:
        async with runtime(request).read_only(who) as uow:
            job = (await closing_state(uow, chosen)).running
    if job is not None:
        context = _progress(job)
        context["announce"] = context["phase_text"] if job.phase != seen else None
        return render(request, "settlement/_partials/run_progress.html", context)
    # Over (or left unfinished by a process that stopped): the whole run section replaces the
    # progress. A failure is an alert in it; a closed quarter is said in the status region.
    return await _run_page(
        request,
        who,
        chosen.code,
        closed_announce=PHASE_TEXT[PHASE_DONE],
        headers={"HX-Retarget": "#kp-run", "HX-Reswap": "outerHTML"},
    )


def _statement_args(request: Request) -> tuple[Quarter, int]:
    return parse_quarter(request.path_params["quarter"]), request.path_params["provider_id"]


async def statement(request: Request) -> Response:
    """A provider's statement of a closed quarter as a web page, a page of lines at a time
    (``?page=2``); a page number that is no number is a page that does not exist."""
    who = require(request)
    chosen, provider_id = _statement_args(request)
    raw = request.query_params.get("page", "").strip() or "1"
    page = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
    async with unit_of_work(request, who) as uow:
        view = await provider_statement(uow, chosen, provider_id, page)
    return render(request, "settlement/statement.html", {"view": view})


async def statement_pdf_file(request: Request) -> Response:
    who = require(request)
    chosen, provider_id = _statement_args(request)
    async with unit_of_work(request, who) as uow:
        view = await provider_statement(uow, chosen, provider_id)
    return Response(
        statement_pdf(view),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{statement_pdf_name(view)}"'},
    )


async def statement_csv_file(request: Request) -> Response:
    who = require(request)
    chosen, provider_id = _statement_args(request)
    async with unit_of_work(request, who) as uow:
        data = await provider_statement_csv(uow, chosen, provider_id)
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": (
                f'attachment; filename="afrekening-{chosen.code}-{provider_id}.csv"'
            )
        },
    )


async def run_statement_csv(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    chosen = parse_quarter(request.path_params["quarter"])
    raw_provider = request.query_params.get("provider", "")
    provider_id = int(raw_provider) if raw_provider.isdecimal() else None
    async with unit_of_work(request, who) as uow:
        data = await run_statement(uow, chosen, provider_id)
    suffix = f"-{provider_id}" if provider_id is not None else ""
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": (f'attachment; filename="afrekening-{chosen.code}{suffix}.csv"')
        },
    )


async def run_declarations_zip(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    chosen = parse_quarter(request.path_params["quarter"])
    async with unit_of_work(request, who) as uow:
        data = await run_declarations(uow, chosen)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="JW323-{chosen.code}.zip"'},
    )


routes: list[BaseRoute] = [
    Route(
        "/settlement/run/{quarter}/jw323.zip",
        run_declarations_zip,
        name="settlement.run_declarations",
    ),
    Route("/settlement/run/{quarter}/progress", run_progress, name="settlement.run_progress"),
    Route(
        "/settlement/run/{quarter}/statement/{provider_id:int}",
        statement,
        name="settlement.statement",
    ),
    Route(
        "/settlement/run/{quarter}/statement/{provider_id:int}.pdf",
        statement_pdf_file,
        name="settlement.statement_pdf",
    ),
    Route(
        "/settlement/run/{quarter}/statement/{provider_id:int}.csv",
        statement_csv_file,
        name="settlement.statement_csv",
    ),
    Route("/settlement/run", run, name="settlement.run"),
    Route("/settlement/run", run_close, methods=["POST"], name="settlement.run_close"),
    Route(
        "/settlement/run/{quarter}/statement.csv",
        run_statement_csv,
        name="settlement.run_statement",
    ),
    Route("/settlement/allocations", allocations, name="settlement.allocations"),
    Route("/settlement/deliveries", delivery_add, methods=["POST"], name="settlement.delivery_add"),
    Route("/settlement/quarter", quarter, name="settlement.quarter"),
    Route("/settlement/contracts", contracts, name="settlement.contracts"),
    Route("/settlement/contracts", contract_add, methods=["POST"], name="settlement.contract_add"),
    Route(
        "/settlement/contracts/{contract_id:int}/end",
        contract_end,
        methods=["POST"],
        name="settlement.contract_end",
    ),
]
