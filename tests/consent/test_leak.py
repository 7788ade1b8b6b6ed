"""The leak test: no personal data reaches anyone consent does not allow, on any page, fragment
or live stream.

A demo-like world (``leak_world``) holds a unique canary string in every personal field of
four cases: consent for a named organisation, no consent, an objection, and a shredded case.
A crawler logs in as every role — coordinator, triage members of different organisations (a
named recipient and one that is not), a triage member at no table, the registrar, the
penvoerder's finance staff, the finance staff of a kassier and of its sub-provider, the RET
manager, a staff member without roles, the municipality's funder, each family member of each
case, and an anonymous visitor — and visits every GET route of the application (taken
from ``app.routes``, so new pages are covered automatically, with the ids of every case,
session, item, consent record and invitation filled in), and every link, form action and htmx
target on the pages it gets — the session steps, the case lifecycle and agenda, the RET
allocation pages, settlement (allocations, deliveries, contracts, the quarter run and its
JW323 files, unpacked; a real kassier ledger and its SEPA payment batch; bank accounts), the
family's consent page, the youth-alone exception and the FHIR export — and sends a bad form to every
POST route that takes one. It also listens to the websocket of every session while others
edit. Whatever it gets must hold no canary the
oracle (in ``leak_world``, written out by hand) does not allow for that viewer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import io
import itertools
import json
import re
import zipfile
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from keerpunt.consent.models import ConsentRecord
from keerpunt.platform.app import create_app
from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import Case, Invitation, LoginSession, Organisation, RoomCounter
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.sessions import COOKIE_NAME, SessionSigner, start_session, token_hash
from keerpunt.platform.settings import Settings
from keerpunt.settlement.api_tokens import Scope, create_token
from keerpunt.settlement.models import Allocation as SettlementAllocation
from keerpunt.settlement.models import SettlementRunLine
from tests.conftest import LiveServer
from tests.consent.leak_world import (
    CASES,
    KASSIER_IBAN,
    KASSIER_READERS,
    OTHER_SUB_GROSS,
    OTHER_SUB_IBAN,
    OTHER_SUB_NET,
    STATEMENT_READERS,
    SUB_IBAN,
    SUB_MARGIN,
    SUB_NET,
    LeakWorld,
    Sees,
    build_leak_world,
    canary,
    may_read_report,
)
from tests.helpers import make_user

N = Sees.NOTHING

pytestmark = pytest.mark.anyio

BASE = "http://testserver"
QUERIES_PER_PATH = 3  # e.g. the quarter overview links to the quarter before and after
_FRAGMENT = re.compile(r"/sessions/\d+/\w+/\d+")  # item routes: htmx fragments
_LINK = re.compile(r'\b(href|hx-get|hx-post|action|src)="([^"]*)"')


async def _login(rt: Runtime, user_id: int | None, member_id: int | None) -> tuple[str, str]:
    """A signed session cookie and its CSRF token."""
    async with rt.sessionmaker() as db, db.begin():
        token = await start_session(db, how="test", hours=1, user_id=user_id, member_id=member_id)
    async with rt.sessionmaker() as db:
        row = await db.get(LoginSession, token_hash(token))
        assert row is not None
        return SessionSigner(str(rt.settings.secret_key)).dumps(token), row.csrf_token


# -- which URLs exist ------------------------------------------------------------------------


async def _param_values(rt: Runtime, world: LeakWorld) -> dict[str, list[str]]:
    """Every id of every kind a route can take (and one that does not exist)."""
    async with rt.sessionmaker() as db:
        records = (await db.scalars(select(ConsentRecord.id))).all()
        invitations = (await db.scalars(select(Invitation.id))).all()
        holders = (await db.scalars(select(SettlementRunLine.holder_id).distinct())).all()
    sessions = [s for ids in world.session_ids.values() for s in ids]
    members = [m for ms in world.family.values() for m in ms.values()]
    return {
        "case_id": [str(c) for c in world.case_ids.values()] + ["99999"],
        "session_id": [str(s) for s in sessions] + ["99999"],
        "record_id": [str(r) for r in records],
        "invitation_id": [str(i) for i in invitations],
        "member_id": [str(m) for m in members],
        "token": [*world.invitation_tokens, "geen-echte-link"],
        "contract_id": ["1", "99999"],
        # a rate that does not exist (removing a real one would succeed: it needs no field)
        "rate_id": ["99999"],
        # whoever declared in a closed run (a kassier's payment batch), and one that did not
        "kassier_id": [*map(str, holders), "99999"],
        **{name: [*map(str, ids), "99999"] for name, ids in world.ids.items()},
        # a closed quarter (its run's files), the current one, and one that cannot be
        "quarter": [*world.quarters, "geen-kwartaal"],
        # every report's unguessable address, and a guess of the same shape
        "public_id": [*world.reports.values(), GUESSED_REPORT],
        # the JSON API (a cookie opens nothing there; the bearer crawl is below) and its
        # token page: only a token that does not exist (revoking a real one would succeed)
        "number": ["T-LEAK-C", "99999"],
        "rest": ["niets-hier"],
        "token_id": ["99999"],
    }


GUESSED_REPORT = "Zm9vYmFyLWVlbi1nb2Vk-Z2VyYWRlbi12ZXJzbGFnLWlk"  # 43 characters, like a real one
TOPICS = ("informing", "municipality", "crisis")  # the plan's agreements (step 5)


def session_scoped(
    path: str, names: list[str], world: LeakWorld, *, few: bool = False
) -> list[tuple[str, str | None]] | None:
    """A route under a session with a second parameter (a plan activity, an arrangement
    line, an agreement's topic): (URL, case letter, "missing" or None). Each id under its own
    session, each under the first session of another case (it must not show there), a
    missing id under a real session, and every real id or topic under a session that does
    not exist (labelled "missing": what a case one may not know of must answer like).
    ``few``: for the bad forms, one id per case and one topic are enough."""
    if len(names) != 2 or names[0] != "session_id":
        return None
    name = names[1]
    if name == "topic":  # the sessions with agreements, and one without
        sessions = [world.session_ids["A"][0], *(world.session_ids[c][-1] for c in world.reports)]
        topics = TOPICS[-1:] if few else TOPICS
        pairs = [(s, t, world.case_of_session(s)) for s in sessions for t in topics]
        pairs += [(99999, t, "missing") for t in topics]
        pairs.append((sessions[0], "geen-onderwerp", None))
    elif name in world.session_ids_of:
        own = world.session_ids_of[name]
        if few:
            cases = dict.fromkeys(world.case_of_session(s) for s, _i in own)
            own = [next(p for p in own if world.case_of_session(p[0]) == c) for c in cases]
        firsts = [ids[0] for ids in world.session_ids.values()]
        pairs = [(s, str(i), world.case_of_session(s)) for s, i in own]
        for case in {world.case_of_session(s) for s, _i in own}:  # one per case suffices
            i = next(i for s, i in own if world.case_of_session(s) == case)
            other = firsts[(CASES.index(case or "A") + 1) % len(firsts)]
            pairs.append((other, str(i), None))
        pairs += [(99999, str(i), "missing") for _s, i in own[:1]]
        pairs.append((own[0][0], "99999", None))
    else:
        return None
    out = []
    for session, value, label in pairs:
        url = path.replace("{session_id:int}", str(session))
        out.append((re.sub(r"\{" + name + r"(:\w+)?\}", value, url), label))
    return out


def _item_paths(path: str, world: LeakWorld) -> list[str]:
    """A factor/goal route: every real item under its own session, and each session's first
    item under the session of the next case (it must not show there)."""
    triples = list(world.items)
    sessions = [ids[0] for ids in world.session_ids.values()]
    firsts = {s: (k, i) for s, k, i in reversed(world.items)}
    for n, s in enumerate(sessions):
        other = sessions[(n + 1) % len(sessions)]
        if s in firsts:
            triples.append((other, *firsts[s]))
    triples.append((sessions[0], "factorx", world.items[0][2]))
    return [
        path.replace("{session_id:int}", str(s))
        .replace("{kind}", k)
        .replace("{item_id:int}", str(i))
        for s, k, i in triples
    ]


def route_urls(app: Any, values: dict[str, list[str]], world: LeakWorld) -> tuple[list, list]:
    """GET URLs and websocket paths of every route, ids filled in. A route with a parameter
    the crawler does not know fails the test: teach it, so no new page goes unchecked."""
    gets: list[str] = []
    sockets: list[str] = []
    for route in app.routes:
        if isinstance(route, Mount):
            continue  # static files: no personal data by construction
        assert isinstance(route, Route | WebSocketRoute), route
        names = list(route.param_convertors)
        if isinstance(route, Route) and "GET" not in (route.methods or ()):
            continue
        if {"kind", "item_id"} <= set(names):
            gets += _item_paths(route.path, world)
            continue
        scoped = session_scoped(route.path, names, world)
        if scoped is not None:
            gets += [u for u, _case in scoped]
            continue
        unknown = [n for n in names if n not in values]
        assert not unknown, f"teach the leak crawler the route parameter(s) {unknown}"
        paths = []
        for combo in itertools.product(*(values[n] for n in names)):
            path = route.path
            for name, value in zip(names, combo, strict=True):
                path = re.sub(r"\{" + name + r"(:\w+)?\}", value, path)
            paths.append(path)
        (sockets if isinstance(route, WebSocketRoute) else gets).extend(paths)
    return gets, sockets


# -- the crawl --------------------------------------------------------------------------------


@dataclass
class Seen:
    """Everything one viewer got, by where they got it."""

    viewer: str
    pages: dict[str, str] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # GET URL -> status code

    def add(self, where: str, text: str) -> None:
        self.pages[where] = self.pages.get(where, "") + text

    def leaks(self, forbidden: set[str], live: dict[str, set[str]]) -> dict[str, list[str]]:
        """What holds a forbidden canary, by where; ``live``: what is forbidden instead on
        the live stream of a meeting the family takes part in (by its path)."""
        out: dict[str, list[str]] = {}
        for where, text in self.pages.items():
            banned = live.get(where.removeprefix("WS "), forbidden)
            if not banned:
                continue
            pattern = re.compile("|".join(re.escape(c) for c in sorted(banned, key=len)[::-1]))
            found = sorted(set(pattern.findall(text)))
            if found:
                out[where] = found
        return out

    def contains(self, value: str) -> bool:
        return any(value in text for text in self.pages.values())


def _links(page_url: str, body: str) -> Iterable[tuple[str, bool]]:
    """Same-site URLs on a page, with whether htmx would request them."""
    for attr, raw in _LINK.findall(body):
        url = urljoin(page_url, html.unescape(raw))
        parts = urlsplit(url)
        if parts.netloc != urlsplit(BASE).netloc or parts.path.startswith("/static/"):
            continue
        yield parts.path + (f"?{parts.query}" if parts.query else ""), attr.startswith("hx-")


def _readable(r: httpx.Response) -> str:
    """The body as text; a ZIP (the JW323 declarations) unpacked, every file in it; a PDF
    (the report) as its text and metadata."""
    kind = r.headers.get("content-type", "")
    if r.status_code == 200 and ("zip" in kind or "spreadsheetml" in kind):  # also the XLSX
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            return "\n".join(archive.read(n).decode("utf-8", "replace") for n in archive.namelist())
    if r.status_code == 200 and "pdf" in kind:
        pdf = PdfReader(io.BytesIO(r.content))
        meta = "\n".join(str(v) for v in (pdf.metadata or {}).values())
        return meta + "\n" + "\n".join(page.extract_text() for page in pdf.pages)
    return r.text


def _unechoed(url: str, text: str) -> str:
    """A page may echo the address it was asked for (the 'not found' page, a return
    address): what the viewer typed in is not something they got. So an unguessable id in
    the address (a report's) is left out of that page's text before it is scanned."""
    for part in re.split(r"[/?&=.]", url):
        if len(part) >= 20:
            text = text.replace(part, "")
    return text


async def crawl(app: Any, cookie: str | None, start: list[str], seen: Seen) -> None:
    transport = httpx.ASGITransport(app=app)
    cookies = {COOKIE_NAME: cookie} if cookie else {}
    async with httpx.AsyncClient(transport=transport, base_url=BASE, cookies=cookies) as client:
        queue: deque[tuple[str, bool]] = deque(
            (u, bool(_FRAGMENT.search(u))) for u in ["/", *start]
        )
        visited: set[str] = set()
        queries: dict[str, int] = {}  # path -> distinct query strings fetched
        while queue:
            url, htmx = queue.popleft()
            path = url.split("?", 1)[0]
            if url in visited or (path != url and queries.get(path, 0) >= QUERIES_PER_PATH):
                continue
            visited.add(url)
            if path != url:
                queries[path] = queries.get(path, 0) + 1
            r = await client.get(url, headers={"HX-Request": "true"} if htmx else {})
            assert r.status_code < 500, f"{seen.viewer} GET {url}: {r.status_code}"
            seen.status[url] = r.status_code
            headers = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
            text = _unechoed(url, headers + "\n" + _readable(r))
            seen.add(f"GET {url}{' (htmx)' if htmx else ''}", text)
            for target in (r.headers.get("location"), r.headers.get("hx-redirect")):
                if target:
                    queue.extend(_links(BASE + url, f'href="{target}"'))
            if "html" in r.headers.get("content-type", ""):
                queue.extend(_links(BASE + url, r.text))


# -- bad forms -------------------------------------------------------------------------------

# POST routes the crawler sends an empty form (only the CSRF token) to: each must refuse it
# without changing anything, and its error page must leak nothing either. The others are
# left alone, with the reason. A new POST route fails the test until it is in one of the two.
BAD_FORM_PROBED = frozenset(
    {
        "triage.register_submit",
        "triage.plan_session",
        "triage.factor_add",
        "triage.goal_add",
        "triage.item_update",
        "consent.record",
        "settlement.contract_add",
        "settlement.contract_end",
        "settlement.delivery_add",
        "settlement.run_close",
        "settlement.bank_account_add",
        "settlement.import_upload",
        "settlement.proposal_confirm",
        "triage.factor_import",
        "triage.link_add",
        "triage.note_add",
        "triage.screen",
        "triage.quality",
        "triage.perspective_save",
        "triage.case_step",
        "triage.allocation_provider_save",
        "triage.allocation_request_submit",
        "triage.allocation_needs_save",
        "triage.allocation_decide",
        "triage.allocation_dispute_open",
        "triage.allocation_dispute_step",
        "consent.youth_alone",
        "consent.family_withdraw",
        "triage.arrangement_line_add",
        "triage.arrangement_agree",
        "triage.arrangement_designate",
        "triage.activity_add",
        "triage.activity_update",
        "triage.activity_status",
        "triage.agreement_save",
        "triage.finish",
        "api.deliveries_post",
        "api.fallback",
        "settlement.api_token_create",
        "settlement.api_token_revoke",
        "settlement.triage_rate_add",
        "settlement.triage_budget_set",
        "settlement.triage_rate_remove",
    }
)
NOT_PROBED = {
    "auth.oidc_start": "sends the browser to the organisation's login page",
    "auth.logout": "would end the crawler's own login",
    "auth.invitation": "a wrong code counts towards locking the invitation",
    "auth.invite": "creates an invitation; needs no fields",
    "auth.invite_revoke": "revokes an invitation; needs no fields",
    "auth.demo_login": "demo mode only",
    "auth.language": "sets the language cookie only",
    "triage.close": "closes the session; needs no fields",
    "consent.withdraw": "withdraws a consent; needs no fields",
    "consent.youth_alone_end": "ends a youth-alone exception; needs no fields",
    "triage.link_delete": "removes a factor link; needs no fields",
    "triage.item_private": "without a field it lifts 'niet over mij zonder mij': a valid request",
    "triage.arrangement_line_remove": "removes a line of help; needs no fields",
    "triage.arrangement_revise": "starts a new version of an agreed arrangement; needs no fields",
}


def bad_form_posts(
    app: Any, world: LeakWorld, values: dict[str, list[str]]
) -> list[tuple[str, str | None]]:
    """(URL, case letter or None) for every probed POST route, with one nonexistent id."""
    first_session = {c: ids[0] for c, ids in world.session_ids.items()}
    first_item = {s: (k, i) for s, k, i in reversed(world.items)}
    out: list[tuple[str, str | None]] = []
    for route in app.routes:
        if not isinstance(route, Route) or "POST" not in (route.methods or ()):
            continue
        assert route.name in BAD_FORM_PROBED or route.name in NOT_PROBED, (
            f"decide whether the leak crawler sends a bad form to {route.name}"
        )
        if route.name in NOT_PROBED:
            continue
        names = set(route.param_convertors)
        path = route.path
        if not names:
            out.append((path, None))
        elif names == {"case_id"}:
            out += [(path.replace("{case_id:int}", str(i)), c) for c, i in world.case_ids.items()]
            out.append((path.replace("{case_id:int}", "99999"), "missing"))
        elif names == {"session_id"}:
            out += [(path.replace("{session_id:int}", str(s)), c) for c, s in first_session.items()]
            out.append((path.replace("{session_id:int}", "99999"), "missing"))
        elif names == {"session_id", "kind", "item_id"}:
            for c, sid in first_session.items():
                kind, item = first_item[sid]
                out.append((f"/triage/sessions/{sid}/{kind}/{item}", c))
            out.append((f"/triage/sessions/99999/goal/{world.items[0][2]}", "missing"))
        elif names == {"contract_id"}:
            out.append((path.replace("{contract_id:int}", "99999"), None))
        elif (
            scoped := session_scoped(path, list(route.param_convertors), world, few=True)
        ) is not None:
            out += scoped
        else:
            out += _posts_by_id(route, world, values)
    return out


def _posts_by_id(
    route: Route, world: LeakWorld, values: dict[str, list[str]]
) -> list[tuple[str, str | None]]:
    """Every real id of the route's parameters (labelled with its case where the world knows
    it) and one that does not exist."""
    names = list(route.param_convertors)
    unknown = [n for n in names if n not in values and n != "action"]
    assert not unknown, f"teach the leak crawler the parameters of {route.name}: {unknown}"
    choices: list[list[tuple[str | None, str]]] = []
    for name in names:
        if name == "action":  # a dispute's next step
            choices.append([(None, "escalate"), (None, "resolve")])
        else:
            real = [v for v in values[name] if v != "99999"]
            case = world.id_case.get(name)
            choices.append([(case, v) for v in real] + [("missing", "99999")])
    out: list[tuple[str, str | None]] = []
    for combo in itertools.product(*choices):
        path = route.path
        for name, (_case, value) in zip(names, combo, strict=True):
            path = re.sub(r"\{" + name + r"(:\w+)?\}", value, path)
        labels = [c for c, _v in combo if c is not None]
        out.append((path, "missing" if "missing" in labels else (labels[0] if labels else None)))
    return out


def _shape(url: str) -> str:
    """The route a URL belongs to, ids left out."""
    return re.sub(r"/(factor|goal)/", "/KIND/", re.sub(r"/\d+", "/N", url))


async def post_bad_forms(
    app: Any, cookie: str | None, csrf: str, posts: list[tuple[str, str | None]], seen: Seen
) -> dict[str, int]:
    """Post an empty form everywhere; returns the status per URL."""
    transport = httpx.ASGITransport(app=app)
    cookies = {COOKIE_NAME: cookie} if cookie else {}
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(transport=transport, base_url=BASE, cookies=cookies) as client:
        for url, _case in posts:
            for htmx in (False, True):
                r = await client.post(
                    url,
                    data={"csrf_token": csrf},
                    headers={"HX-Request": "true"} if htmx else {},
                )
                assert r.status_code < 500, f"{seen.viewer} POST {url}: {r.status_code}"
                assert r.status_code not in {200, 204, 303}, f"{seen.viewer} POST {url} took it"
                headers = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
                seen.add(f"POST {url}", headers + "\n" + r.text)
                statuses[url] = r.status_code
    return statuses


# -- the live streams -------------------------------------------------------------------------


@dataclass
class Stream:
    viewer: str
    path: str
    messages: list[str] = field(default_factory=list)
    refused: bool = False
    closed: int | None = None  # a close code from the server
    last_seq: int = 0


async def _listen(
    server: LiveServer,
    cookie: str | None,
    stream: Stream,
    stop: asyncio.Event,
    opening: asyncio.Semaphore,
) -> None:
    headers = {"Origin": server.url}
    if cookie:
        headers["Cookie"] = f"{COOKIE_NAME}={cookie}"
    try:
        async with opening:  # a few handshakes at a time, like people arriving
            ws = await connect(
                server.url.replace("http", "ws") + stream.path, additional_headers=headers
            )
        async with ws:
            await ws.send(json.dumps({"type": "resume", "after": 0}))
            while not stop.is_set():
                try:
                    msg = str(await asyncio.wait_for(ws.recv(), 0.2))
                except TimeoutError:
                    continue
                stream.messages.append(msg)
                for seq in re.findall(r'id="kp-seq" data-seq="(\d+)"', msg):
                    stream.last_seq = max(stream.last_seq, int(seq))
    except InvalidStatus:
        stream.refused = True  # not let in at all
    except ConnectionClosed as closed:
        stream.closed = closed.rcvd.code if closed.rcvd else -1


async def _room_seq(rt: Runtime, session_id: int) -> int:
    async with rt.sessionmaker() as db:
        seq = await db.scalar(
            select(RoomCounter.last_seq).where(RoomCounter.room == f"triage:{session_id}")
        )
        return seq or 0


async def _until_caught_up(rt: Runtime, streams: list[Stream], ids: dict[str, int]) -> None:
    for _ in range(150):  # a machine under load may take a while; not a timing test
        behind = [
            s for s in streams if not s.refused and s.last_seq < await _room_seq(rt, ids[s.path])
        ]
        broken = [(s.viewer, s.path, s.closed) for s in behind if s.closed is not None]
        assert not broken, f"the server closed live streams: {broken}"
        if not behind:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"streams did not catch up: {[(s.viewer, s.path) for s in behind]}")


async def _edit_live(rt: Runtime, server: LiveServer, world: LeakWorld) -> None:
    """Others edit while everyone listens: through the live server, as users do."""
    a = world.session_ids["A"][0]
    case_a = world.case_ids["A"]

    async def post(who: tuple[int | None, int | None], url: str, data: dict[str, str]) -> None:
        cookie, csrf = await _login(rt, *who)
        async with httpx.AsyncClient(base_url=server.url, cookies={COOKIE_NAME: cookie}) as h:
            r = await h.post(url, data=data, headers={"X-CSRF-Token": csrf})
            assert r.status_code in {200, 303}, (url, r.status_code, r.text[:300])

    registrar = (world.staff["registrar"].id, None)
    sanne = (world.staff["sanne_accare"].id, None)
    parent = (None, world.family["A"]["parent1"])
    live = world.personal(canary("live-factor-registrar", "A"), "A")
    await post(
        registrar,
        f"/triage/sessions/{a}/factors",
        {"life_area": "school", "kind": "protective", "text": live},
    )
    anon = canary("live-factor-sanne", "A")
    world.canaries[anon] = ("A", Sees.TABLE)  # Sanne is not named in A's consent
    await post(
        sanne,
        f"/triage/sessions/{a}/factors",
        {"life_area": "home", "kind": "protective", "text": anon},
    )
    goal = next(i for s, k, i in world.items if s == a and k == "goal")
    edited = world.personal(canary("live-goal-edited", "A"), "A")
    await post(parent, f"/triage/sessions/{a}/goal/{goal}", {"text": edited, "version": "1"})
    # A consent for another purpose: every screen of A is rendered again (consent.changed).
    await post(
        registrar,
        f"/cases/{case_a}/consents",
        {
            "subject_member_id": str(world.family["A"]["youth"]),
            "purpose": "report_sharing",
            "recipient": "all",
            "decision": "consent",
            "obtained_how": "phone",
            "explanation": world.personal(canary("live-explanation", "A"), "A"),
        },
    )


async def listen_while_editing(
    rt: Runtime, server: LiveServer, world: LeakWorld, sockets: list[str], cookies: dict
) -> list[Stream]:
    stop, opening = asyncio.Event(), asyncio.Semaphore(4)
    ids = {p: int(p.split("/")[3]) for p in sockets if "/99999/" not in p}
    own = {
        f"family:{case}:{key}": {f"/triage/sessions/{s}/ws" for s in world.session_ids[case]}
        for case, members in world.family.items()
        for key in members
    }
    # Staff listen everywhere; a family member at their own table (that they are refused
    # elsewhere is the same check as the session page, which the crawl visits); an
    # anonymous visitor tries one room.
    streams = [
        Stream(v, p)
        for v in cookies
        for p in ids
        if (v in own and p in own[v]) or (v not in own and v != "anonymous")
    ]
    streams.append(Stream("anonymous", next(iter(ids))))
    tasks = [
        asyncio.create_task(_listen(server, cookies[s.viewer], s, stop, opening)) for s in streams
    ]
    await asyncio.sleep(0.5)
    await _until_caught_up(rt, streams, ids)
    await _edit_live(rt, server, world)
    await _until_caught_up(rt, streams, ids)
    stop.set()
    await asyncio.gather(*tasks)
    return streams


# -- the test ---------------------------------------------------------------------------------


@pytest.fixture
async def pooled_app(settings: Settings) -> AsyncIterator[Any]:
    """The application with a connection pool, as in production: thousands of requests."""
    rt = Runtime.build(settings)
    yield create_app(settings, runtime=rt)
    await rt.engine.dispose()


async def crawl_api(rt: Runtime, app: Any, world: LeakWorld) -> dict[str, str]:
    """Every API read, and a refused and an accepted post, with a bearer token of the
    organisation that holds C's toewijzing; the response texts by request."""
    async with rt.sessionmaker() as db:
        holder = await db.scalar(
            select(SettlementAllocation.provider_id).where(
                SettlementAllocation.number == "T-LEAK-C"
            )
        )
        organisation = await db.get(Organisation, holder)
    assert organisation is not None
    clerk = await make_user(rt, organisation, "Fenna Factuur", "finance")
    today = dt.datetime.now(AMSTERDAM).date()
    async with rt.unit_of_work(staff_principal(clerk)) as uow:
        new = await create_token(uow, [s.value for s in Scope], None, replace=True, today=today)
    auth = {"Authorization": f"Bearer {new.secret}"}
    month = today.replace(day=1).isoformat()
    line = {
        "reference": "leak-1",
        "allocation_number": "T-LEAK-C",
        "product_code": "45A52",
        "start": month,
        "end": month,
        "volume": 1,
    }
    pages: dict[str, str] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=auth) as client:
        for body in ({"deliveries": [{**line, "volume": 9999}]}, {"deliveries": [line]}):
            r = await client.post("/api/v1/deliveries", json=body)
            assert r.status_code in {201, 422}, r.text
            pages[f"POST /api/v1/deliveries {body}"] = r.text
        for url in (
            "/api/v1/openapi.json",
            "/api/v1/allocations",
            "/api/v1/allocations/T-LEAK-C",
            *(f"/api/v1/deliveries?period={q}" for q in world.quarters),
            f"/api/v1/deliveries?period={month[:7]}",
        ):
            r = await client.get(url)
            assert r.status_code == 200, (url, r.text)
            pages[f"GET {url}"] = "\n".join(f"{k}: {v}" for k, v in r.headers.items()) + r.text
    return pages


