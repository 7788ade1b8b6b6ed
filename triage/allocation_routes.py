"""Pages of the manager zorgbemiddeling (RET allocation, seed 000); thin: parse, call
:mod:`keerpunt.triage.allocation_service`, render. Plain forms: they work without script."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keerpunt.platform.errors import InvalidInput, NotFound, StaleVersion
from keerpunt.platform.i18n import AMSTERDAM, gettext, local_date
from keerpunt.platform.principal import Principal
from keerpunt.platform.web import date_field, field, form, redirect, render, require, unit_of_work
from keerpunt.triage import allocation_service as svc
from keerpunt.triage.allocation import (
    DOMAIN_LABELS,
    FACTOR_LABELS,
    LADDER_LABELS,
    TRIGGER_RULES,
    Domain,
    HalfYear,
    TopOfLadder,
    TriggerNotDue,
)

MANAGER = svc.MANAGER


def _vocab() -> dict[str, Any]:
    return {
        "domains": [(d.value, DOMAIN_LABELS[d]) for d in Domain],
        "domain_labels": DOMAIN_LABELS,
        "triggers": [(k.value, r.label, r.since_label) for k, r in TRIGGER_RULES.items()],
        "factor_labels": FACTOR_LABELS,
        "ladder": LADDER_LABELS,
    }


def _values(data: FormData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in data:
        if key == "csrf_token":
            continue
        items = [v for v in data.getlist(key) if isinstance(v, str)]
        out[key] = items if len(items) > 1 or key in {"expertise", "milieus"} else items[0]
    return out


def _confirmed(data: FormData) -> bool:
    return field(data, "confirm_identifying") == "yes"


def _errors(exc: InvalidInput) -> dict[str, str]:
    """The messages per field; a warning on identifying data names what was found."""
    errors = dict(exc.errors)
    if isinstance(exc, svc.IdentifyingText):
        for name, kinds in exc.kinds.items():
            what = ", ".join(gettext(k) for k in kinds)
            errors[name] = gettext(errors[name]) % {"what": what}
    return errors


def _id(data: FormData, name: str) -> int | None:
    raw = field(data, name)
    return int(raw) if raw.isdigit() and len(raw) < 12 else None


# -- home: the work list -----------------------------------------------------------------------


async def home(request: Request) -> Response:
    who = require(request, MANAGER)
    async with unit_of_work(request, who) as uow:
        work = await svc.worklist(uow)
    return render(request, "triage/allocation_home.html", {"work": work, **_vocab()})


# -- the provider list -----------------------------------------------------------------------


async def _providers_page(
    request: Request,
    who: Principal,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    editing: int | None = None,
    saved: str | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        rows = await svc.provider_list(uow)
        choices = await svc.provider_choices(uow)
    return render(
        request,
        "triage/allocation_providers.html",
        {
            "rows": rows,
            "choices": choices,
            "errors": errors or {},
            "values": values or {},
            "editing": editing,
            "saved": saved,
            "message": message,
            "default_lot": svc.DEFAULT_LOT,
            **_vocab(),
        },
        status_code=status_code,
    )


async def providers(request: Request) -> Response:
    who = require(request, MANAGER)
    saved = request.query_params.get("saved")
    return await _providers_page(request, who, saved=saved)


async def provider_save(request: Request) -> Response:
    who = require(request, MANAGER)
    data = await form(request)
    version = field(data, "version")
    org = _id(data, "organisation_id")
    draft = svc.ProviderDraft(
        organisation_id=org or 0,
        lot=field(data, "lot"),
        domain=field(data, "domain"),
        position=field(data, "position"),
        expertise=field(data, "expertise"),
        min_age=field(data, "min_age"),
        max_age=field(data, "max_age"),
        locations=field(data, "locations"),
        milieus=tuple(v for v in data.getlist("milieus") if isinstance(v, str)),
        contract_active=data.get("contract_active") == "yes",
        version=int(version) if version.isdigit() else None,
    )
    editing = _id(data, "row_id")
    try:
        async with unit_of_work(request, who) as uow:
            row = await svc.save_provider(uow, draft)
            saved_id = row.id
    except InvalidInput as exc:
        return await _providers_page(
            request,
            who,
            errors=exc.errors,
            values=_values(data),
            editing=editing,
            status_code=422,
        )
    except StaleVersion as exc:
        return await _providers_page(
            request,
            who,
            values=_values(data),
            editing=editing,
            message=gettext(exc.message),
            status_code=409,
        )
    url = str(request.url_for("triage.allocation_providers"))
    return _see_other(f"{url}?saved={saved_id}#provider-{saved_id}")


def _see_other(url: str) -> Response:
    return Response(status_code=303, headers={"Location": url})


# -- a new request (the trigger fired) ----------------------------------------------------------


async def _request_page(
    request: Request,
    who: Principal,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    message: str | None = None,
    status_code: int = 200,
    request_id: int | None = None,
    case_pseudonym: str = "",
) -> Response:
    values = values or {}
    async with unit_of_work(request, who) as uow:
        lots = await svc.lots(uow)
        rows = await svc.provider_list(uow)
    lot = values.get("lot") or lots[0]
    in_lot = [r for r in rows if r.lot == lot]
    expertise = sorted({e for r in in_lot for e in r.expertise})
    return render(
        request,
        "triage/allocation_request.html",
        {
            "lots": lots,
            "lot": lot,
            "providers": in_lot,
            "expertise_choices": expertise,
            "errors": errors or {},
            "values": values,
            "message": message,
            "today": dt.datetime.now(AMSTERDAM).date(),
            "request_id": request_id,
            "case_pseudonym": case_pseudonym,
            **_vocab(),
        },
        status_code=status_code,
    )


async def request_form(request: Request) -> Response:
    who = require(request, MANAGER)
    values = {"pseudonym": request.query_params.get("case", "")}
    return await _request_page(request, who, values=values)


def _request_draft(data: FormData, errors: dict[str, str]) -> svc.RequestDraft:
    since = date_field(data, "since", errors)
    past: dict[str, set[int]] = {"continue": set(), "not_again": set()}
    for key in data:
        if key.startswith("past-") and key[5:].isdigit():
            choice = field(data, key)
            if choice in past:
                past[choice].add(int(key[5:]))
    return svc.RequestDraft(
        lot=field(data, "lot"),
        trigger=field(data, "trigger"),
        since=since,
        domain=field(data, "domain"),
        age=field(data, "age"),
        location=field(data, "location"),
        milieu=field(data, "milieu"),
        expertise=frozenset(v for v in data.getlist("expertise") if isinstance(v, str)),
        continue_ids=frozenset(past["continue"]),
        not_again_ids=frozenset(past["not_again"]),
    )


def _too_early(exc: TriggerNotDue) -> dict[str, str]:
    fires_on = exc.params["fires_on"]
    assert isinstance(fires_on, dt.date)
    return {"since": gettext(exc.message) % {"fires_on": local_date(fires_on)}}


async def request_submit(request: Request) -> Response:
    who = require(request, MANAGER)
    data = await form(request)
    errors: dict[str, str] = {}
    draft = _request_draft(data, errors)
    values = _values(data)
    try:
        if errors:
            raise InvalidInput(errors)
        async with unit_of_work(request, who) as uow:
            case_id = await svc.case_for_pseudonym(uow, field(data, "pseudonym"))
            req = await svc.request_allocation(uow, case_id, draft)
            request_id = req.id
    except InvalidInput as exc:
        return await _request_page(
            request, who, errors={**errors, **exc.errors}, values=values, status_code=422
        )
    except TriggerNotDue as exc:
        return await _request_page(
            request, who, errors=_too_early(exc), values=values, status_code=422
        )
    return redirect(request, "triage.allocation_proposal", request_id=request_id)


async def needs_form(request: Request) -> Response:
    who = require(request, MANAGER)
    rid = request.path_params["request_id"]
    async with unit_of_work(request, who) as uow:
        pseudonym, values = await svc.request_draft(uow, rid)
    return await _request_page(
        request, who, values=values, request_id=rid, case_pseudonym=pseudonym
    )


async def needs_save(request: Request) -> Response:
    who = require(request, MANAGER)
    rid = request.path_params["request_id"]
    data = await form(request)
    errors: dict[str, str] = {}
    draft = _request_draft(data, errors)
    values = _values(data)
    try:
        if errors:
            raise InvalidInput(errors)
        async with unit_of_work(request, who) as uow:
            await svc.complete_request(uow, rid, draft)
    except (InvalidInput, TriggerNotDue) as exc:
        async with unit_of_work(request, who) as uow:
            pseudonym, _saved = await svc.request_draft(uow, rid)
        found = exc.errors if isinstance(exc, InvalidInput) else _too_early(exc)
        return await _request_page(
            request,
            who,
            errors={**errors, **found},
            values=values,
            request_id=rid,
            case_pseudonym=pseudonym,
            status_code=422,
        )
    return redirect(request, "triage.allocation_proposal", request_id=rid)


# -- the proposal and the decision -------------------------------------------------------------


async def _proposal_page(
    request: Request,
    who: Principal,
    request_id: int,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    try:
        async with unit_of_work(request, who) as uow:
            view = await svc.proposal_view(uow, request_id)
    except svc.NeedsIncomplete:
        return redirect(request, "triage.allocation_needs", request_id=request_id)
    if view.allocation_id is not None and status_code == 200:
        return redirect(request, "triage.allocation_show", allocation_id=view.allocation_id)
    return render(
        request,
        "triage/allocation_proposal.html",
        {
            "p": view,
            "e": view.explanation,
            "errors": errors or {},
            "values": values or {},
            "message": message,
            **_vocab(),
        },
        status_code=status_code,
    )


async def proposal(request: Request) -> Response:
    who = require(request, MANAGER)
    return await _proposal_page(request, who, request.path_params["request_id"])


async def decide(request: Request) -> Response:
    who = require(request, MANAGER)
    rid = request.path_params["request_id"]
    data = await form(request)
    turn = field(data, "expected_turn")
    seen = field(data, "seen_proposal")
    choice = svc.Choice(
        provider_id=_id(data, "provider_id") or 0,
        reason=field(data, "reason"),
        expected_turn=int(turn) if turn.isdigit() else -1,
        second_provider_id=_id(data, "second_provider_id"),
        share_percent=field(data, "share_percent"),
        seen_proposal_id=int(seen) if seen.isdigit() else None,
        confirmed=_confirmed(data),
    )
    values = _values(data)
    try:
        async with unit_of_work(request, who) as uow:
            allocation = await svc.decide_allocation(uow, rid, choice)
            allocation_id = allocation.id
    except svc.TurnMoved as exc:
        values.pop("provider_id", None)  # the proposal changed: let them choose again
        return await _proposal_page(
            request, who, rid, values=values, message=gettext(exc.message), status_code=409
        )
    except InvalidInput as exc:
        return await _proposal_page(
            request, who, rid, errors=_errors(exc), values=values, status_code=422
        )
    return redirect(request, "triage.allocation_show", allocation_id=allocation_id)


# -- an allocation and its disputes ------------------------------------------------------------


async def _show_page(
    request: Request,
    who: Principal,
    allocation_id: int,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        view = await svc.allocation_view(uow, allocation_id)
    return render(
        request,
        "triage/allocation_show.html",
        {
            "a": view,
            "e": view.explanation,
            "errors": errors or {},
            "values": values or {},
            "message": message,
            **_vocab(),
        },
        status_code=status_code,
    )


async def show(request: Request) -> Response:
    who = require(request, MANAGER)
    return await _show_page(request, who, request.path_params["allocation_id"])


async def dispute_open(request: Request) -> Response:
    who = require(request, MANAGER)
    aid = request.path_params["allocation_id"]
    data = await form(request)
    try:
        async with unit_of_work(request, who) as uow:
            await svc.open_dispute(
                uow,
                aid,
                _id(data, "provider_id") or 0,
                field(data, "spoke_with"),
                field(data, "note"),
                confirmed=_confirmed(data),
            )
    except InvalidInput as exc:
        return await _show_page(
            request, who, aid, errors=_errors(exc), values=_values(data), status_code=422
        )
    return redirect(request, "triage.allocation_show", allocation_id=aid)


async def dispute_step(request: Request) -> Response:
    who = require(request, MANAGER)
    did = request.path_params["dispute_id"]
    action = request.path_params["action"]
    if action not in {"escalate", "resolve"}:
        raise NotFound()
    data = await form(request)
    aid = _id(data, "allocation_id") or 0
    step = svc.escalate_dispute if action == "escalate" else svc.resolve_dispute
    try:
        async with unit_of_work(request, who) as uow:
            dispute = await step(
                uow,
                did,
                field(data, "spoke_with"),
                field(data, "note"),
                confirmed=_confirmed(data),
            )
            aid = dispute.allocation_id
    except InvalidInput as exc:
        return await _show_page(
            request, who, aid, errors=_errors(exc), values=_values(data), status_code=422
        )
    except TopOfLadder as exc:
        return await _show_page(
            request, who, aid, values=_values(data), message=gettext(exc.message), status_code=409
        )
    return redirect(request, "triage.allocation_show", allocation_id=aid)


# -- the half-year overview ---------------------------------------------------------------------


async def overview(request: Request) -> Response:
    who = require(request, MANAGER, "coordinator")
    raw = request.query_params.get("h", "")
    today = dt.datetime.now(AMSTERDAM).date()
    try:
        half = HalfYear.parse(raw) if raw else HalfYear.of(today)
    except ValueError:
        half = HalfYear.of(today)
    async with unit_of_work(request, who) as uow:
        view = await svc.overview(uow, half)
    return render(
        request,
        "triage/allocation_overview.html",
        {"o": view, "current": HalfYear.of(today), **_vocab()},
    )


routes: list[BaseRoute] = [
    Route("/allocation", home, name="triage.allocation_home"),
    Route("/allocation/providers", providers, name="triage.allocation_providers"),
    Route(
        "/allocation/providers",
        provider_save,
        methods=["POST"],
        name="triage.allocation_provider_save",
    ),
    Route("/allocation/requests/new", request_form, name="triage.allocation_request"),
    Route(
        "/allocation/requests/new",
        request_submit,
        methods=["POST"],
        name="triage.allocation_request_submit",
    ),
    Route(
        "/allocation/requests/{request_id:int}",
        proposal,
        name="triage.allocation_proposal",
    ),
    Route(
        "/allocation/requests/{request_id:int}/needs",
        needs_form,
        name="triage.allocation_needs",
    ),
    Route(
        "/allocation/requests/{request_id:int}/needs",
        needs_save,
        methods=["POST"],
        name="triage.allocation_needs_save",
    ),
    Route(
        "/allocation/requests/{request_id:int}/decide",
        decide,
        methods=["POST"],
        name="triage.allocation_decide",
    ),
    Route("/allocation/overview", overview, name="triage.allocation_overview"),
    Route("/allocation/{allocation_id:int}", show, name="triage.allocation_show"),
    Route(
        "/allocation/{allocation_id:int}/disputes",
        dispute_open,
        methods=["POST"],
        name="triage.allocation_dispute_open",
    ),
    Route(
        "/allocation/disputes/{dispute_id:int}/{action}",
        dispute_step,
        methods=["POST"],
        name="triage.allocation_dispute_step",
    ),
]
