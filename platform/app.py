"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from keerpunt.platform import auth_routes, i18n
from keerpunt.platform.errors import DomainError
from keerpunt.platform.models import StaffRole
from keerpunt.platform.relay import Relay
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.security import SecurityMiddleware
from keerpunt.platform.settings import Settings
from keerpunt.platform.web import domain_error_handler, make_jinja_env, render


async def healthz(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        async with rt.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        db = "ok"
    except Exception as exc:  # report, do not crash: this is what monitoring reads
        db = f"error: {type(exc).__name__}"
    status = 200 if db == "ok" else 503
    return JSONResponse({"app": "ok", "database": db}, status_code=status)


_MONEY_ONLY = frozenset({StaffRole.FINANCE, StaffRole.FUNDER})
# In order of preference: the penvoerder closes quarters; a provider enters its care.
_MONEY_LANDING = (
    "settlement.quarter",
    "settlement.allocations",
    "settlement.kassier_index",
    "settlement.monitor",
)


async def home(request: Request) -> Response:
    principal = request.scope["state"].get("principal")
    if principal is None:
        return RedirectResponse(str(request.url_for("auth.login")), status_code=303)
    if principal.case_id is not None:  # family member: straight to their case
        return RedirectResponse(
            str(request.url_for("triage.case", case_id=principal.case_id)), status_code=303
        )
    if principal.staff_roles and principal.staff_roles <= _MONEY_ONLY:
        # Finance staff and funders have no case work (a funder sees aggregates only, never
        # a case): their first page is the first of their own settlement pages.
        from keerpunt.settlement.access import menu_pages  # the composition root's edge

        pages = menu_pages(principal)
        for name in _MONEY_LANDING:
            if name in pages:
                return RedirectResponse(str(request.url_for(name)), status_code=303)
    return RedirectResponse(str(request.url_for("triage.cases")), status_code=303)


async def not_found(request: Request, exc: Exception) -> Response:
    return render(
        request,
        "error.html",
        {"message": i18n.gettext("Deze pagina bestaat niet."), "errors": {}},
        status_code=404,
    )


async def server_error(request: Request, exc: Exception) -> Response:
    # Logged by Starlette's error middleware; the user gets a calm page, never a stack trace.
    return render(
        request,
        "error.html",
        {
            "message": i18n.gettext(
                i18n.N_(
                    "Er ging iets mis aan onze kant. Wat u net deed, is niet opgeslagen. "
                    "Probeer het zo nog eens."
                )
            ),
            "errors": {},
        },
        status_code=500,
    )


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> Starlette:
    from keerpunt.consent import daily as consent_daily
    from keerpunt.consent import routes as consent_routes
    from keerpunt.settlement import api as settlement_api
    from keerpunt.settlement import import_routes, monitor_routes
    from keerpunt.settlement import routes as settlement_routes
    from keerpunt.settlement import service as settlement_service
    from keerpunt.settlement.kassier_routes import routes as kassier_routes
    from keerpunt.triage import allocation_routes, plain_text
    from keerpunt.triage import routes as triage_routes

    rt = runtime or Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # At midnight a birthday or an end date can change what consent allows: the job
        # redraws the screens of those cases (and catches up on the days the app was down).
        daily = consent_daily.start(rt)
        # What other processes save (commands, other server processes) reaches our screens.
        relay = Relay(rt.engine, rt.sessionmaker, rt.hub)
        await relay.start()
        # Texts older versions stored in plain columns are encrypted in the background: the
        # app does not wait for it, and reads the plain text of a step until it is done.
        app.state.encrypt_plain = plain_text.start(rt)
        yield
        await relay.stop()
        for job in (daily, app.state.encrypt_plain):
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        await rt.engine.dispose()

    routes: list[BaseRoute] = [
        Route("/", home, name="home"),
        Route("/healthz", healthz, name="healthz"),
        Mount("/static", StaticFiles(directory=str(settings.static_dir)), name="static"),
        *auth_routes.routes,
        *triage_routes.routes,
        *allocation_routes.routes,
        *consent_routes.routes,
        *kassier_routes,
        *settlement_routes.routes,
        *monitor_routes.routes,
        *import_routes.routes,
        *settlement_api.routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, runtime=rt)],
        exception_handlers={DomainError: domain_error_handler, 404: not_found, 500: server_error},
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.jinja = make_jinja_env(settings.templates_dir)
    # Live pushes render links outside a request; a request's own url_for takes precedence.
    app.state.jinja.globals["url_for"] = app.url_path_for
    # The main menu links only to the settlement pages the person may open.
    app.state.jinja.globals["settlement_pages"] = settlement_service.menu_pages
    triage_routes.register_realtime(rt.hub, app.state.jinja)
    return app
