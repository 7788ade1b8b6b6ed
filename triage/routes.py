"""HTTP and websocket routes of triage (thin: parse, call the service, render)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from keerpunt.consent import service as consent
from keerpunt.platform import auth
from keerpunt.platform.errors import DomainError, InvalidInput, NotFound, StaleVersion
from keerpunt.platform.i18n import AMSTERDAM, N_, current_locale, gettext
from keerpunt.platform.models import Organisation, OrgKind
from keerpunt.platform.principal import Principal
from keerpunt.platform.realtime import Hub
from keerpunt.platform.web import (
    current,
    date_field,
    field,
    form,
    is_htmx,
    redirect,
    render,
    require,
    runtime,
    unit_of_work,
)
from keerpunt.triage import arrangement, report, service
from keerpunt.triage import plan as plan_step5
from keerpunt.triage.realtime import TriageRenderer
from keerpunt.triage.vocab import VOCAB


def register_realtime(hub: Hub, jinja: jinja2.Environment) -> None:
    hub.register("triage", TriageRenderer(jinja))


async def cases(request: Request) -> Response:
    who = require(request)
    async with unit_of_work(request, who) as uow:
        views = await service.list_cases(uow)
    return render(request, "triage/cases.html", {"cases": views, "vocab": VOCAB})


async def _municipalities(request: Request) -> list[tuple[int, str]]:
    from sqlalchemy import select

    async with runtime(request).sessionmaker() as db:
        rows = await db.scalars(
            select(Organisation)
            .where(Organisation.kind == OrgKind.MUNICIPALITY)
            .order_by(Organisation.name)
        )
        return [(o.id, o.name) for o in rows]


async def register_form(request: Request) -> Response:
    require(request, "registrar")
    return render(
        request,
        "triage/register.html",
        {
            "questions": service.ENTRY_QUESTIONS,
            "municipalities": await _municipalities(request),
            "values": {},
            "errors": {},
            "reasons": [],
        },
    )


async def register_submit(request: Request) -> Response:
    who = require(request, "registrar")
    data = await form(request)
    values = {k: v for k, v in data.items() if isinstance(v, str) and k != "csrf_token"}
    errors: dict[str, str] = {}
    answers = {key: data.get(key) == "yes" for key, _q, _w in service.ENTRY_QUESTIONS}
    muni = field(data, "municipality_id")
    reg = service.Registration(
        answers=answers,
        youth_name=field(data, "youth_name"),
        birth_date=date_field(data, "birth_date", errors),
        bsn=field(data, "bsn"),
        situation=field(data, "situation"),
        parent_names=(field(data, "parent_1"), field(data, "parent_2")),
        jim_name=field(data, "jim_name"),
        municipality_id=int(muni) if muni.isdigit() else None,
    )
    context = {
        "questions": service.ENTRY_QUESTIONS,
        "municipalities": await _municipalities(request),
        "values": values,
        "errors": errors,
        "reasons": [],
    }
    try:
        if errors:
            raise InvalidInput(errors)
        async with unit_of_work(request, who) as uow:
            case = await service.register_case(uow, reg)
    except service.EntryCheckFailed as exc:
        context["reasons"] = exc.reasons
        return render(request, "triage/register.html", context, status_code=422)
    except InvalidInput as exc:
        context["errors"] = exc.errors
        return render(request, "triage/register.html", context, status_code=422)
    return redirect(request, "triage.case", case_id=case.id)


async def case_page(request: Request) -> Response:
    who = require(request)
    return await _render_case(request, who, request.path_params["case_id"])


async def _render_case(
    request: Request,
    who: Principal,
    case_id: int,
    *,
    plan_errors: dict[str, str] | None = None,
    plan_values: Mapping[str, object] | None = None,
    status_code: int = 200,
) -> Response:
    if who.case_id is not None and who.case_id != case_id:
        raise NotFound()
    async with unit_of_work(request, who) as uow:
        view = await service.case_view(uow, case_id)
        consents = await consent.consent_overview_for(uow, case_id, view.level)
        invitations = await auth.invitations_for_case(uow.db, who, case_id)
        experts = await service.staff_choices(uow) if view.may_plan else []
    return render(
        request,
        "triage/case.html",
        {
            "case": view,
            "consents": consents,
            "invitations": invitations,
            "experts": experts,
            "vocab": VOCAB,
            "plan_errors": plan_errors or {},
            "plan_values": plan_values or {},
        },
        status_code=status_code,
    )


async def plan(request: Request) -> Response:
    who = require(request, "coordinator")
    case_id = request.path_params["case_id"]
    data = await form(request)
    experts = [int(v) for v in data.getlist("experts") if isinstance(v, str) and v.isdigit()]
    when = field(data, "scheduled_at")
    try:
        try:
            scheduled = dt.datetime.fromisoformat(when).replace(tzinfo=AMSTERDAM)
        except ValueError:
            raise InvalidInput({"scheduled_at": N_("Vul een datum en tijd in.")}) from None
        async with unit_of_work(request, who) as uow:
            session = await service.plan_session(
                uow, case_id, scheduled.astimezone(dt.UTC), experts
            )
    except InvalidInput as exc:
        values = {"scheduled_at": when, "experts": experts}
        return await _render_case(
            request, who, case_id, plan_errors=exc.errors, plan_values=values, status_code=422
        )
    return redirect(request, "triage.session", session_id=session.id)


async def session_page(request: Request) -> Response:
    who = require(request)
    async with unit_of_work(request, who) as uow:
        view = await service.session_view(uow, request.path_params["session_id"])
        # Steps 4 and 5 in the first paint too (live pushes keep them current afterwards).
        level = view.case.level
        a = await arrangement.arrangement_view(uow, view.id, level=level)
        p = await plan_step5.plan_view(uow, view.id, level=level)
    return render(request, "triage/session.html", {"s": view, "vocab": VOCAB, "a": a, "p": p})


async def _after_add(request: Request, session_id: int, template: str, **ctx: object) -> Response:
    if is_htmx(request):
        # The new item reaches everyone, the author included, through the websocket.
        return render(request, template, {"session_id": session_id, "vocab": VOCAB, **ctx})
    return redirect(request, "triage.session", session_id=session_id)


async def factor_add(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    try:
        async with unit_of_work(request, who) as uow:
            await service.add_factor(
                uow, sid, field(data, "life_area"), field(data, "kind"), field(data, "text")
            )
    except InvalidInput as exc:
        return render(
            request,
            "triage/_partials/factor_add.html",
            {"session_id": sid, "vocab": VOCAB, "errors": exc.errors, "values": dict(data)},
            status_code=422,
        )
    return await _after_add(request, sid, "triage/_partials/factor_add.html", errors={}, values={})


async def goal_add(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    try:
        async with unit_of_work(request, who) as uow:
            await service.add_goal(uow, sid, field(data, "text"))
    except InvalidInput as exc:
        return render(
            request,
            "triage/_partials/goal_add.html",
            {"session_id": sid, "errors": exc.errors, "values": dict(data)},
            status_code=422,
        )
    return await _after_add(request, sid, "triage/_partials/goal_add.html", errors={}, values={})


async def line_add(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    errors: dict[str, str] = {}
    start = date_field(data, "start_date", errors)
    provider = field(data, "provider_id")
    try:
        if errors:
            raise InvalidInput(errors)
        async with unit_of_work(request, who) as uow:
            await service.add_line(
                uow,
                sid,
                int(provider) if provider.isdigit() else 0,
                field(data, "product_code"),
                field(data, "help_form"),
                field(data, "hours"),
                start,
            )
    except InvalidInput as exc:
        async with unit_of_work(request, who) as uow:
            view = await service.session_view(uow, sid)
        return render(
            request,
            "triage/_partials/line_add.html",
            {"s": view, "vocab": VOCAB, "errors": exc.errors, "values": dict(data)},
            status_code=422,
        )
    async with unit_of_work(request, who) as uow:
        view = await service.session_view(uow, sid)
    return await _after_add(
        request, sid, "triage/_partials/line_add.html", s=view, errors={}, values={}
    )


def _item_kind(request: Request) -> str:
    kind: str = request.path_params["kind"]
    if kind not in {"factor", "goal"}:
        raise NotFound()
    return kind


async def item(request: Request) -> Response:
    """One factor or goal, as shown (also: cancel editing)."""
    who = require(request)
    kind = _item_kind(request)
    sid = request.path_params["session_id"]
    async with unit_of_work(request, who) as uow:
        view = await service.item_view(uow, sid, kind, request.path_params["item_id"])
    return render(
        request,
        "triage/_partials/item.html",
        {"item": view, "session_id": sid, "vocab": VOCAB, "open": True},
    )


async def item_edit(request: Request) -> Response:
    who = require(request)
    kind = _item_kind(request)
    sid = request.path_params["session_id"]
    async with unit_of_work(request, who) as uow:
        view = await service.item_view(uow, sid, kind, request.path_params["item_id"])
    if view.text is None:
        raise NotFound()
    return render(
        request,
        "triage/_partials/item_edit.html",
        {
            "item": view,
            "session_id": sid,
            "draft": view.text,
            "stale": False,
            "errors": {},
            "vocab": VOCAB,
        },
    )


async def item_update(request: Request) -> Response:
    who = require(request)
    kind = _item_kind(request)
    sid = request.path_params["session_id"]
    item_id = request.path_params["item_id"]
    data = await form(request)
    draft = field(data, "text")
    version_raw = field(data, "version")
    update = service.update_factor if kind == "factor" else service.update_goal
    try:
        async with unit_of_work(request, who) as uow:
            await update(
                uow, sid, item_id, draft, int(version_raw) if version_raw.isdigit() else -1
            )
    except (StaleVersion, InvalidInput) as exc:
        # Nothing is lost: show the current text next to the user's own draft.
        async with unit_of_work(request, who) as uow:
            view = await service.item_view(uow, sid, kind, item_id)
        return render(
            request,
            "triage/_partials/item_edit.html",
            {
                "item": view,
                "session_id": sid,
                "draft": draft,
                "stale": isinstance(exc, StaleVersion),
                "errors": exc.errors if isinstance(exc, InvalidInput) else {},
                "message": gettext(exc.message),
                "vocab": VOCAB,
            },
            status_code=exc.status_code,
        )
    async with unit_of_work(request, who) as uow:
        view = await service.item_view(uow, sid, kind, item_id)
    if not is_htmx(request):
        return redirect(request, "triage.session", session_id=sid)
    return render(
        request,
        "triage/_partials/item.html",
        {"item": view, "session_id": sid, "vocab": VOCAB, "open": True},
    )


async def close(request: Request) -> Response:
    who = require(request, "coordinator")
    sid = request.path_params["session_id"]
    async with unit_of_work(request, who) as uow:
        await service.close_session(uow, sid)
    return redirect(request, "triage.session", session_id=sid)


async def session_ws(websocket: WebSocket) -> None:
    who = current(websocket)
    if who is None:
        await websocket.close(code=4401)
        return
    current_locale.set(who.locale)
    sid = websocket.path_params["session_id"]
    rt = runtime(websocket)
    try:
        async with rt.unit_of_work(who) as uow:
            view = await service.session_view(uow, sid)
    except DomainError:
        await websocket.close(code=4403)
        return
    after = websocket.query_params.get("after", "")
    await rt.hub.serve(websocket, view.room, who, int(after) if after.isdigit() else view.last_seq)


routes: list[BaseRoute] = [
    Route("/cases", cases, name="triage.cases"),
    Route("/cases/new", register_form, name="triage.register"),
    Route("/cases/new", register_submit, methods=["POST"], name="triage.register_submit"),
    Route("/cases/{case_id:int}", case_page, name="triage.case"),
    Route("/cases/{case_id:int}/sessions", plan, methods=["POST"], name="triage.plan_session"),
    Route("/triage/sessions/{session_id:int}", session_page, name="triage.session"),
    Route(
        "/triage/sessions/{session_id:int}/factors",
        factor_add,
        methods=["POST"],
        name="triage.factor_add",
    ),
    Route(
        "/triage/sessions/{session_id:int}/goals",
        goal_add,
        methods=["POST"],
        name="triage.goal_add",
    ),
    Route(
        "/triage/sessions/{session_id:int}/lines",
        line_add,
        methods=["POST"],
        name="triage.line_add",
    ),
    Route("/triage/sessions/{session_id:int}/{kind}/{item_id:int}", item, name="triage.item"),
    Route(
        "/triage/sessions/{session_id:int}/{kind}/{item_id:int}/edit",
        item_edit,
        name="triage.item_edit",
    ),
    Route(
        "/triage/sessions/{session_id:int}/{kind}/{item_id:int}",
        item_update,
        methods=["POST"],
        name="triage.item_update",
    ),
    Route("/triage/sessions/{session_id:int}/close", close, methods=["POST"], name="triage.close"),
    WebSocketRoute("/triage/sessions/{session_id:int}/ws", session_ws, name="triage.ws"),
]


# -- step 4: the arrangement ---------------------------------------------------------------------


async def _arrangement_step(
    request: Request,
    who: Principal,
    sid: int,
    *,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, object] | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        view = await arrangement.arrangement_view(uow, sid)
    return render(
        request,
        "triage/_partials/arrangement_step.html",
        {"a": view, "vocab": VOCAB, "errors": errors or {}, "values": values or {}},
        status_code=status_code,
    )


async def arrangement_step(request: Request) -> Response:
    who = require(request)
    return await _arrangement_step(request, who, request.path_params["session_id"])


async def _arrangement_act(request: Request, act: str) -> Response:
    """One of the arrangement's acts; answers with the step as it now is (the websocket
    brings the same to everyone else)."""
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    errors: dict[str, str] = {}
    values = {k: v for k, v in data.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        if act == "add":
            start = date_field(data, "start_date", errors)
            end = date_field(data, "end_date", errors)
            if errors:
                raise InvalidInput(errors)
            provider = field(data, "provider_id")
            async with unit_of_work(request, who) as uow:
                await service.add_line(
                    uow,
                    sid,
                    int(provider) if provider.isdigit() else 0,
                    field(data, "product_code"),
                    field(data, "help_form"),
                    field(data, "amount"),
                    start,
                    intensity_unit=field(data, "intensity_unit") or "hour",
                    share=field(data, "share"),
                    end=end,
                )
            values = {}
        else:
            async with unit_of_work(request, who) as uow:
                if act == "remove":
                    await arrangement.remove_line(uow, sid, request.path_params["line_id"])
                elif act == "agree":
                    version = field(data, "version")
                    await arrangement.agree(uow, sid, int(version) if version.isdigit() else -1)
                elif act == "revise":
                    await arrangement.revise(uow, sid)
                else:
                    provider, user = field(data, "provider_id"), field(data, "user_id")
                    await arrangement.designate(
                        uow,
                        sid,
                        int(provider) if provider.isdigit() else 0,
                        int(user) if user.isdigit() else None,
                    )
    except InvalidInput as exc:
        return await _arrangement_step(
            request, who, sid, errors=exc.errors, values=values, status_code=422
        )
    except StaleVersion:
        message = N_("Het arrangement is intussen veranderd. Kijk het na en leg het dan vast.")
        return await _arrangement_step(
            request, who, sid, errors={"agree": message}, status_code=409
        )
    if not is_htmx(request):
        return redirect(request, "triage.session", session_id=sid)
    return await _arrangement_step(request, who, sid)


async def arrangement_line_add(request: Request) -> Response:
    return await _arrangement_act(request, "add")


async def arrangement_line_remove(request: Request) -> Response:
    return await _arrangement_act(request, "remove")


async def arrangement_agree(request: Request) -> Response:
    return await _arrangement_act(request, "agree")


async def arrangement_revise(request: Request) -> Response:
    return await _arrangement_act(request, "revise")


async def arrangement_designate(request: Request) -> Response:
    return await _arrangement_act(request, "designate")


# -- step 5: the plan ----------------------------------------------------------------------------


async def plan_step(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    async with unit_of_work(request, who) as uow:
        view = await plan_step5.plan_view(uow, sid)
    return render(
        request,
        "triage/_partials/plan_step.html",
        {"p": view, "vocab": VOCAB, "errors": {}, "values": {}},
    )


async def activity_add(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    errors: dict[str, str] = {}
    due = date_field(data, "due_date", errors)
    values = {k: v for k, v in data.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        if errors:
            raise InvalidInput(errors)
        async with unit_of_work(request, who) as uow:
            await plan_step5.add_activity(uow, sid, field(data, "who"), field(data, "what"), due)
    except InvalidInput as exc:
        return render(
            request,
            "triage/_partials/plan_activity_add.html",
            {"session_id": sid, "errors": exc.errors, "values": values},
            status_code=422,
        )
    if not is_htmx(request):
        return redirect(request, "triage.session", session_id=sid)
    return render(
        request,
        "triage/_partials/plan_activity_add.html",
        {"session_id": sid, "errors": {}, "values": {}},
    )


async def _activity(
    request: Request, who: Principal, sid: int, aid: int
) -> plan_step5.ActivityView:
    async with unit_of_work(request, who) as uow:
        view = await plan_step5.plan_view(uow, sid)
    for activity in view.activities:
        if activity.id == aid:
            return activity
    raise NotFound()


async def _activity_fragment(
    request: Request, who: Principal, sid: int, aid: int, *, edit: bool = False, **ctx: object
) -> Response:
    async with unit_of_work(request, who) as uow:
        view = await plan_step5.plan_view(uow, sid)
    found = [a for a in view.activities if a.id == aid]
    if not found:
        raise NotFound()
    status_code = ctx.pop("status_code", 200)
    assert isinstance(status_code, int)
    return render(
        request,
        "triage/_partials/plan_activity_edit.html"
        if edit
        else "triage/_partials/plan_activity.html",
        {"activity": found[0], "p": view, "vocab": VOCAB, "session_id": sid, **ctx},
        status_code=status_code,
    )


async def activity(request: Request) -> Response:
    who = require(request)
    sid, aid = request.path_params["session_id"], request.path_params["activity_id"]
    return await _activity_fragment(request, who, sid, aid)


async def activity_edit(request: Request) -> Response:
    who = require(request)
    sid, aid = request.path_params["session_id"], request.path_params["activity_id"]
    current = await _activity(request, who, sid, aid)
    if current.hidden:
        raise NotFound()
    draft = {"who": current.who, "what": current.what, "due_date": current.due_date or ""}
    return await _activity_fragment(
        request, who, sid, aid, edit=True, draft=draft, stale=False, errors={}
    )


async def activity_update(request: Request) -> Response:
    who = require(request)
    sid, aid = request.path_params["session_id"], request.path_params["activity_id"]
    data = await form(request)
    errors: dict[str, str] = {}
    due = date_field(data, "due_date", errors)
    draft = {k: field(data, k) for k in ("who", "what", "due_date")}
    version = field(data, "version")
    try:
        if errors:
            raise InvalidInput(errors)
        async with unit_of_work(request, who) as uow:
            await plan_step5.update_activity(
                uow,
                sid,
                aid,
                draft["who"],
                draft["what"],
                due,
                int(version) if version.isdigit() else -1,
            )
    except (StaleVersion, InvalidInput) as exc:
        return await _activity_fragment(
            request,
            who,
            sid,
            aid,
            edit=True,
            draft=draft,
            stale=isinstance(exc, StaleVersion),
            errors=exc.errors if isinstance(exc, InvalidInput) else {},
            status_code=exc.status_code,
        )
    if not is_htmx(request):
        return redirect(request, "triage.session", session_id=sid)
    return await _activity_fragment(request, who, sid, aid)


async def activity_status(request: Request) -> Response:
    who = require(request)
    sid, aid = request.path_params["session_id"], request.path_params["activity_id"]
    data = await form(request)
    version = field(data, "version")
    try:
        async with unit_of_work(request, who) as uow:
            await plan_step5.set_status(
                uow, sid, aid, field(data, "status"), int(version) if version.isdigit() else -1
            )
    except (StaleVersion, InvalidInput) as exc:
        return await _activity_fragment(
            request, who, sid, aid, message=exc.message, status_code=exc.status_code
        )
    if not is_htmx(request):
        return redirect(request, "triage.session", session_id=sid)
    return await _activity_fragment(request, who, sid, aid)


def _topic(request: Request) -> str:
    topic: str = request.path_params["topic"]
    if topic not in plan_step5.TOPICS:
        raise NotFound()
    return topic


async def _agreement_fragment(
    request: Request, who: Principal, sid: int, topic: str, *, edit: bool, **ctx: object
) -> Response:
    async with unit_of_work(request, who) as uow:
        view = await plan_step5.plan_view(uow, sid)
    current = next(a for a in view.agreements if a.topic == topic)
    if edit and current.hidden:
        raise NotFound()
    status_code = ctx.pop("status_code", 200)
    assert isinstance(status_code, int)
    return render(
        request,
        "triage/_partials/plan_agreement_edit.html"
        if edit
        else "triage/_partials/plan_agreement.html",
        {"agreement": current, "p": view, "vocab": VOCAB, "session_id": sid, **ctx},
        status_code=status_code,
    )


async def agreement(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    return await _agreement_fragment(request, who, sid, _topic(request), edit=False)


async def agreement_edit(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    topic = _topic(request)
    async with unit_of_work(request, who) as uow:
        view = await plan_step5.plan_view(uow, sid)
    current = next(a for a in view.agreements if a.topic == topic)
    return await _agreement_fragment(
        request, who, sid, topic, edit=True, draft=current.text or "", stale=False, errors={}
    )


async def agreement_save(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    topic = _topic(request)
    data = await form(request)
    draft = field(data, "text")
    version = field(data, "version")
    try:
        async with unit_of_work(request, who) as uow:
            await plan_step5.set_agreement(
                uow, sid, topic, draft, int(version) if version.isdigit() else -1
            )
    except (StaleVersion, InvalidInput) as exc:
        return await _agreement_fragment(
            request,
            who,
            sid,
            topic,
            edit=True,
            draft=draft,
            stale=isinstance(exc, StaleVersion),
            errors=exc.errors if isinstance(exc, InvalidInput) else {},
            status_code=exc.status_code,
        )
    if not is_htmx(request):
        return redirect(request, "triage.session", session_id=sid)
    return await _agreement_fragment(request, who, sid, topic, edit=False)


# -- ending: closing and the report --------------------------------------------------------------


async def _closing(
    request: Request,
    who: Principal,
    sid: int,
    *,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, object] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        view = await service.session_view(uow, sid)
        parties = await report.sharing_parties(uow, sid) if view.may_close else ()
        link = await report.report_link(uow, sid) if not view.is_open else None
    return render(
        request,
        "triage/_partials/report_closing.html",
        {
            "s": view,
            "parties": parties,
            "report_id": link,
            "errors": errors or {},
            "values": values or {},
            "message": message,
        },
        status_code=status_code,
    )


async def closing(request: Request) -> Response:
    who = require(request)
    return await _closing(request, who, request.path_params["session_id"])


async def finish(request: Request) -> Response:
    """The chair closes the session with the family's answer per party (report sharing)."""
    who = require(request, "coordinator")
    sid = request.path_params["session_id"]
    data = await form(request)
    sharing: dict[int, bool] = {}
    for key, value in data.items():
        if key.startswith("share_") and key[6:].isdigit() and value in {"yes", "no"}:
            sharing[int(key[6:])] = value == "yes"
    values = {k: v for k, v in data.items() if isinstance(v, str)}
    try:
        async with unit_of_work(request, who) as uow:
            await report.close_and_share(uow, sid, sharing)
    except InvalidInput as exc:
        return await _closing(
            request,
            who,
            sid,
            errors=exc.errors,
            values=values,
            message=exc.message,
            status_code=422,
        )
    return redirect(request, "triage.session", session_id=sid)


