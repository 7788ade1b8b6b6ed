"""Renders triage-room events as htmx out-of-band fragments for everyone in a room.

Each viewer gets the item as *they* may see it: consent decides, at every push, and so does
"niet over mij zonder mij" (who is connected to the meeting right now). When the consent of a
case changes (``consent.changed``, saved in every room of the case), each viewer gets
everything personal on the page again — title, invited people, the steps with every item and
its author, who is present — as it is allowed for them now.

A push is rendered for the whole room in one transaction: who may still follow the room and
what consent allows each viewer are decided for all viewers at once
(``consent.disclosures_for``, one audit row per viewer), then each distinct view is drawn
once — viewers who see the same thing (same consent level, language, family member, role
controls, authorship of the items shown) share it — and each viewer's own CSRF token is put
into their copy. Rare, whole-page redraws (consent changed, the session closed, the family
came or went) are drawn per viewer, still in the one transaction.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Awaitable, Callable, Hashable, Sequence
from functools import cache

import jinja2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Router

from keerpunt.consent import service as consent
from keerpunt.consent.service import Disclosure, DisclosureDecision
from keerpunt.platform.errors import NotFound
from keerpunt.platform.i18n import current_locale
from keerpunt.platform.models import Case, RoomEvent
from keerpunt.platform.principal import Principal
from keerpunt.platform.realtime import Update
from keerpunt.platform.uow import CONSENT_CHANGED, UnitOfWork, register_case_rooms
from keerpunt.triage import arrangement, plan, service
from keerpunt.triage.models import (
    Factor,
    Goal,
    StepNote,
    TriageSession,
)
from keerpunt.triage.table_rows import TableRows
from keerpunt.triage.vocab import VOCAB

ITEM_KINDS = frozenset({"factor", "goal", "note"})
_STEP_KINDS = frozenset({"line", "arrangement", "activity", "plan"})  # steps 4 and 5
# Item events: created (added to its list), moved (to another list: a factor structured
# into a life area), and updated / flagged / linked / unlinked (re-rendered in place).


@cache
def _router() -> Router:
    from keerpunt.triage.routes import routes  # the routes module registers this renderer

    return Router(routes)


def _url_for(name: str, /, **params: object) -> str:
    """Paths by route name, as templates write them (a push has no request to ask)."""
    return str(_router().url_path_for(name, **params))


_CSRF_STAND_IN = f"kp-csrf-{secrets.token_hex(16)}"  # unguessable: no text can contain it


async def rooms_of_case(db: AsyncSession, case_id: int) -> list[str]:
    """The rooms of every session of a case (closed ones too: their pages stay open)."""
    ids = await db.scalars(select(TriageSession.id).where(TriageSession.case_id == case_id))
    return [f"triage:{sid}" for sid in ids]


register_case_rooms(rooms_of_case)


class TriageRenderer:
    def __init__(
        self,
        jinja: jinja2.Environment,
        present: Callable[[str], list[Principal]] | None = None,
        typing: Callable[[str], list[tuple[Principal, str]]] | None = None,
    ) -> None:
        self._jinja = jinja  # the application's own environment: same filters, same i18n
        self._present = present or (lambda _room: [])
        self._typing = typing or (lambda _room: [])
        # (room, viewer) -> what consent allowed this viewer when their screen was last drawn:
        # when the family comes or goes, that may change (consent.rules: family at the table).
        self._level_seen: dict[tuple[str, str], Disclosure] = {}

    async def render_for(
        self, uow: UnitOfWork, room: str, viewers: Sequence[Principal], update: Update
    ) -> list[str | None]:
        """What ``update`` changes on each viewer's screen (None: they may no longer follow
        this room), for everyone at once in the one transaction of ``uow``."""
        session_id = int(room.split(":", 1)[1])
        session = await uow.db.get(TriageSession, session_id)
        case = await uow.db.get(Case, session.case_id) if session is not None else None
        if session is None or case is None:
            return [None] * len(viewers)
        present = self._actors(room)
        # The rows are read once for the whole batch; every view is drawn from them.
        table = TableRows(uow.db)
        allowed = await _followers(table, session, viewers)
        # Typing labels, like steps 4 and 5, ask consent without the family at the table.
        family = () if update == "typing" else service.family_at_the_table(present, session)
        events = update if isinstance(update, list) else []
        kinds = {e.kind for e in events}
        whole_page = bool(kinds & {CONSENT_CHANGED, "session.closed"})
        steps = any(e.kind.partition(".")[0] in _STEP_KINDS for e in events)
        # Item pushes read personal data: each viewer's read is audited (as the single path
        # does). Presence and typing name only the people the page already named; they are
        # audited below only when they show item texts or the whole page again.
        flagged = await _flagged(uow, session_id) if update == "presence" else []
        decisions = await consent.disclosures_for(
            uow, case, allowed, family_present=family, audit_read=False
        )
        level: dict[str, DisclosureDecision] = {
            v.actor: d for v, d in zip(allowed, decisions, strict=True)
        }
        # Steps 4 and 5 ask consent without the family at the table: decide that too.
        at_steps = (
            await consent.disclosures_for(uow, case, allowed, audit_read=False)
            if steps
            else [None] * len(allowed)
        )
        await consent.record_reads(
            uow,
            case,
            consent.Purpose.INFORMATION_EXCHANGE,
            _reads(allowed, decisions, at_steps, table=bool(flagged) or _beyond_steps(events)),
        )

        out: list[str | None] = []
        views: dict[Hashable, str] = {}
        readers = [v for v in viewers if v.actor in level and level[v.actor].level]
        if update == "presence":
            # Flagged items are drawn again (shown or held back): a read, audited above.
            authors = {a for k, _i, a in flagged if k == "note"}
            present_list = self._present(room)
            for v in viewers:
                if v not in readers:
                    out.append(None)
                    continue
                key = (room, v.actor)
                before = self._level_seen.get(key)
                self._level_seen[key] = level[v.actor].level
                if before is not None and before is not level[v.actor].level:
                    # The family came or went: everything personal anew, for this viewer.
                    if not flagged:
                        await consent.record_reads(
                            uow, case, consent.Purpose.INFORMATION_EXCHANGE, [(v, level[v.actor])]
                        )
                    out.append(
                        await self._one(
                            v, self._redraw(uow.acting_as(v), room, present_list, table=table)
                        )
                    )
                    continue
                out.append(
                    await self._shared(
                        views,
                        _view_key(v, level[v.actor], authors),
                        v,
                        lambda w: self._presence_html(
                            uow.acting_as(w), room, present_list, flagged, table
                        ),
                    )
                )
            for gone in [k for k in self._level_seen if k[0] == room and k[1] not in present]:
                del self._level_seen[gone]
            return out
        if update == "typing":
            typing = self._typing(room)
            typists = {p.actor for p, _w in typing}
            for v in viewers:
                if v not in readers:
                    out.append(None)
                    continue
                out.append(
                    await self._shared(
                        views,
                        (level[v.actor].level, v.locale, v.actor if v.actor in typists else None),
                        v,
                        lambda w: self.render_typing(uow.acting_as(w), room, typing, table=table),
                    )
                )
            return out
        authors = await _authors(uow, session_id, events)
        for v in viewers:
            if v not in readers:
                out.append(None)
            elif whole_page:
                out.append(
                    await self._one(
                        v, self.render_events(uow.acting_as(v), room, events, table=table)
                    )
                )
            else:
                out.append(
                    await self._shared(
                        views,
                        _view_key(v, level[v.actor], authors, steps=steps),
                        v,
                        lambda w: self.render_events(uow.acting_as(w), room, events, table=table),
                    )
                )
        return out

    async def _shared(
        self,
        views: dict[Hashable, str],
        key: Hashable,
        viewer: Principal,
        draw: Callable[[Principal], Awaitable[str]],
    ) -> str:
        """The view of ``key``, drawn once for the first viewer with that key (with a stand-in
        for the CSRF token), then each viewer's copy with their own token."""
        html = views.get(key)
        if html is None:
            current_locale.set(viewer.locale)
            stand_in = dataclasses.replace(viewer, csrf_token=_CSRF_STAND_IN)
            html = views[key] = await draw(stand_in)
        return html.replace(_CSRF_STAND_IN, viewer.csrf_token)

    async def _one(self, viewer: Principal, drawing: Awaitable[str]) -> str:
        current_locale.set(viewer.locale)
        return await drawing

    def _render(self, template: str, **ctx: object) -> str:
        ctx.setdefault("url_for", _url_for)
        ctx.setdefault("csrf_token", "")  # htmx sends the header from the page's meta tag
        return self._jinja.get_template(template).render(vocab=VOCAB, **ctx)

    def _actors(self, room: str, present: list[Principal] | None = None) -> frozenset[str]:
        return frozenset(p.actor for p in (present if present is not None else self._present(room)))

    async def render_events(
        self,
        uow: UnitOfWork,
        room: str,
        events: list[RoomEvent],
        *,
        table: TableRows | None = None,
    ) -> str:
        """What ``events`` change on this viewer's screen. ``table``: the rows read for the
        other viewers of the batch (one picture of the database); by default its own."""
        session_id = int(room.split(":", 1)[1])
        present = self._actors(room)
        table = table or TableRows(uow.db)
        if any(e.kind == CONSENT_CHANGED for e in events):
            # Everything personal on the page, as this viewer may see it now.
            view = await service.session_view(uow, session_id, present, table=table)
            self._level_seen[(room, uow.who.actor)] = view.case.level
            return self._render(
                "triage/_partials/consent_oob.html", s=view, csrf_token=uow.who.csrf_token
            )  # the hub adds who is present, labelled anew
        if any(e.kind == "session.closed" for e in events):
            # Rare and changes everything on screen: render the whole table once.
            view = await service.session_view(uow, session_id, present, table=table)
            return self._render("triage/_partials/closed_oob.html", s=view)
        steps = await self._render_steps(uow, session_id, events, table)
        refs: list[tuple[str, int]] = []
        for e in events:
            kind = e.kind.partition(".")[0]
            if kind in ITEM_KINDS and e.subject_id is not None:
                refs.append((kind, e.subject_id))
            elif kind == "board":
                refs.append(("board", 0))
        if not refs:
            return steps
        changes = await service.table_changes(uow, session_id, refs, present, table=table)
        parts: list[str] = []
        # One fragment per item, for what happened to it in this batch (a replay may hold
        # several events of one item): added beats moved beats changed in place.
        actions: dict[tuple[str, int], str] = {}
        for e in events:
            kind, _, action = e.kind.partition(".")
            key = (kind, e.subject_id or 0)
            if key in changes.items:
                before = actions.get(key)
                if before != "created" and (before != "moved" or action == "created"):
                    actions[key] = action
        for e in events:
            kind, _, _action = e.kind.partition(".")
            subject = e.subject_id or 0
            chosen = actions.pop((kind, subject), None)
            if chosen is not None:
                parts.append(
                    self._render(
                        "triage/_partials/item_oob.html",
                        item=changes.items[(kind, subject)],
                        session_id=session_id,
                        created=chosen == "created",
                        moved=chosen == "moved",
                        choices=changes.factor_choices,
                    )
                )
        board = changes.board
        if board is not None:
            kinds = {e.kind for e in events}
            if "board.screen" in kinds:
                parts.append(self._render("triage/_partials/steps_nav.html", b=board, oob=True))
            if "board.perspective" in kinds:
                parts.append(
                    self._render(
                        "triage/_partials/perspective.html",
                        b=board,
                        session_id=session_id,
                        open=True,
                        oob=True,
                    )
                )
            # The checklist follows its ticks and, through the hints, the factors.
            if kinds & {"board.quality"} or any(k.startswith("factor.") for k in kinds):
                parts.append(
                    self._render(
                        "triage/_partials/quality.html", b=board, session_id=session_id, oob=True
                    )
                )
        return "".join(parts) + steps

    async def _render_steps(
        self, uow: UnitOfWork, session_id: int, events: list[RoomEvent], table: TableRows
    ) -> str:
        """Steps 4 and 5 change as a whole (a split, a suggestion, a status): render the step
        again for this viewer; open edit forms are kept by the client (keerpunt.js)."""
        kinds = {e.kind.partition(".")[0] for e in events}
        parts: list[str] = []
        if kinds & {"line", "arrangement"}:
            view = await arrangement.arrangement_view(uow, session_id, table=table)
            parts.append(
                self._render(
                    "triage/_partials/arrangement_oob.html", a=view, csrf_token=uow.who.csrf_token
                )
            )
        if kinds & {"activity", "plan"}:
            p = await plan.plan_view(uow, session_id, table=table)
            parts.append(
                self._render("triage/_partials/plan_oob.html", p=p, csrf_token=uow.who.csrf_token)
            )
        return "".join(parts)

    async def render_presence(self, uow: UnitOfWork, room: str, present: list[Principal]) -> str:
        """Who is present, for one viewer; everything personal anew when what consent allows
        them changed since their screen was drawn (the family came or went)."""
        session_id = int(room.split(":", 1)[1])
        actors = self._actors(room, present)
        flagged = await _flagged(uow, session_id)
        changes = await service.table_changes(
            uow, session_id, [(k, i) for k, i, _a in flagged], actors
        )
        key = (room, uow.who.actor)
        before = self._level_seen.get(key)
        self._level_seen[key] = changes.level
        for gone in [k for k in self._level_seen if k[0] == room and k[1] not in actors]:
            del self._level_seen[gone]
        if before is not None and before is not changes.level:
            return await self._redraw(uow, room, present, changes)
        return self._presence_parts(changes, present, session_id)

    async def _redraw(
        self,
        uow: UnitOfWork,
        room: str,
        present: list[Principal],
        changes: service.TableChanges | None = None,
        *,
        table: TableRows | None = None,
    ) -> str:
        """The family joined or left the meeting: with the family at the table the case may
        be discussed openly (consent.rules), so everything personal is drawn anew."""
        session_id = int(room.split(":", 1)[1])
        actors = self._actors(room, present)
        table = table or TableRows(uow.db)
        if changes is None:
            changes = await service.table_changes(uow, session_id, [], actors, table=table)
        view = await service.session_view(uow, session_id, actors, table=table)
        return self._render(
            "triage/_partials/consent_oob.html", s=view, csrf_token=uow.who.csrf_token
        ) + self._presence_list(changes, present)

    async def _presence_html(
        self,
        uow: UnitOfWork,
        room: str,
        present: list[Principal],
        flagged: list[tuple[str, int, str]],
        table: TableRows,
    ) -> str:
        session_id = int(room.split(":", 1)[1])
        changes = await service.table_changes(
            uow,
            session_id,
            [(k, i) for k, i, _a in flagged],
            self._actors(room, present),
            table=table,
        )
        return self._presence_parts(changes, present, session_id)

    def _presence_list(self, changes: service.TableChanges, present: list[Principal]) -> str:
        labels = [
            changes.present.get(p.actor) or service.PersonLabel(None, p.display_name)
            for p in present
        ]
        return self._render("triage/_partials/presence.html", present=labels, oob=True)

    def _presence_parts(
        self, changes: service.TableChanges, present: list[Principal], session_id: int
    ) -> str:
        # Items someone asked to keep for when they are at the table: shown or held back
        # again now that people come and go.
        parts = [self._presence_list(changes, present)]
        for item in changes.items.values():
            parts.append(
                self._render(
                    "triage/_partials/item_oob.html",
                    item=item,
                    session_id=session_id,
                    created=False,
                    moved=False,
                    choices=(),
                )
            )
        return "".join(parts)

    async def render_typing(
        self,
        uow: UnitOfWork,
        room: str,
        typing: list[tuple[Principal, str]],
        *,
        table: TableRows | None = None,
    ) -> str:
        """Who is typing where ("Ma typt bij stap 2"): names only as consent allows."""
        session_id = int(room.split(":", 1)[1])
        labels = await service.table_labels(uow, session_id, self._actors(room), table=table)
        entries = [
            (labels.get(p.actor) or service.PersonLabel(None, p.display_name), where)
            for p, where in typing
            if p.actor != uow.who.actor
        ]
        return self._render("triage/_partials/typing.html", typing=entries)