def _amount(cents: int) -> str:
    """An amount as a page shows it in Dutch, without the euro sign: 8237 -> "82,37"."""
    euros, rest = divmod(cents, 100)
    return f"{euros:,}".replace(",", ".") + f",{rest:02d}"


def check_statements_and_kassier(world: LeakWorld, seen: dict[str, Seen]) -> None:
    """Each statement (page, PDF, CSV) reaches only its own provider's staff and the
    penvoerder's finance staff; the kassier's ledger and payment batch only the kassier's
    finance staff and the penvoerder's (leak_world.KASSIER_READERS); a sub-provider never
    sees another's margin or account; and none of it holds anything of a case, not even a
    pseudonym: they go by allocation number."""
    closed = world.quarters[0]
    p = world.providers
    for viewer, got in seen.items():
        for name, provider in p.items():
            base = f"/settlement/run/{closed}/statement/{provider}"
            allowed = viewer in STATEMENT_READERS[name]
            for suffix in ("", ".pdf", ".csv"):
                status = got.status[base + suffix]
                assert (status == 200) == allowed, (viewer, name, suffix, status)
                assert status in {200, 404} or viewer == "anonymous", (viewer, name, status)
            for page in ("1", "2", "x"):  # one page each here: 2 and x do not exist
                status = got.status[f"{base}?page={page}"]
                assert (status == 200) == (allowed and page == "1"), (viewer, name, page, status)
        # The kassier: a real ledger and batch, for its readers only; "not found" for other
        # staff and family, the login page for an anonymous visitor.
        page_url = f"/settlement/kassier/{closed}"
        batch_url = f"{page_url}/{p['kassier']}/betaalopdracht.xml"
        reader = viewer in KASSIER_READERS
        for url in (page_url, batch_url):
            status = got.status[url]
            expected = 200 if reader else 303 if viewer == "anonymous" else 404
            assert status == expected, (viewer, url, status)
        # Karakter holds an allocation but is no kassier: no batch, for anyone.
        assert got.status[f"{page_url}/{p['karakter']}/betaalopdracht.xml"] != 200, viewer
        index = got.pages.get("GET /settlement/kassier", "")
        assert (page_url in index) == reader, viewer
        # Altra's margin, what it is paid and its account: the penvoerder, the kassier and
        # Altra itself. Ambiq's: not Altra. (Organisation names are no secret: pickers list
        # every provider.)
        own = reader or viewer == "sub_provider_finance"
        for value, may in (
            (_amount(SUB_MARGIN), own),
            (_amount(SUB_NET), own),
            (SUB_IBAN, own),
            (_amount(OTHER_SUB_GROSS), reader),
            (_amount(OTHER_SUB_NET), reader),
            (OTHER_SUB_IBAN, reader),
        ):
            if not may:
                assert not got.contains(value), (viewer, value)
    # What the readers get is real: the ledger, the margins, the SEPA file.
    for viewer in KASSIER_READERS:
        got = seen[viewer]
        page = got.pages[f"GET /settlement/kassier/{closed}"]
        for value in ("Horizon", "Altra", "Ambiq", _amount(SUB_MARGIN), _amount(SUB_NET)):
            assert value in page, (viewer, value)
        batch = got.pages[f"GET /settlement/kassier/{closed}/{p['kassier']}/betaalopdracht.xml"]
        assert "pain.001.001.03" in batch and KASSIER_IBAN in batch, viewer
        assert SUB_IBAN in batch and OTHER_SUB_IBAN in batch, viewer
        total = SUB_NET + OTHER_SUB_NET
        assert f"<CtrlSum>{total // 100}.{total % 100:02d}</CtrlSum>" in batch, viewer
        statement = got.pages[f"GET /settlement/run/{closed}/statement/{p['kassier']}"]
        assert "Ambiq" in statement and _amount(SUB_MARGIN) in statement, viewer
    sub = seen["sub_provider_finance"].pages[f"GET /settlement/run/{closed}/statement/{p['sub']}"]
    assert "Horizon" in sub and _amount(SUB_MARGIN) in sub and _amount(SUB_NET) in sub
    assert "T-LEAK-K" in sub
    # Nothing of a case, not even its pseudonym, on any statement or kassier page or file
    # (the "not found" page of a family member may show their own case around it).
    everything = set(world.canaries) | set(world.reports.values())
    for viewer, got in seen.items():
        for url, status in got.status.items():
            if status == 200 and ("/settlement/kassier" in url or "/statement/" in url):
                text = got.pages[f"GET {url}"]
                found = [c for c in everything if c in text]
                assert not found, (viewer, url, found)


