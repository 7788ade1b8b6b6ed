"""The JSON API ``/api/v1`` for a provider's own system, and the page where its finance staff
manage the organisation's API token.

The OpenAPI 3.1 document (:mod:`keerpunt.settlement.openapi`) is the one source of truth for
the API's shape: it is served at ``/api/v1/openapi.json`` and request bodies are checked
against its schemas. What the values mean is checked by the same domain functions as the
browser's forms (:mod:`keerpunt.settlement.exchange`).

Authentication is ``Authorization: Bearer kp_…`` only. The security middleware never reads
the login cookie under ``/api/``, so a logged-in browser cannot reach the API with its cookie
(and CSRF, which protects cookie requests, has nothing to guard here). Errors are RFC 9457
``application/problem+json`` in the language of ``Accept-Language``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from keerpunt.platform.errors import DomainError, InvalidInput, NotAllowed, NotFound
from keerpunt.platform.i18n import N_, gettext, today
from keerpunt.platform.models import StaffRole
from keerpunt.platform.principal import Principal
from keerpunt.platform.web import field, form, redirect, render, require, runtime, unit_of_work
from keerpunt.settlement.api_tokens import (
    SCOPE_LABELS,
    ApiClient,
    NewToken,
    Scope,
    TokenRefused,
    authenticate,
    create_token,
    revoke_token,
    token_page,
)
from keerpunt.settlement.exchange import (
    ApiAllocation,
    ApiDelivery,
    BatchRefused,
    LineIn,
    LineOutcome,
    api_allocation,
    api_allocations,
    api_deliveries,
    parse_period,
    record_deliveries,
)
from keerpunt.settlement.openapi import OPENAPI, PROBLEM, SCHEMAS, shape_errors
from keerpunt.settlement.rules import BAD_DATE, parse_date

__all__ = ["routes"]

MAX_BODY_BYTES = 1024 * 1024

# ---- problems and the edge ----


class ApiProblem(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        *,
        detail: str | None = None,
        errors: list[dict[str, object]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status, self.slug, self.title = status, slug, title
        self.detail, self.errors, self.headers = detail, errors, dict(headers or {})

    def response(self) -> Response:
        body: dict[str, object] = {
            "type": f"urn:keerpunt:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM, headers=self.headers)


_CHALLENGE = 'Bearer realm="keerpunt"'


def _from_domain(exc: DomainError) -> ApiProblem:
    if isinstance(exc, TokenRefused):
        return ApiProblem(
            401,
            "unauthorized",
            gettext(exc.message),
            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
        )
    if isinstance(exc, BatchRefused):
        errors: list[dict[str, object]] = [
            {"index": p.index, "reference": p.reference, "field": p.field, "code": p.code,
             "detail": p.message}
            for p in exc.problems
        ]  # fmt: skip
        return ApiProblem(422, "rejected-lines", gettext(exc.message), errors=errors)
    if isinstance(exc, NotFound):
        return ApiProblem(404, "not-found", gettext(exc.message))
    if isinstance(exc, NotAllowed):
        return ApiProblem(403, "forbidden", gettext(exc.message))
    if isinstance(exc, InvalidInput):
        detail = " ".join(gettext(m) for m in exc.errors.values())
        return ApiProblem(400, "invalid-parameter", gettext(exc.message), detail=detail)
    return ApiProblem(exc.status_code, "error", gettext(exc.message))


ApiHandler = Callable[[Request, ApiClient], Awaitable[Response]]


def endpoint(scope: Scope) -> Callable[[ApiHandler], Callable[[Request], Awaitable[Response]]]:
    """Authenticate the bearer token, require ``scope``, and turn every refusal into a
    problem document (never the HTML error page of the browser)."""

    def wrap(handler: ApiHandler) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                header = request.headers.get("authorization", "")
                kind, _, bearer = header.partition(" ")
                if kind.lower() != "bearer" or not bearer.strip():
                    raise ApiProblem(
                        401,
                        "unauthorized",
                        gettext(TokenRefused.message),
                        headers={"WWW-Authenticate": _CHALLENGE},
                    )
                rt = runtime(request)
                async with rt.sessionmaker() as db, db.begin():
                    client = await authenticate(
                        db, bearer.strip(), request.scope["state"].get("locale", "nl")
                    )
                if scope.value not in client.scopes:
                    raise ApiProblem(
                        403,
                        "insufficient-scope",
                        gettext(N_("Deze API-sleutel heeft het recht %(scope)s niet."))
                        % {"scope": scope.value},
                        headers={
                            "WWW-Authenticate": (
                                f'{_CHALLENGE}, error="insufficient_scope", scope="{scope.value}"'
                            )
                        },
                    )
                return await handler(request, client)
            except ApiProblem as problem:
                return problem.response()
            except DomainError as exc:
                return _from_domain(exc).response()
            except IntegrityError:
                # Two posts with the same new reference at once: the unique key let one in.
                return ApiProblem(
                    409,
                    "conflict",
                    gettext(
                        N_(
                            "Er kwam tegelijk een andere zending met dezelfde referentie binnen. "
                            "Er is niets opgeslagen. Stuur de zending opnieuw."
                        )
                    ),
                ).response()

        return handle

    return wrap


def _only_query(request: Request, *allowed: str) -> None:
    """Refuse query parameters the document does not name, as the body refuses unknown
    fields: a typo should not silently mean "no filter"."""
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise ApiProblem(
            400,
            "unknown-parameter",
            gettext(N_("Deze parameter kennen we niet: %(name)s.")) % {"name": unknown[0]},
        )


def _allocation_json(a: ApiAllocation) -> dict[str, object]:
    return {
        "number": a.number,
        "variant": a.variant,
        "product_category": a.product_category,
        "product_code": a.product_code,
        "volume": a.volume,
        "unit": a.unit,
        "frequency": a.frequency,
        "budget_cents": a.budget_cents,
        "start": a.start.isoformat(),
        "end": a.end.isoformat(),
    }


@endpoint(Scope.ALLOCATIONS_READ)
async def allocations(request: Request, client: ApiClient) -> Response:
    _only_query(request)
    async with unit_of_work(request, client.principal) as uow:
        found = await api_allocations(uow, today())
    return JSONResponse({"allocations": [_allocation_json(a) for a in found]})


@endpoint(Scope.ALLOCATIONS_READ)
async def allocation(request: Request, client: ApiClient) -> Response:
    _only_query(request)
    async with unit_of_work(request, client.principal) as uow:
        found = await api_allocation(uow, request.path_params["number"], today())
    return JSONResponse(_allocation_json(found))


def _delivery_json(d: ApiDelivery) -> dict[str, object]:
    return {
        "id": d.id,
        "reference": d.reference,
        "allocation_number": d.allocation_number,
        "product_code": d.product_code,
        "start": d.start.isoformat(),
        "end": d.end.isoformat(),
        "volume": d.volume,
        "status": d.status,
        "unit": d.unit,
        "tariff_cents": d.tariff_cents,
        "amount_cents": d.amount_cents,
        "reason_code": d.reason_code,
        "reason": d.reason,
    }


@endpoint(Scope.DELIVERIES_READ)
async def deliveries(request: Request, client: ApiClient) -> Response:
    _only_query(request, "period")
    period = parse_period(request.query_params.get("period", "").strip())
    async with unit_of_work(request, client.principal) as uow:
        found = await api_deliveries(uow, period)
    return JSONResponse(
        {
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "deliveries": [_delivery_json(d) for d in found],
        }
    )


def _recorded_json(o: LineOutcome) -> dict[str, object]:
    return {
        "reference": o.reference,
        "id": o.delivery_id,
        "created": o.created,
        "allocation_number": o.allocation_number,
        "product_code": o.product_code,
        "start": o.start.isoformat(),
        "end": o.end.isoformat(),
        "volume": o.volume,
    }


async def _json_body(request: Request) -> object:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiProblem(
            415,
            "unsupported-media-type",
            gettext(N_("Stuur de gegevens als JSON (Content-Type: application/json).")),
        )
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiProblem(413, "too-large", gettext(N_("De zending is te groot.")))
    try:
        return json.loads(body)
    except ValueError:
        raise ApiProblem(
            400, "invalid-json", gettext(N_("De zending is geen geldige JSON."))
        ) from None


def _line_of(path: str) -> int | None:
    m = re.match(r"deliveries\[(\d+)\]", path)
    return int(m[1]) if m else None


@endpoint(Scope.DELIVERIES_WRITE)
async def post_deliveries(request: Request, client: ApiClient) -> Response:
    _only_query(request)
    data = await _json_body(request)
    shape = shape_errors(data, SCHEMAS["DeliveryBatch"])
    if shape:
        items = data.get("deliveries") if isinstance(data, dict) else None

        def reference(index: int | None) -> object:
            if index is None or not isinstance(items, list) or not isinstance(items[index], dict):
                return None
            ref = items[index].get("reference")
            return ref if isinstance(ref, str) else None

        raise ApiProblem(
            422,
            "invalid-request",
            gettext(N_("Het verzoek heeft niet de goede vorm. Er is niets opgeslagen.")),
            errors=[
                {"index": _line_of(where), "reference": reference(_line_of(where)),
                 "field": where, "code": code, "detail": gettext(message)}
                for where, code, message in shape
            ],
        )  # fmt: skip
    assert isinstance(data, dict)
    lines = [
        LineIn(
            reference=x["reference"],
            allocation_number=x["allocation_number"],
            product_code=x["product_code"],
            start=x["start"],
            end=x["end"],
            volume=x["volume"],
        )
        for x in data["deliveries"]
    ]
    async with unit_of_work(request, client.principal) as uow:
        outcomes = await record_deliveries(uow, lines)
    created = any(o.created for o in outcomes)
    return JSONResponse(
        {"deliveries": [_recorded_json(o) for o in outcomes]}, status_code=201 if created else 200
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


_ALLOWED = {
    "/api/v1/allocations": "GET",
    "/api/v1/deliveries": "GET, POST",
    "/api/v1/openapi.json": "GET",
}


async def fallback(request: Request) -> Response:
    """Anything else under /api/v1: a problem document, not the browser's HTML page."""
    path = request.url.path.rstrip("/")
    allow = _ALLOWED.get(path) or ("GET" if path.startswith("/api/v1/allocations/") else None)
    if allow:
        return ApiProblem(
            405,
            "method-not-allowed",
            gettext(N_("Deze methode kan hier niet.")),
            headers={"Allow": allow},
        ).response()
    return ApiProblem(404, "not-found", gettext(NotFound.message)).response()