async def follow(uow: UnitOfWork, session_id: int) -> tuple[str, int]:
    """Whether this viewer may follow a session live (invited to it, or coordinating, and
    consent lets them know the case): its room and last sequence number; NotFound otherwise.
    It reads no personal data (the page and every push do, audited), so a websocket handshake
    stays cheap when a whole table joins at once."""
    session = await uow.db.get(TriageSession, session_id)
    case = await uow.db.get(Case, session.case_id) if session is not None else None
    if (
        session is None
        or case is None
        or not await _followers(TableRows(uow.db), session, [uow.who])
    ):
        raise NotFound()
    if (await consent.disclosure(uow, case, audit_read=False)).level is Disclosure.NOTHING:
        raise NotFound()
    return session.room, await uow.last_seq(session.room)


async def _followers(
    table: TableRows, session: TriageSession, viewers: Sequence[Principal]
) -> list[Principal]:
    """The viewers who may still follow this session's room (one query): the coordinators,
    and who is invited to it and still a member of the case — as ``service._session_for``
    asks for one viewer."""
    members: set[int] = set()
    users: set[int] = set()
    for member_id, user_id in await table.participants(session.id):
        members.add(member_id)
        if user_id is not None:
            users.add(user_id)
    return [
        v
        for v in viewers
        if v.has("coordinator")
        or (v.member_id in members if v.member_id is not None else v.user_id in users)
    ]


