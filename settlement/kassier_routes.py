"""HTTP routes of the kassier (thin: parse, call the service, render): bank accounts, the
kassier's ledger of a closed quarter and its payment batch as SEPA XML."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from keerpunt.platform.errors import InvalidInput, NotFound
from keerpunt.platform.i18n import today
from keerpunt.platform.models import StaffRole
from keerpunt.platform.principal import Principal
from keerpunt.platform.web import field, form, is_htmx, render, require, unit_of_work
from keerpunt.settlement.bank_accounts import (
    BANK_ACCOUNT_FIELDS,
    bank_accounts_page,
    record_bank_account,
)
from keerpunt.settlement.kassier_run import kassier_page, kassier_quarters, payment_file
from keerpunt.settlement.rules import InvalidQuarter, Quarter, parse_quarter


def _fragment(request: Request) -> bool:
    # A history restore asks for the whole page even though it comes from htmx.
    return is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"


def _quarter(request: Request) -> Quarter:
    try:
        return parse_quarter(request.path_params["quarter"])
    except InvalidQuarter:
        raise NotFound() from None


async def kassier_index(request: Request) -> Response:
    who = require(request)
    async with unit_of_work(request, who) as uow:
        quarters = await kassier_quarters(uow)
    return render(request, "settlement/kassier_index.html", {"quarters": quarters})


async def kassier(request: Request) -> Response:
    who = require(request)
    chosen = _quarter(request)
    async with unit_of_work(request, who) as uow:
        page = await kassier_page(uow, chosen, request.query_params.get("date", "").strip())
    return render(
        request,
        "settlement/kassier.html",
        {"page": page, "raw_date": request.query_params.get("date", "")},
        status_code=400 if page.date_error else 200,
    )


async def kassier_payments(request: Request) -> Response:
    who = require(request)
    chosen = _quarter(request)
    async with unit_of_work(request, who) as uow:
        batch = await payment_file(
            uow,
            chosen,
            request.path_params["kassier_id"],
            request.query_params.get("date", "").strip(),
        )
    return Response(
        batch.data,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{batch.filename}"'},
    )


async def _bank_page(
    request: Request,
    who: Principal,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    added: int | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        page = await bank_accounts_page(uow, today())
    added_account = next(
        (
            (o, a)
            for o in page.organisations
            for a in o.history
            if added is not None and a.id == added
        ),
        None,
    )
    template = "bank_accounts.html"
    return render(
        request,
        f"settlement/_partials/{template}" if _fragment(request) else f"settlement/{template}",
        {"page": page, "errors": errors or {}, "values": values or {}, "added": added_account},
        status_code=status_code,
    )


async def bank_accounts(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    added = request.query_params.get("added", "")
    return await _bank_page(request, who, added=int(added) if added.isdecimal() else None)


async def bank_account_add(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    data = await form(request)
    values = {name: field(data, name) for name in BANK_ACCOUNT_FIELDS}
    try:
        # The transaction rolls back on bad input: nothing is saved.
        async with unit_of_work(request, who) as uow:
            saved = await record_bank_account(uow, values)
    except InvalidInput as exc:
        return await _bank_page(request, who, errors=exc.errors, values=values, status_code=422)
    if _fragment(request):
        return await _bank_page(request, who, added=saved.id)
    url = request.url_for("settlement.bank_accounts").include_query_params(added=saved.id)
    return RedirectResponse(str(url), status_code=303)


routes: list[BaseRoute] = [
    Route("/settlement/kassier", kassier_index, name="settlement.kassier_index"),
    Route("/settlement/kassier/{quarter}", kassier, name="settlement.kassier"),
    Route(
        "/settlement/kassier/{quarter}/{kassier_id:int}/betaalopdracht.xml",
        kassier_payments,
        name="settlement.kassier_payments",
    ),
    Route("/settlement/bank-accounts", bank_accounts, name="settlement.bank_accounts"),
    Route(
        "/settlement/bank-accounts",
        bank_account_add,
        methods=["POST"],
        name="settlement.bank_account_add",
    ),
]