# ---- the token page (browser, cookie session, CSRF by the middleware) ----


async def _token_page(
    request: Request,
    who: Principal,
    *,
    new: NewToken | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, object] | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        page = await token_page(uow)
    return render(
        request,
        "settlement/api_token.html",
        {
            "page": page,
            "new": new,
            "scopes": [(s.value, SCOPE_LABELS[s]) for s in Scope],
            "errors": errors or {},
            "values": values or {"scopes": [s.value for s in Scope]},
        },
        status_code=status_code,
    )


async def token_show(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    return await _token_page(request, who)


async def token_create(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    data = await form(request)
    scopes = [s for s in data.getlist("scopes") if isinstance(s, str)]
    raw_day = field(data, "last_day")
    replace = field(data, "replace") == "yes"
    values: dict[str, object] = {"scopes": scopes, "last_day": raw_day}
    last_day = parse_date(raw_day) if raw_day else None
    try:
        if raw_day and last_day is None:
            raise InvalidInput({"last_day": BAD_DATE})
        async with unit_of_work(request, who) as uow:
            new = await create_token(uow, scopes, last_day, replace=replace, today=today())
    except InvalidInput as exc:
        return await _token_page(request, who, errors=exc.errors, values=values, status_code=422)
    # The secret is in this one response only: never in a URL, a redirect or the database.
    return await _token_page(request, who, new=new, status_code=201)


async def token_revoke(request: Request) -> Response:
    who = require(request, StaffRole.FINANCE)
    async with unit_of_work(request, who) as uow:
        await revoke_token(uow, request.path_params["token_id"])
    return redirect(request, "settlement.api_token")


routes: list[BaseRoute] = [
    Route("/api/v1/openapi.json", openapi, name="api.openapi"),
    Route("/api/v1/allocations", allocations, name="api.allocations"),
    Route("/api/v1/allocations/{number}", allocation, name="api.allocation"),
    Route("/api/v1/deliveries", deliveries, name="api.deliveries"),
    Route("/api/v1/deliveries", post_deliveries, methods=["POST"], name="api.deliveries_post"),
    Route(
        "/api/v1/{rest:path}",
        fallback,
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        name="api.fallback",
    ),
    Route("/settlement/api-token", token_show, name="settlement.api_token"),
    Route(
        "/settlement/api-token", token_create, methods=["POST"], name="settlement.api_token_create"
    ),
    Route(
        "/settlement/api-token/{token_id:int}/revoke",
        token_revoke,
        methods=["POST"],
        name="settlement.api_token_revoke",
    ),
]