async def _flagged(uow: UnitOfWork, session_id: int) -> list[tuple[str, int, str]]:
    """(kind, id, author) of the items someone asked to keep for when they are at the table."""
    out: list[tuple[str, int, str]] = []
    for kind, model in (("factor", Factor), ("goal", Goal), ("note", StepNote)):
        rows = await uow.db.execute(
            select(model.id, model.author).where(
                model.session_id == session_id, model.private_to_member_id.is_not(None)
            )
        )
        out.extend((kind, i, a) for i, a in rows)
    return out


async def _authors(uow: UnitOfWork, session_id: int, events: list[RoomEvent]) -> set[str]:
    """Who wrote the notes these events are about: its author may edit a note (a factor or
    goal anyone at the table may edit), so the author's view of it differs."""
    notes = {e.subject_id for e in events if e.kind.startswith("note.") and e.subject_id}
    if not notes:
        return set()
    return set(
        await uow.db.scalars(
            select(StepNote.author).where(StepNote.session_id == session_id, StepNote.id.in_(notes))
        )
    )


def _beyond_steps(events: list[RoomEvent]) -> bool:
    """Whether these events show more than steps 4 and 5: items, the board, the whole page
    (read at the level consent allows with the family at the table)."""
    return any(e.kind.partition(".")[0] not in _STEP_KINDS for e in events)