@pytest.mark.timeout(600)  # thousands of requests; slow only on a machine under load
async def test_no_canary_reaches_anyone_consent_does_not_allow(
    pooled_app: Any, runtime: Runtime, live_server: LiveServer
) -> None:
    app = pooled_app
    world = await build_leak_world(runtime)
    values = await _param_values(runtime, world)
    gets, sockets = route_urls(app, values, world)
    # The statement's web page comes a page of lines at a time (?page=): the pages beyond the
    # first, and numbers that are no page, answer like any other statement.
    closed = world.quarters[0]
    gets += [
        f"/settlement/run/{closed}/statement/{provider}?page={page}"
        for provider in world.ids["provider_id"]
        for page in ("1", "2", "x")
    ]
    viewers = world.viewers()
    cookies = {
        v: (await _login(runtime, *ids))[0] if ids != (None, None) else None
        for v, ids in viewers.items()
    }
    streams = await listen_while_editing(runtime, live_server, world, sockets, cookies)
    seen = {v: Seen(v) for v in viewers}
    for s in streams:
        seen[s.viewer].add(f"WS {s.path}", "\n".join(s.messages))
    limit = asyncio.Semaphore(4)

    async def crawl_as(viewer: str) -> None:
        async with limit:
            await crawl(app, cookies[viewer], gets, seen[viewer])

    await asyncio.gather(*(crawl_as(v) for v in cookies))

    # A case a viewer may not know of answers exactly like one that does not exist.
    letter = {f"/cases/{i}": c for c, i in world.case_ids.items()}
    letter |= {f"/triage/sessions/{n}": c for c, ids in world.session_ids.items() for n in ids}
    compared = 0
    for viewer, s in seen.items():
        hidden = {c for c, sees in zip(CASES, world.oracle(viewer), strict=True) if sees is N}
        for url, status in s.status.items():
            m = re.match(r"(/(?:cases|triage/sessions)/)(\d+)(/[^?]*)?$", url)
            if not m or letter.get(m.group(1) + m.group(2)) not in hidden:
                continue
            twin = url.replace(m.group(1) + m.group(2), m.group(1) + "99999", 1)
            if twin in s.status:
                assert status == s.status[twin], (viewer, url, status, s.status[twin])
                compared += 1
    assert compared > 50, compared

    # Bad forms, as staff, one family member per case and an anonymous visitor.
    posts = bad_form_posts(app, world, values)
    prober = [v for v in viewers if not v.startswith("family:") or v.endswith(":parent1")]
    for viewer in prober:
        user_id, member_id = viewers[viewer]
        cookie, csrf = (
            await _login(runtime, user_id, member_id) if user_id or member_id else ("", "")
        )
        statuses = await post_bad_forms(app, cookie or None, csrf, posts, seen[viewer])
        # A case this viewer may not know of answers exactly like one that does not exist.
        missing = {_shape(u): st for u, c in posts if c == "missing" for st in [statuses[u]]}
        for url, case in posts:
            if case in CASES and world.oracle(viewer)[CASES.index(case)] is Sees.NOTHING:
                shape = _shape(url)
                assert statuses[url] == missing[shape], (viewer, url, statuses[url], missing[shape])

    # The family listens to each meeting of its own case: it takes part, so consent may allow
    # the table more (consent.rules: the family at the table); the oracle says how much.
    leaks = {}
    for v, s in seen.items():
        live = {
            path: world.forbidden(v, family_at_table=case)
            for path in sockets
            if (case := world.case_of_session(int(path.split("/")[3]))) is not None
        }
        if found := s.leaks(world.forbidden(v), live):
            leaks[v] = found
    assert not leaks, json.dumps(leaks, indent=1)[:6000]

    # The JSON API with the token of the provider holding C's toewijzing: the allocation
    # number and nothing personal of any case, whatever consent allows its staff.
    api_pages = await crawl_api(runtime, app, world)
    assert "T-LEAK-C" in api_pages["GET /api/v1/allocations"]
    everything = set(world.canaries) | set(world.reports.values())
    found = {where: sorted(c for c in everything if c in text) for where, text in api_pages.items()}
    assert not any(found.values()), found

    # The crawl is not blind: everyone sees what they are allowed to see.
    for viewer in viewers:
        for case, sees in zip(CASES, world.oracle(viewer), strict=True):
            if sees is Sees.FULL:
                name = canary("youthname", case)
                assert seen[viewer].contains(name), (viewer, name)
    assert seen["ruud_named_karakter"].contains(canary("live-factor-registrar", "A"))
    # ... on the pages beyond the table too.
    assert seen["registrar"].contains(canary("youth-alone-reason", "A"))
    assert seen["ret_manager"].contains(canary("ret-reason", "B"))
    assert seen["ret_manager"].contains(canary("ret-dispute-note", "B"))
    for viewer in ("finance_penvoerder", "ruud_named_karakter"):  # C's toewijzing: the holder
        assert seen[viewer].contains("T-LEAK-C"), viewer
    closed = world.quarters[0]
    assert seen["finance_penvoerder"].status[f"/settlement/run/{closed}/jw323.zip"] == 200
    check_statements_and_kassier(world, seen)
    # The triage-team rates and budgets are the penvoerder's finance staff's page alone.
    for viewer in viewers:
        status = seen[viewer].status["/settlement/triage-rates"]
        assert (status == 200) is (viewer == "finance_penvoerder"), (viewer, status)
    assert seen["coordinator"].status[f"/cases/{world.case_ids['A']}/consents.fhir.json"] == 200
    # The funder's monitor (page, XLSX, CSV) was read, and holds no case at all: not even a
    # pseudonym leaves the care chain.
    monitor = {u: t for u, t in seen["finance_penvoerder"].pages.items() if "/monitor" in u}
    assert any(".xlsx" in u for u in monitor) and any(".csv" in u for u in monitor), monitor.keys()
    async with runtime.sessionmaker() as db:
        pseudonyms = (await db.scalars(select(Case.pseudonym))).all()
    assert not [(u, p) for u, t in monitor.items() for p in pseudonyms if p in t]
    # The report (web page and PDF) reaches exactly the parties the family allowed; anyone
    # left out gets "not found", like for an address guessed.
    for viewer in viewers:
        for case, public_id in world.reports.items():
            for url in (f"/triage/reports/{public_id}", f"/triage/reports/{public_id}.pdf"):
                status = seen[viewer].status[url]
                if viewer == "anonymous":
                    assert status != 200, (viewer, url)
                else:
                    assert status == (200 if may_read_report(viewer, case) else 404), (
                        viewer,
                        case,
                        url,
                        status,
                    )
        if viewer != "anonymous":
            assert seen[viewer].status[f"/triage/reports/{GUESSED_REPORT}"] == 404, viewer
    a_pdf = f"GET /triage/reports/{world.reports['A']}.pdf"
    assert (
        canary("share-ruud_named_karakterreported", "A") in seen["ruud_named_karakter"].pages[a_pdf]
    )
    assert canary("agreement-crisis-ruud_named_karakter", "A") in seen["registrar"].pages[a_pdf]
    b_pdf = f"GET /triage/reports/{world.reports['B']}.pdf"
    assert canary("agreement-municipality-sanne_accare", "B") in seen["sanne_accare"].pages[b_pdf]
    assert canary("activity-what-registrarreported", "B") in seen["family:B:parent1"].pages[b_pdf]
    assert seen["ruud_named_karakter"].contains(canary("activity-who-sanne_accare", "A"))
    assert any(s.viewer == "ruud_named_karakter" and not s.refused for s in streams)
    assert all(
        s.refused for s in streams if s.viewer in {"anonymous", "outsider_staff", "funder_gemeente"}
    )
