"""HTTP and websocket routes of triage (thin: parse, call the service, render)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from keerpunt.consent import service as consent
from keerpunt.platform import auth
from keerpunt.platform.db import READ_ONLY
from keerpunt.platform.errors import (
    DomainError,
    InvalidInput,
    NotAllowed,
    NotFound,
    StaleVersion,
)
from keerpunt.platform.i18n import AMSTERDAM, N_, current_locale, gettext
from keerpunt.platform.models import Organisation, OrgKind
from keerpunt.platform.principal import Principal
from keerpunt.platform.realtime import Hub
from keerpunt.platform.uow import UnitOfWork
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
from keerpunt.triage import agenda, arrangement, report, service
from keerpunt.triage import plan as plan_step5
from keerpunt.triage.lifecycle import IllegalTransition
from keerpunt.triage.realtime import TriageRenderer, follow
from keerpunt.triage.vocab import VOCAB


def register_realtime(hub: Hub, jinja: jinja2.Environment) -> None:
    hub.register("triage", TriageRenderer(jinja, hub.present, hub.typing))


def _present(request: Request, session_id: int) -> frozenset[str]:
    """Who is connected to this meeting now ("niet over mij zonder mij" depends on it)."""
    return frozenset(p.actor for p in runtime(request).hub.present(f"triage:{session_id}"))


async def cases(request: Request) -> Response:
    who = require(request)
    async with unit_of_work(request, who) as uow:
        views = await service.list_cases(uow)
        due = {v.id: await agenda.case_deadlines(uow, v) for v in views}
    return render(request, "triage/cases.html", {"cases": views, "vocab": VOCAB, "due": due})


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
            "domains": service.DOMAINS,
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
        domain=field(data, "domain"),
        anonymous_summary=field(data, "anonymous_summary"),
        summary_checked=data.get("summary_checked") == "yes",
    )
    context = {
        "questions": service.ENTRY_QUESTIONS,
        "municipalities": await _municipalities(request),
        "domains": service.DOMAINS,
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
    step: Mapping[str, object] | None = None,
    status_code: int = 200,
) -> Response:
    if who.case_id is not None and who.case_id != case_id:
        raise NotFound()
    async with unit_of_work(request, who) as uow:
        view = await service.case_view(uow, case_id)
        upcoming = view.next_session
        consents = await consent.consent_overview_for(
            uow,
            case_id,
            view.level,
            # a 12th/16th birthday before the next meeting asks for renewal before it
            next_session_on=(
                upcoming.scheduled_at.astimezone(AMSTERDAM).date() if upcoming else None
            ),
        )
        invitations = await auth.invitations_for_case(uow.db, who, case_id)
        experts = await service.staff_choices(uow) if view.may_plan else []
        life = await agenda.lifecycle_view(uow, view)
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
            "life": life,
            "step": step or {},
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
    sid = request.path_params["session_id"]
    async with unit_of_work(request, who) as uow:
        view = await service.session_view(uow, sid, _present(request, sid))
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


async def _form_view(request: Request, who: Principal, sid: int) -> service.SessionView:
    async with unit_of_work(request, who) as uow:
        return await service.session_view(uow, sid, _present(request, sid))


def _ids(data: FormData) -> list[int]:
    """The factor ids ticked in a goal form."""
    return [int(v) for v in data.getlist("factor_ids") if isinstance(v, str) and v.isdigit()]


async def factor_add(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    try:
        async with unit_of_work(request, who) as uow:
            await service.add_factor(
                uow,
                sid,
                field(data, "life_area"),
                field(data, "kind"),
                field(data, "text"),
                field(data, "bound_to"),
                confirmed=data.get("confirm_identifying") == "yes",
            )
    except InvalidInput as exc:
        return render(
            request,
            "triage/_partials/factor_add.html",
            {"session_id": sid, "vocab": VOCAB, "errors": exc.errors, "values": dict(data)},
            status_code=422,
        )
    return await _after_add(request, sid, "triage/_partials/factor_add.html", errors={}, values={})


async def factor_import(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    try:
        async with unit_of_work(request, who) as uow:
            await service.import_analysis(
                uow,
                sid,
                field(data, "analysis"),
                confirmed=data.get("confirm_identifying") == "yes",
            )
    except InvalidInput as exc:
        return render(
            request,
            "triage/_partials/factor_import.html",
            {"session_id": sid, "errors": exc.errors, "values": dict(data)},
            status_code=422,
        )
    return await _after_add(
        request, sid, "triage/_partials/factor_import.html", errors={}, values={}
    )


async def link_add(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    source, target = field(data, "source_id"), field(data, "target_id")
    try:
        async with unit_of_work(request, who) as uow:
            await service.link_factors(
                uow,
                sid,
                int(source) if source.isdigit() else 0,
                int(target) if target.isdigit() else 0,
            )
    except InvalidInput as exc:
        view = await _form_view(request, who, sid)
        return render(
            request,
            "triage/_partials/link_add.html",
            {"s": view, "errors": exc.errors, "values": dict(data)},
            status_code=422,
        )
    view = await _form_view(request, who, sid)
    return await _after_add(
        request, sid, "triage/_partials/link_add.html", s=view, errors={}, values={}
    )


async def link_delete(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    async with unit_of_work(request, who) as uow:
        await service.unlink_factors(uow, sid, request.path_params["link_id"])
    if is_htmx(request):
        return Response(status_code=204)
    return redirect(request, "triage.session", session_id=sid)


async def goal_add(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    errors: dict[str, str] = {}
    target = date_field(data, "target_date", errors)
    try:
        if errors:
            raise InvalidInput(errors)
        async with unit_of_work(request, who) as uow:
            await service.add_goal(
                uow,
                sid,
                field(data, "text"),
                _ids(data),
                field(data, "measure"),
                target,
                confirmed=data.get("confirm_identifying") == "yes",
            )
    except InvalidInput as exc:
        view = await _form_view(request, who, sid)
        values: dict[str, object] = dict(data)
        values["factor_ids"] = _ids(data)
        return render(
            request,
            "triage/_partials/goal_add.html",
            {"s": view, "session_id": sid, "errors": exc.errors, "values": values},
            status_code=422,
        )
    view = await _form_view(request, who, sid)
    return await _after_add(
        request, sid, "triage/_partials/goal_add.html", s=view, errors={}, values={}
    )


async def note_add(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    step_raw = field(data, "step")
    step = int(step_raw) if step_raw.isdigit() else 0
    try:
        async with unit_of_work(request, who) as uow:
            await service.add_note(
                uow,
                sid,
                step,
                field(data, "text"),
                confirmed=data.get("confirm_identifying") == "yes",
            )
    except InvalidInput as exc:
        return render(
            request,
            "triage/_partials/note_add.html",
            {"session_id": sid, "step": step, "errors": exc.errors, "values": dict(data)},
            status_code=422,
        )
    return await _after_add(
        request, sid, "triage/_partials/note_add.html", step=step, errors={}, values={}
    )


async def screen(request: Request) -> Response:
    """The chair puts a step on screen."""
    who = require(request, "coordinator")
    sid = request.path_params["session_id"]
    data = await form(request)
    step = field(data, "step")
    async with unit_of_work(request, who) as uow:
        await service.put_on_screen(uow, sid, int(step) if step.isdigit() else 0)
    if is_htmx(request):
        return Response(status_code=204)  # everyone, the chair included, gets it live
    return redirect(request, "triage.session", session_id=sid)


async def quality(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    async with unit_of_work(request, who) as uow:
        await service.tick_quality(uow, sid, field(data, "quality"), field(data, "ticked") == "1")
    if is_htmx(request):
        return Response(status_code=204)
    return redirect(request, "triage.session", session_id=sid)


async def _board(request: Request, who: Principal, sid: int) -> service.BoardView:
    async with unit_of_work(request, who) as uow:
        return await service.board_view(uow, sid, _present(request, sid))


async def perspective(request: Request) -> Response:
    """The perspective as shown (also: cancel editing)."""
    who = require(request)
    sid = request.path_params["session_id"]
    board = await _board(request, who, sid)
    return render(
        request,
        "triage/_partials/perspective.html",
        {"b": board, "session_id": sid, "open": True, "oob": False},
    )


async def perspective_edit(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    board = await _board(request, who, sid)
    if board.perspective_hidden:
        raise NotFound()
    return render(
        request,
        "triage/_partials/perspective_edit.html",
        {
            "b": board,
            "session_id": sid,
            "draft": board.perspective or "",
            "stale": False,
            "errors": {},
        },
    )


async def perspective_save(request: Request) -> Response:
    who = require(request)
    sid = request.path_params["session_id"]
    data = await form(request)
    draft = field(data, "perspective")
    version_raw = field(data, "version")
    try:
        async with unit_of_work(request, who) as uow:
            await service.set_perspective(
                uow,
                sid,
                draft,
                int(version_raw) if version_raw.isdigit() else -1,
                confirmed=data.get("confirm_identifying") == "yes",
            )
    except (StaleVersion, InvalidInput) as exc:
        board = await _board(request, who, sid)
        return render(
            request,
            "triage/_partials/perspective_edit.html",
            {
                "b": board,
                "session_id": sid,
                "draft": draft,
                "stale": isinstance(exc, StaleVersion),
                "errors": exc.errors if isinstance(exc, InvalidInput) else {},
            },
            status_code=exc.status_code,
        )
    if not is_htmx(request):
        return redirect(request, "triage.session", session_id=sid)
    board = await _board(request, who, sid)
    return render(
        request,
        "triage/_partials/perspective.html",
        {"b": board, "session_id": sid, "open": True, "oob": False},
    )


def _item_kind(request: Request) -> str:
    kind: str = request.path_params["kind"]
    if kind not in {"factor", "goal", "note"}:
        raise NotFound()
    return kind


async def _item_ctx(
    request: Request, who: Principal, sid: int, kind: str, item_id: int
) -> dict[str, object]:
    async with unit_of_work(request, who) as uow:
        present = _present(request, sid)
        view = await service.item_view(uow, sid, kind, item_id, present)
        choices = (
            (await service.session_view(uow, sid, present)).factor_choices
            if kind in {"goal", "factor"}
            else ()
        )
    return {"item": view, "session_id": sid, "vocab": VOCAB, "choices": choices}


async def item(request: Request) -> Response:
    """One factor, goal or note, as shown (also: cancel editing)."""
    who = require(request)
    kind = _item_kind(request)
    sid = request.path_params["session_id"]
    ctx = await _item_ctx(request, who, sid, kind, request.path_params["item_id"])
    return render(request, "triage/_partials/item.html", {**ctx, "open": True})


async def item_edit(request: Request) -> Response:
    who = require(request)
    kind = _item_kind(request)
    sid = request.path_params["session_id"]
    ctx = await _item_ctx(request, who, sid, kind, request.path_params["item_id"])
    view = ctx["item"]
    assert isinstance(view, service.ItemView)
    if view.text is None:
        raise NotFound()
    return render(
        request,
        "triage/_partials/item_edit.html",
        {**ctx, "draft": view.text, "stale": False, "errors": {}, "values": {}},
    )


async def item_update(request: Request) -> Response:
    who = require(request)
    kind = _item_kind(request)
    sid = request.path_params["session_id"]
    item_id = request.path_params["item_id"]
    data = await form(request)
    draft = field(data, "text")
    version_raw = field(data, "version")
    version = int(version_raw) if version_raw.isdigit() else -1
    errors: dict[str, str] = {}
    confirmed = data.get("confirm_identifying") == "yes"
    before = await _item_ctx(request, who, sid, kind, item_id)
    try:
        async with unit_of_work(request, who) as uow:
            if kind == "factor":
                place = (field(data, "life_area"), field(data, "kind"), field(data, "bound_to"))
                # A draft whose place is not chosen yet may have its text tidied first.
                structure = place if place[0] or place[1] else None
                await service.update_factor(
                    uow, sid, item_id, draft, version, structure, confirmed=confirmed
                )
            elif kind == "goal":
                target = date_field(data, "target_date", errors)
                if errors:
                    raise InvalidInput(errors)
                await service.update_goal(
                    uow,
                    sid,
                    item_id,
                    draft,
                    version,
                    _ids(data) if "goal_form" in data else None,
                    field(data, "measure") if "goal_form" in data else None,
                    target,
                    confirmed=confirmed,
                )
            else:
                await service.update_note(uow, sid, item_id, draft, version, confirmed=confirmed)
    except (StaleVersion, InvalidInput) as exc:
        # Nothing is lost: show the current text next to the user's own draft.
        ctx = await _item_ctx(request, who, sid, kind, item_id)
        values: dict[str, object] = dict(data)
        values["factor_ids"] = _ids(data)
        return render(
            request,
            "triage/_partials/item_edit.html",
            {
                **ctx,
                "draft": draft,
                "stale": isinstance(exc, StaleVersion),
                "errors": exc.errors if isinstance(exc, InvalidInput) else {},
                "message": gettext(exc.message),
                "values": values,
            },
            status_code=exc.status_code,
        )
    if not is_htmx(request):
        return redirect(request, "triage.session", session_id=sid)
    ctx = await _item_ctx(request, who, sid, kind, item_id)
    old_view, new_view = before["item"], ctx["item"]
    assert isinstance(old_view, service.ItemView) and isinstance(new_view, service.ItemView)
    if old_view.list_id != new_view.list_id:
        return render(request, "triage/_partials/item_moved.html", ctx)
    return render(request, "triage/_partials/item.html", {**ctx, "open": True})


async def item_private(request: Request) -> Response:
    """ "Niet over mij zonder mij": set or lift the wish on one item."""
    who = require(request)
    kind = _item_kind(request)
    sid = request.path_params["session_id"]
    item_id = request.path_params["item_id"]
    data = await form(request)
    async with unit_of_work(request, who) as uow:
        await service.set_not_without_me(uow, sid, kind, item_id, field(data, "on") == "1")
    if not is_htmx(request):
        return redirect(request, "triage.session", session_id=sid)
    ctx = await _item_ctx(request, who, sid, kind, item_id)
    return render(request, "triage/_partials/item.html", {**ctx, "open": True})


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
        # Only reads (on SQLite beside the writer): a whole table joining at once must not
        # queue behind the saves.
        async with rt.sessionmaker(execution_options={READ_ONLY: True}) as db:
            room, last_seq = await follow(UnitOfWork(db=db, vault=rt.vault, who=who), sid)
    except DomainError:
        await websocket.close(code=4403)
        return
    after = websocket.query_params.get("after", "")
    await rt.hub.serve(websocket, room, who, int(after) if after.isdigit() else last_seq)


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
        "/triage/sessions/{session_id:int}/factors/import",
        factor_import,
        methods=["POST"],
        name="triage.factor_import",
    ),
    Route(
        "/triage/sessions/{session_id:int}/links",
        link_add,
        methods=["POST"],
        name="triage.link_add",
    ),
    Route(
        "/triage/sessions/{session_id:int}/links/{link_id:int}/delete",
        link_delete,
        methods=["POST"],
        name="triage.link_delete",
    ),
    Route(
        "/triage/sessions/{session_id:int}/goals",
        goal_add,
        methods=["POST"],
        name="triage.goal_add",
    ),
    Route(
        "/triage/sessions/{session_id:int}/notes",
        note_add,
        methods=["POST"],
        name="triage.note_add",
    ),
    Route(
        "/triage/sessions/{session_id:int}/screen",
        screen,
        methods=["POST"],
        name="triage.screen",
    ),
    Route(
        "/triage/sessions/{session_id:int}/quality",
        quality,
        methods=["POST"],
        name="triage.quality",
    ),
    Route(
        "/triage/sessions/{session_id:int}/perspective",
        perspective,
        name="triage.perspective",
    ),
    Route(
        "/triage/sessions/{session_id:int}/perspective/edit",
        perspective_edit,
        name="triage.perspective_edit",
    ),
    Route(
        "/triage/sessions/{session_id:int}/perspective",
        perspective_save,
        methods=["POST"],
        name="triage.perspective_save",
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
    Route(
        "/triage/sessions/{session_id:int}/{kind}/{item_id:int}/private",
        item_private,
        methods=["POST"],
        name="triage.item_private",
    ),
    Route("/triage/sessions/{session_id:int}/close", close, methods=["POST"], name="triage.close"),
    WebSocketRoute("/triage/sessions/{session_id:int}/ws", session_ws, name="triage.ws"),
]


# -- the case lifecycle: a step by hand, the weekly agenda ------------------------------------


async def case_step(request: Request) -> Response:
    """A lifecycle step from the case page; a refusal shows on the page, nothing is lost."""
    who = require(request)
    case_id = request.path_params["case_id"]
    data = await form(request)
    target, reason = field(data, "target"), field(data, "reason")
    try:
        async with unit_of_work(request, who) as uow:
            await agenda.request_step(uow, case_id, target, reason)
    except (InvalidInput, IllegalTransition, NotAllowed) as exc:
        params = {k: gettext(str(v)) for k, v in exc.params.items()}
        step = {
            "target": target,
            "reason": reason,
            "errors": exc.errors if isinstance(exc, InvalidInput) else {},
            "message": gettext(exc.message) % params if params else gettext(exc.message),
        }
        return await _render_case(request, who, case_id, step=step, status_code=exc.status_code)
    return RedirectResponse(
        str(request.url_for("triage.case", case_id=case_id)) + "#h-lifecycle", status_code=303
    )


async def agenda_page(request: Request) -> Response:
    who = require(request, "coordinator", "triage_member")
    raw = request.query_params.get("week", "")
    try:
        day = dt.date.fromisoformat(raw) if raw else dt.datetime.now(AMSTERDAM).date()
    except ValueError:
        day = dt.datetime.now(AMSTERDAM).date()
    async with unit_of_work(request, who) as uow:
        view = await agenda.week_agenda(uow, day)
    return render(request, "triage/agenda.html", {"a": view})


routes += [
    Route("/cases/{case_id:int}/status", case_step, methods=["POST"], name="triage.case_step"),
    Route("/triage/agenda", agenda_page, name="triage.agenda"),
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
                    confirmed=data.get("confirm_identifying") == "yes",
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
            await plan_step5.add_activity(
                uow,
                sid,
                field(data, "who"),
                field(data, "what"),
                due,
                confirmed=data.get("confirm_identifying") == "yes",
            )
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
                confirmed=data.get("confirm_identifying") == "yes",
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
                uow,
                sid,
                topic,
                draft,
                int(version) if version.isdigit() else -1,
                confirmed=data.get("confirm_identifying") == "yes",
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
        parties = (
            await report.sharing_parties(uow, sid, level=view.case.level) if view.may_close else ()
        )
        team = await service.attendance_choices(uow, sid) if view.may_close else []
        link = await report.report_link(uow, sid) if not view.is_open else None
    return render(
        request,
        "triage/_partials/report_closing.html",
        {
            "s": view,
            "parties": parties,
            "team": team,
            "vocab": VOCAB,
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
    # The attendance list (presentielijst): hours per triage team member, 0 for absent.
    hours = {
        int(key[6:]): value
        for key, value in data.items()
        if key.startswith("hours_") and key[6:].isdigit() and isinstance(value, str)
    }
    values = {k: v for k, v in data.items() if isinstance(v, str)}
    try:
        async with unit_of_work(request, who) as uow:
            if hours:
                await service.record_attendance(uow, sid, hours)
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
