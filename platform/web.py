"""Edge helpers shared by every domain's routes: templates, the acting principal, the unit
of work, form parsing, and mapping domain errors to responses the user understands."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jinja2
from starlette.datastructures import FormData
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from keerpunt.platform import i18n
from keerpunt.platform.errors import DomainError, InvalidInput, NotAllowed
from keerpunt.platform.i18n import N_
from keerpunt.platform.principal import Principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import UnitOfWork


def make_jinja_env(runtime_templates_dir: Any) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(runtime_templates_dir)),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        enable_async=False,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["local_datetime"] = i18n.local_datetime
    env.filters["local_date"] = i18n.local_date
    env.filters["money"] = i18n.money
    return env


def runtime(conn: HTTPConnection) -> Runtime:
    rt: Runtime = conn.app.state.runtime
    return rt


def current(conn: HTTPConnection) -> Principal | None:
    p: Principal | None = conn.scope.get("state", {}).get("principal")
    return p


def require(conn: HTTPConnection, *roles: str) -> Principal:
    """The logged-in principal; with roles given, a professional holding one of them."""
    p = current(conn)
    if p is None:
        raise LoginRequired()
    if roles and not any(p.has(r) for r in roles):
        raise NotAllowed()
    return p


class LoginRequired(DomainError):
    status_code = 401
    message = N_("Log eerst in.")


@asynccontextmanager
async def unit_of_work(request: HTTPConnection, who: Principal) -> AsyncIterator[UnitOfWork]:
    async with runtime(request).unit_of_work(who) as uow:
        yield uow


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    env: jinja2.Environment = request.app.state.jinja
    state = request.scope.get("state", {})
    ctx = {
        "request": request,
        "url_for": request.url_for,
        "static": lambda path: request.url_for("static", path=path),
        "principal": state.get("principal"),
        "csrf_token": state.get("csrf_token", ""),
        "locale": state.get("locale", "nl"),
        "demo_mode": runtime(request).settings.demo_mode,
        "htmx": is_htmx(request),
    }
    ctx.update(context or {})
    html = env.get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def redirect(request: Request, name: str, **params: Any) -> Response:
    url = str(request.url_for(name, **params))
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


async def form(request: Request) -> FormData:
    return await request.form()


def field(data: FormData, name: str) -> str:
    value = data.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def date_field(data: FormData, name: str, errors: dict[str, str]) -> dt.date | None:
    """A date input (``YYYY-MM-DD``); empty is None, anything else unreadable is an error."""
    raw = field(data, name)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors[name] = N_("Vul een geldige datum in.")
        return None


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if isinstance(exc, LoginRequired) and not is_htmx(request):
        return RedirectResponse(str(request.url_for("auth.login")), status_code=303)
    template = "_partials/error.html" if is_htmx(request) else "error.html"
    errors = exc.errors if isinstance(exc, InvalidInput) else {}
    headers = {"HX-Retarget": "#kp-flash", "HX-Reswap": "innerHTML"} if is_htmx(request) else {}
    return render(
        request,
        template,
        {"message": i18n.gettext(exc.message), "errors": errors},
        status_code=exc.status_code,
        headers=headers,
    )
