"""Renders triage-room events as htmx out-of-band fragments, per viewer.

Each viewer gets the item as *they* may see it: consent decides, at every push, and so does
"niet over mij zonder mij" (who is connected to the meeting right now). When the consent of a
case changes (``consent.changed``, saved in every room of the case), each viewer gets
everything personal on the page again — title, invited people, the steps with every item and
its author, who is present — as it is allowed for them now.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import jinja2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Router

from keerpunt.consent.service import Disclosure
from keerpunt.platform.models import RoomEvent
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import CONSENT_CHANGED, UnitOfWork, register_case_rooms
from keerpunt.triage import arrangement, plan, service
from keerpunt.triage.models import Factor, Goal, StepNote, TriageSession
from keerpunt.triage.vocab import VOCAB

ITEM_KINDS = frozenset({"factor", "goal", "note"})
# Item events: created (added to its list), moved (to another list: a factor structured
# into a life area), and updated / flagged / linked / unlinked (re-rendered in place).


@cache
def _router() -> Router:
    from keerpunt.triage.routes import routes  # the routes module registers this renderer

    return Router(routes)


def _url_for(name: str, /, **params: object) -> str:
    """Paths by route name, as templates write them (a push has no request to ask)."""
    return str(_router().url_path_for(name, **params))


async def rooms_of_case(db: AsyncSession, case_id: int) -> list[str]:
    """The rooms of every session of a case (closed ones too: their pages stay open)."""
    ids = await db.scalars(select(TriageSession.id).where(TriageSession.case_id == case_id))
    return [f"triage:{sid}" for sid in ids]


register_case_rooms(rooms_of_case)


class TriageRenderer:
    def __init__(
        self, jinja: jinja2.Environment, present: Callable[[str], list[Principal]] | None = None
    ) -> None:
        self._jinja = jinja  # the application's own environment: same filters, same i18n
        self._present = present or (lambda _room: [])
        # (room, viewer) -> what consent allowed this viewer when their screen was last drawn:
        # when the family comes or goes, that may change (consent.rules: family at the table).
        self._level_seen: dict[tuple[str, str], Disclosure] = {}

    def _render(self, template: str, **ctx: object) -> str:
        ctx.setdefault("url_for", _url_for)
        ctx.setdefault("csrf_token", "")  # htmx sends the header from the page's meta tag
        return self._jinja.get_template(template).render(vocab=VOCAB, **ctx)

    def _actors(self, room: str, present: list[Principal] | None = None) -> frozenset[str]:
        return frozenset(p.actor for p in (present if present is not None else self._present(room)))

    async def render_events(self, uow: UnitOfWork, room: str, events: list[RoomEvent]) -> str:
        session_id = int(room.split(":", 1)[1])
        present = self._actors(room)
        if any(e.kind == CONSENT_CHANGED for e in events):
            # Everything personal on the page, as this viewer may see it now.
            view = await service.session_view(uow, session_id, present)
            self._level_seen[(room, uow.who.actor)] = view.case.level
            return self._render(
                "triage/_partials/consent_oob.html", s=view, csrf_token=uow.who.csrf_token
            )  # the hub adds who is present, labelled anew
        if any(e.kind == "session.closed" for e in events):
            # Rare and changes everything on screen: render the whole table once.
            view = await service.session_view(uow, session_id, present)
            return self._render("triage/_partials/closed_oob.html", s=view)
        steps = await self._render_steps(uow, session_id, events)
        refs: list[tuple[str, int]] = []
        for e in events:
            kind = e.kind.partition(".")[0]
            if kind in ITEM_KINDS and e.subject_id is not None:
                refs.append((kind, e.subject_id))
            elif kind == "board":
                refs.append(("board", 0))
        if not refs:
            return steps
        changes = await service.table_changes(uow, session_id, refs, present)
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

    async def _render_steps(self, uow: UnitOfWork, session_id: int, events: list[RoomEvent]) -> str:
        """Steps 4 and 5 change as a whole (a split, a suggestion, a status): render the step
        again for this viewer; open edit forms are kept by the client (keerpunt.js)."""
        kinds = {e.kind.partition(".")[0] for e in events}
        parts: list[str] = []
        if kinds & {"line", "arrangement"}:
            view = await arrangement.arrangement_view(uow, session_id)
            parts.append(
                self._render(
                    "triage/_partials/arrangement_oob.html", a=view, csrf_token=uow.who.csrf_token
                )
            )
        if kinds & {"activity", "plan"}:
            p = await plan.plan_view(uow, session_id)
            parts.append(
                self._render("triage/_partials/plan_oob.html", p=p, csrf_token=uow.who.csrf_token)
            )
        return "".join(parts)

    async def render_presence(self, uow: UnitOfWork, room: str, present: list[Principal]) -> str:
        session_id = int(room.split(":", 1)[1])
        actors = self._actors(room, present)
        # Items someone asked to keep for when they are at the table: shown or held back
        # again now that people come and go.
        flagged: list[tuple[str, int]] = []
        for kind, model in (("factor", Factor), ("goal", Goal), ("note", StepNote)):
            ids = await uow.db.scalars(
                select(model.id).where(
                    model.session_id == session_id,
                    model.private_to_member_id.is_not(None),
                )
            )
            flagged.extend((kind, i) for i in ids)
        changes = await service.table_changes(uow, session_id, flagged, actors)
        labels = [
            changes.present.get(p.actor) or service.PersonLabel(None, p.display_name)
            for p in present
        ]
        presence = self._render("triage/_partials/presence.html", present=labels, oob=True)
        key = (room, uow.who.actor)
        before = self._level_seen.get(key)
        self._level_seen[key] = changes.level
        for gone in [k for k in self._level_seen if k[0] == room and k[1] not in actors]:
            del self._level_seen[gone]
        if before is not None and before is not changes.level:
            # The family joined or left the meeting: with the family at the table the case
            # may be discussed openly (consent.rules), so everything personal is drawn anew.
            view = await service.session_view(uow, session_id, actors)
            return (
                self._render(
                    "triage/_partials/consent_oob.html", s=view, csrf_token=uow.who.csrf_token
                )
                + presence
            )
        parts = [presence]
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
        self, uow: UnitOfWork, room: str, typing: list[tuple[Principal, str]]
    ) -> str:
        """Who is typing where ("Ma typt bij stap 2"): names only as consent allows."""
        session_id = int(room.split(":", 1)[1])
        labels = await service.table_labels(uow, session_id)
        entries = [
            (labels.get(p.actor) or service.PersonLabel(None, p.display_name), where)
            for p, where in typing
            if p.actor != uow.who.actor
        ]
        return self._render("triage/_partials/typing.html", typing=entries)