def _reads(
    viewers: Sequence[Principal],
    decisions: Sequence[DisclosureDecision],
    at_steps: Sequence[DisclosureDecision | None],
    *,
    table: bool,
) -> list[tuple[Principal, DisclosureDecision]]:
    """What each viewer reads in a batch, for the audit: the table (items, board, page) at
    the level decided with the family at the table, and steps 4 and 5 (``at_steps``, None:
    not shown) at the level decided without it. One row per viewer, two only when the two
    decisions differ (the family at the table opened the case to them)."""
    out: list[tuple[Principal, DisclosureDecision]] = []
    for v, d, s in zip(viewers, decisions, at_steps, strict=True):
        if table:
            out.append((v, d))
        if s is not None and (not table or s != d):
            out.append((v, s))
    return out


def _view_key(
    viewer: Principal, decision: DisclosureDecision, authors: set[str], *, steps: bool = False
) -> Hashable:
    """Viewers with the same key see the same thing (apart from their CSRF token): what
    consent allows them, their language, the family member they are (their own wishes,
    "niet over mij zonder mij"), their role's controls, and whether they wrote an item shown.
    Steps 4 and 5 also depend on the viewer's organisation (the procesregisseur's keeps the
    plan up to date)."""
    key: tuple[object, ...] = (
        decision.level,
        viewer.locale,
        viewer.member_id,
        viewer.member_role,
        viewer.is_staff,
        viewer.has("coordinator"),
        bool(viewer.staff_roles & {"triage_member", "coordinator"}),
        viewer.actor if viewer.actor in authors else None,
    )
    if steps:
        key += (viewer.organisation_id, viewer.staff_roles)
    return key
