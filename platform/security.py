"""HTTP security at the edge: login session loading, CSRF, and security headers.

Pure ASGI middleware so the same checks cover websockets (session + Origin) as well.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keerpunt.platform.db import READ_ONLY
from keerpunt.platform.i18n import N_, current_locale, gettext, negotiate
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, load_principal

ANON_CSRF_COOKIE = "kp_csrf"
# The JSON API authenticates with a bearer token only (keerpunt.settlement.api). Under this
# prefix the login cookie is never read, so a cookie alone carries no authority there and
# CSRF (which guards cookie-authenticated requests) has nothing to protect.
API_PREFIX = "/api/"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_FORM_BYTES = 10 * 1024 * 1024
# A body past the limit is read on (and thrown away) up to this much, so that the browser,
# still sending, receives the answer instead of a broken connection; past it we stop reading.
DRAIN_BYTES = 16 * MAX_FORM_BYTES
# Pages that show "too large" themselves: a form posted to them that is too large gets the
# page (GET, the same path) with status 413 and ``form_too_large`` set in the request state.
# Other forms get the message as text. Either way nothing of the body reaches a handler.
TOO_LARGE_PAGES = frozenset({"/settlement/import"})
TOO_LARGE = N_("Wat u verstuurde is te groot (meer dan %(mb)s MB). Er is niets opgeslagen.")
FORM_TOO_LARGE = "form_too_large"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class SecurityMiddleware:
    """Loads the principal, checks CSRF and Origin, adds security headers."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.signer = SessionSigner(str(runtime.settings.secret_key))
        self.max_age = runtime.settings.session_hours * 3600

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        request = HTTPConnection(scope)
        scope.setdefault("state", {})
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            await self._api(scope, receive, send)
            return
        principal = None
        raw = request.cookies.get(COOKIE_NAME)
        token = self.signer.loads(raw, self.max_age) if raw else None
        if token:
            # Only reads: on SQLite it does not queue for the write lock behind the saves.
            async with self.runtime.sessionmaker(execution_options={READ_ONLY: True}) as db:
                principal = await load_principal(db, token, self.runtime.vault)
        scope["state"]["principal"] = principal
        locale = negotiate(
            request.headers.get("accept-language"),
            principal.locale if principal else request.cookies.get("kp_lang"),
        )
        scope["state"]["locale"] = locale
        current_locale.set(locale)

        anon_csrf = request.cookies.get(ANON_CSRF_COOKIE) or ""
        new_anon_csrf = None
        # Only a page load issues one: parallel sub-requests (assets, favicon) would otherwise
        # each set a different cookie and race the token rendered into the page.
        dest = request.headers.get("sec-fetch-dest", "document")
        if principal is None and not anon_csrf and dest == "document":
            anon_csrf = new_anon_csrf = secrets.token_urlsafe(32)
        expected = principal.csrf_token if principal else anon_csrf
        scope["state"]["csrf_token"] = expected

        if not self._origin_ok(request.headers):
            await self._refuse(scope, receive, send, N_("Dit verzoek komt niet van Keerpunt zelf."))
            return

        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            checked = await self._csrf_supplied(scope, receive)
            if checked is None:
                # Too large to read: the token in it cannot be checked, so nothing of it is
                # used; the sender is told why (not "the form expired", which misleads).
                if scope["path"] not in TOO_LARGE_PAGES:
                    await self._refuse(
                        scope, _no_body, send, TOO_LARGE, mb=MAX_FORM_BYTES // 2**20, status=413
                    )
                    return
                # The page itself (a GET: no change) says so, with status 413.
                scope = {**scope, "method": "GET", "query_string": b""}
                scope["state"][FORM_TOO_LARGE] = True
                receive = _no_body
            elif not checked[1] or not hmac.compare_digest(checked[1].encode(), expected.encode()):
                await self._refuse(
                    scope,
                    receive,
                    send,
                    N_(
                        "Dit formulier is verlopen of niet van deze pagina. "
                        "Laad de pagina opnieuw en probeer het nog eens. Er is niets opgeslagen."
                    ),
                )
                return
            else:
                receive = checked[0]

        headers_to_add = self._security_headers(request)

        too_large = scope["state"].get(FORM_TOO_LARGE, False)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                if too_large and message["status"] == 200:
                    message = {**message, "status": 413}
                headers = MutableHeaders(scope=message)
                for k, v in headers_to_add.items():
                    headers.setdefault(k, v)
                if new_anon_csrf:
                    headers.append(
                        "set-cookie",
                        f"{ANON_CSRF_COOKIE}={new_anon_csrf}; Path=/; HttpOnly; SameSite=Lax"
                        + ("; Secure" if self.runtime.settings.behind_tls else ""),
                    )
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The bearer API: no principal from the cookie, no CSRF, the same security headers.
        The language comes from Accept-Language alone (a machine has no session)."""
        request = HTTPConnection(scope)
        scope["state"]["principal"] = None
        scope["state"]["csrf_token"] = ""
        locale = negotiate(request.headers.get("accept-language"))
        scope["state"]["locale"] = locale
        current_locale.set(locale)
        headers_to_add = self._security_headers(request)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in headers_to_add.items():
                    headers.setdefault(k, v)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _origin_ok(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin == "null":  # privacy settings can hide the origin; the browser still says
            return headers.get("sec-fetch-site") == "same-origin"
        if not origin:
            return True
        host = headers.get("host", "")
        return urlsplit(origin).netloc == host

    async def _csrf_supplied(
        self, scope: Scope, receive: Receive
    ) -> tuple[Receive, str | None] | None:
        """The token the request carries (header or form field) and a receive that gives the
        application the body; None when a form is larger than :data:`MAX_FORM_BYTES` (what
        was sent has then been read and thrown away)."""
        headers = Headers(scope=scope)
        supplied = headers.get("x-csrf-token")
        ctype = headers.get("content-type", "")
        is_form = ctype.startswith(_FORM_TYPES)
        declared = headers.get("content-length", "")
        if is_form and declared.isdecimal() and int(declared) > MAX_FORM_BYTES:
            await _drain(receive, 0)
            return None
        if supplied or not is_form:
            return receive, supplied
        # Read the body once, look for the form field, then replay it to the application.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                if message.get("more_body"):
                    await _drain(receive, size)
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if ctype.startswith("application/x-www-form-urlencoded"):
            values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get("csrf_token")
            return replay, values[0] if values else None
        form = await Request(scope, replay).form()
        value = form.get("csrf_token")
        await form.close()  # an uploaded file is spooled to a temporary file: let it go
        replayed = False  # let the application read the body again
        return replay, value if isinstance(value, str) else None

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        message: str,
        *,
        status: int = 403,
        **params: object,
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        text = gettext(message) % params if params else gettext(message)
        response = PlainTextResponse(text, status_code=status)
        response.headers.update(self._security_headers(HTTPConnection(scope)))
        await response(scope, receive, send)

    def _security_headers(self, request: HTTPConnection) -> dict[str, str]:
        headers = {
            "content-security-policy": (
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
                "form-action 'self'; frame-ancestors 'none'"
            ),
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on
            # form posts, and the Origin check below needs the real origin.
            "referrer-policy": "same-origin",
            "permissions-policy": "camera=(), microphone=(), geolocation=()",
            "cross-origin-opener-policy": "same-origin",
        }
        if not request.url.path.startswith("/static/"):
            headers["cache-control"] = "no-store"
        if self.runtime.settings.behind_tls:
            headers["strict-transport-security"] = "max-age=31536000; includeSubDomains"
        return headers


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _drain(receive: Receive, size: int) -> None:
    """Read the rest of a body and throw it away, up to :data:`DRAIN_BYTES` in all."""
    while size <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            return