async def report_page(request: Request) -> Response:
    who = require(request)
    async with unit_of_work(request, who) as uow:
        view = await report.report_view(uow, request.path_params["public_id"])
    return render(
        request,
        "triage/report.html",
        {"r": view, "vocab": VOCAB},
        headers={"Cache-Control": "no-store"},
    )


async def report_download(request: Request) -> Response:
    who = require(request)
    async with unit_of_work(request, who) as uow:
        view = await report.report_view(uow, request.path_params["public_id"], how="pdf")
    data = report.report_pdf(view)
    name = f"verslag-{view.session.case.pseudonym}-{view.session.scheduled_at:%Y%m%d}.pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


async def case_reports(request: Request) -> Response:
    """The reports of a case this viewer may read (a fragment of the case page)."""
    who = require(request)
    case_id = request.path_params["case_id"]
    if who.case_id is not None and who.case_id != case_id:
        raise NotFound()
    async with unit_of_work(request, who) as uow:
        links = await report.reports_for_case(uow, case_id)
    return render(request, "triage/_partials/report_list.html", {"reports": links})


_S = "/triage/sessions/{session_id:int}"
routes += [
    Route(f"{_S}/arrangement", arrangement_step, name="triage.arrangement"),
    Route(
        f"{_S}/arrangement/lines",
        arrangement_line_add,
        methods=["POST"],
        name="triage.arrangement_line_add",
    ),
    Route(
        f"{_S}/arrangement/lines/{{line_id:int}}/remove",
        arrangement_line_remove,
        methods=["POST"],
        name="triage.arrangement_line_remove",
    ),
    Route(
        f"{_S}/arrangement/agree",
        arrangement_agree,
        methods=["POST"],
        name="triage.arrangement_agree",
    ),
    Route(
        f"{_S}/arrangement/revise",
        arrangement_revise,
        methods=["POST"],
        name="triage.arrangement_revise",
    ),
    Route(
        f"{_S}/arrangement/procesregisseur",
        arrangement_designate,
        methods=["POST"],
        name="triage.arrangement_designate",
    ),
    Route(f"{_S}/plan", plan_step, name="triage.plan"),
    Route(f"{_S}/plan/activities", activity_add, methods=["POST"], name="triage.activity_add"),
    Route(f"{_S}/plan/activities/{{activity_id:int}}", activity, name="triage.activity"),
    Route(
        f"{_S}/plan/activities/{{activity_id:int}}/edit", activity_edit, name="triage.activity_edit"
    ),
    Route(
        f"{_S}/plan/activities/{{activity_id:int}}",
        activity_update,
        methods=["POST"],
        name="triage.activity_update",
    ),
    Route(
        f"{_S}/plan/activities/{{activity_id:int}}/status",
        activity_status,
        methods=["POST"],
        name="triage.activity_status",
    ),
    Route(f"{_S}/plan/agreements/{{topic}}", agreement, name="triage.agreement"),
    Route(f"{_S}/plan/agreements/{{topic}}/edit", agreement_edit, name="triage.agreement_edit"),
    Route(
        f"{_S}/plan/agreements/{{topic}}",
        agreement_save,
        methods=["POST"],
        name="triage.agreement_save",
    ),
    Route(f"{_S}/closing", closing, name="triage.closing"),
    Route("/cases/{case_id:int}/reports", case_reports, name="triage.case_reports"),
    Route(f"{_S}/finish", finish, methods=["POST"], name="triage.finish"),
    # The .pdf route first: a public id never contains a dot.
    Route("/triage/reports/{public_id}.pdf", report_download, name="triage.report_pdf"),
    Route("/triage/reports/{public_id}", report_page, name="triage.report"),
]
