"""Login routes: OpenID Connect for professionals, invitations for families, logout, demo
logins and the language choice. Thin: parse, call :mod:`keerpunt.platform.auth`, render."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from keerpunt.platform import auth, i18n
from keerpunt.platform.errors import DomainError, InvalidInput
from keerpunt.platform.i18n import N_
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner
from keerpunt.platform.web import (
    current,
    field,
    is_htmx,
    render,
    require,
    runtime,
    unit_of_work,
)

OIDC_COOKIE = "kp_oidc"
OIDC_COOKIE_PATH = "/login/oidc"
LANG_COOKIE = "kp_lang"


# ---- edge helpers ----------------------------------------------------------------------------


@asynccontextmanager
async def _transaction(rt: Runtime) -> AsyncIterator[AsyncSession]:
    """One transaction; a refusal that recorded something (a failed attempt, an audit row)
    is committed before it is shown, everything else rolls back."""
    async with rt.sessionmaker() as db:
        await db.begin()
        try:
            yield db
        except DomainError as exc:
            if getattr(exc, "keep_changes", False):
                await db.commit()
            else:
                await db.rollback()
            raise
        except BaseException:
            await db.rollback()
            raise
        await db.commit()


def _message(exc: DomainError) -> str:
    text = i18n.gettext(exc.message)
    return text % exc.params if exc.params else text


def _external_url(request: Request, name: str, **params: Any) -> str:
    """An absolute URL on the configured base URL (what providers and e-mails must see)."""
    path = request.app.url_path_for(name, **params)
    return runtime(request).settings.base_url.rstrip("/") + str(path)


def _oidc_serializer(rt: Runtime) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(rt.settings.secret_key), salt="keerpunt-oidc-login")


def _set_login_cookie(request: Request, response: Response, token: str) -> None:
    settings = runtime(request).settings
    response.set_cookie(
        COOKIE_NAME,
        SessionSigner(str(settings.secret_key)).dumps(token),
        max_age=settings.session_hours * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.behind_tls,
    )


def _logged_in(request: Request, token: str) -> Response:
    response = RedirectResponse(str(request.url_for("home")), status_code=303)
    _set_login_cookie(request, response, token)
    return response


def _locale(request: Request) -> str:
    locale: str = request.scope.get("state", {}).get("locale", i18n.DEFAULT_LOCALE)
    return locale


def _previous_session(request: Request) -> str | None:
    p = current(request)
    return p.session_id if p else None


def _safe_next(raw: str) -> str:
    """Only a path on this site: no scheme, no host, no protocol-relative or backslash tricks."""
    if not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        return "/"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return "/"
    return raw


# ---- professionals: OpenID Connect ---------------------------------------------------------


async def _login_page(
    request: Request,
    *,
    error: str | None = None,
    field_error: str | None = None,
    selected: int | None = None,
    status_code: int = 200,
) -> Response:
    async with runtime(request).sessionmaker() as db:
        organisations = await auth.oidc_organisations(db)
    return render(
        request,
        "auth/login.html",
        {
            "organisations": organisations,
            "error": error,
            "field_error": field_error,
            "selected": selected,
        },
        status_code=status_code,
    )


async def login(request: Request) -> Response:
    if current(request) is not None:
        return RedirectResponse(str(request.url_for("home")), status_code=303)
    return await _login_page(request)


async def oidc_start(request: Request) -> Response:
    rt = runtime(request)
    data = await request.form()
    raw = field(data, "organisation_id")
    org_id = int(raw) if raw.isdigit() else None
    try:
        if org_id is None:
            raise InvalidInput({"organisation_id": N_("Kies uw organisatie.")})
        async with rt.sessionmaker() as db:
            client = await auth.oidc_client(db, rt.settings, org_id)
        url, pending = await auth.begin_oidc_login(
            client, _external_url(request, "auth.oidc_callback")
        )
    except InvalidInput as exc:
        return await _login_page(
            request,
            field_error=i18n.gettext(exc.errors.get("organisation_id", exc.message)),
            status_code=422,
        )
    except DomainError as exc:
        return await _login_page(
            request, error=_message(exc), selected=org_id, status_code=exc.status_code
        )
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        OIDC_COOKIE,
        _oidc_serializer(rt).dumps(pending.to_dict()),
        max_age=auth.OIDC_STATE_MAX_AGE,
        path=OIDC_COOKIE_PATH,
        httponly=True,
        samesite="lax",  # the provider sends the user back with a top-level GET
        secure=rt.settings.behind_tls,
    )
    return response


async def oidc_callback(request: Request) -> Response:
    rt = runtime(request)
    pending = None
    raw = request.cookies.get(OIDC_COOKIE)
    if raw:
        try:
            pending = auth.OidcPending.from_dict(
                _oidc_serializer(rt).loads(raw, max_age=auth.OIDC_STATE_MAX_AGE)
            )
        except BadSignature:
            pending = None
    params = dict(request.query_params)
    redirect_uri = _external_url(request, "auth.oidc_callback")
    try:
        pending = auth.check_oidc_callback(pending, params)
        async with rt.sessionmaker() as db:
            client = await auth.oidc_client(db, rt.settings, pending.organisation_id)
        # Outside any transaction: the provider may take seconds to answer.
        claims = await auth.exchange_oidc_code(client, pending, params["code"], redirect_uri)
        async with _transaction(rt) as db:
            user = await auth.find_professional(db, client.organisation_id, claims)
            token = await auth.start_login(
                db,
                how="oidc",
                hours=rt.settings.session_hours,
                locale=_locale(request),
                user=user,
                previous_session_id=_previous_session(request),
            )
    except DomainError as exc:
        response = await _login_page(request, error=_message(exc), status_code=exc.status_code)
    else:
        response = _logged_in(request, token)
    # The state is single use, whatever the outcome.
    response.delete_cookie(OIDC_COOKIE, path=OIDC_COOKIE_PATH)
    return response


async def logout(request: Request) -> Response:
    rt = runtime(request)
    who = current(request)
    if who is not None:
        async with _transaction(rt) as db:
            await auth.log_out(db, who)
    response = RedirectResponse(str(request.url_for("auth.login")), status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


# ---- families: invitations ------------------------------------------------------------------


async def invitation(request: Request) -> Response:
    token = request.path_params["token"]
    if request.method == "GET":
        try:
            async with runtime(request).sessionmaker() as db:
                await auth.check_invitation(db, token)
        except auth.InvitationProblem as exc:
            return _invitation_page(request, token, problem=_message(exc), status=exc.status_code)
        return _invitation_page(request, token)
    return await _redeem(request, token)


async def _redeem(request: Request, token: str) -> Response:
    rt = runtime(request)
    code = field(await request.form(), "code")
    try:
        async with _transaction(rt) as db:
            redeemed = await auth.redeem_invitation(db, token, code)
            member = await auth.member_for_login(db, redeemed.member_id)
            session_token = await auth.start_login(
                db,
                how="invitation",
                hours=rt.settings.session_hours,
                locale=_locale(request),
                member=member,
                invitation_id=redeemed.invitation_id,
                previous_session_id=_previous_session(request),
            )
    except InvalidInput as exc:
        code_error = exc.errors["code"]  # a Dutch message id, translated here
        return _invitation_page(request, token, code_error=i18n.gettext(code_error), status=422)
    except auth.WrongCode as exc:
        return _invitation_page(request, token, code_error=_message(exc), status=400)
    except auth.InvitationProblem as exc:
        return _invitation_page(request, token, problem=_message(exc), status=exc.status_code)
    return _logged_in(request, session_token)


def _invitation_page(
    request: Request,
    token: str,
    *,
    problem: str | None = None,
    code_error: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "auth/invitation.html",
        {"token": token, "problem": problem, "code_error": code_error},
        status_code=status,
    )


async def invite(request: Request) -> Response:
    who = require(request)
    rt = runtime(request)
    case_id, member_id = request.path_params["case_id"], request.path_params["member_id"]
    async with unit_of_work(request, who) as uow:
        created = await auth.create_invitation(
            uow, member_id, days=rt.settings.invitation_days, case_id=case_id
        )
    context = {
        "invitation": created,
        "link": _external_url(request, "auth.invitation", token=created.link_token),
    }
    template = (
        "auth/_partials/invitation_created.html"
        if is_htmx(request)
        else "auth/invitation_created.html"
    )
    return render(request, template, context)


async def invite_revoke(request: Request) -> Response:
    who = require(request)
    async with unit_of_work(request, who) as uow:
        await auth.revoke_invitation(uow, request.path_params["invitation_id"])
    template = (
        "auth/_partials/invitation_revoked.html"
        if is_htmx(request)
        else "auth/invitation_revoked.html"
    )
    return render(request, template)


# ---- demo -------------------------------------------------------------------------------------


def _demo_only(request: Request) -> Runtime:
    rt = runtime(request)
    if not rt.settings.demo_mode:
        raise HTTPException(status_code=404)
    return rt


async def demo(request: Request) -> Response:
    rt = _demo_only(request)
    async with rt.sessionmaker() as db:
        staff, members = await auth.demo_people(db, rt.vault)
    return render(request, "auth/demo.html", {"staff": staff, "members": members})


async def demo_login(request: Request) -> Response:
    rt = _demo_only(request)
    data = await request.form()
    user_id, member_id = field(data, "user_id"), field(data, "member_id")
    async with _transaction(rt) as db:
        token = await auth.demo_login(
            db,
            user_id=int(user_id) if user_id.isdigit() else None,
            member_id=int(member_id) if member_id.isdigit() else None,
            hours=rt.settings.session_hours,
            locale=_locale(request),
            previous_session_id=_previous_session(request),
        )
    return _logged_in(request, token)


# ---- language -------------------------------------------------------------------------------


async def language(request: Request) -> Response:
    data = await request.form()
    lang = field(data, "lang")
    response = RedirectResponse(_safe_next(field(data, "next")), status_code=303)
    if lang not in i18n.LOCALES:
        return response
    who = current(request)
    if who is not None:
        async with _transaction(runtime(request)) as db:
            await auth.set_session_locale(db, who.session_id, lang)
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=365 * 24 * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=runtime(request).settings.behind_tls,
    )
    return response


routes: list[BaseRoute] = [
    Route("/login", login, name="auth.login", methods=["GET"]),
    Route("/login/oidc", oidc_start, name="auth.oidc_start", methods=["POST"]),
    Route("/login/oidc/callback", oidc_callback, name="auth.oidc_callback", methods=["GET"]),
    Route("/logout", logout, name="auth.logout", methods=["POST"]),
    Route("/i/{token}", invitation, name="auth.invitation", methods=["GET", "POST"]),
    Route(
        "/cases/{case_id:int}/members/{member_id:int}/invitations",
        invite,
        name="auth.invite",
        methods=["POST"],
    ),
    Route(
        "/invitations/{invitation_id:int}/revoke",
        invite_revoke,
        name="auth.invite_revoke",
        methods=["POST"],
    ),
    Route("/demo", demo, name="auth.demo", methods=["GET"]),
    Route("/demo/login", demo_login, name="auth.demo_login", methods=["POST"]),
    Route("/language", language, name="auth.language", methods=["POST"]),
]
