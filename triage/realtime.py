"""Renders triage-room events as htmx out-of-band fragments, per viewer.

Each viewer gets the item as *they* may see it: consent decides, at every push.
"""

from __future__ import annotations

from functools import cache

import jinja2
from starlette.routing import Router

from keerpunt.platform.models import RoomEvent
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage import arrangement, plan, service
from keerpunt.triage.vocab import VOCAB


@cache
def _router() -> Router:
    from keerpunt.triage.routes import routes  # the routes module registers this renderer

    return Router(routes)


def _url_for(name: str, /, **params: object) -> str:
    """Paths by route name, as templates write them (a push has no request to ask)."""
    return str(_router().url_path_for(name, **params))


class TriageRenderer:
    def __init__(self, jinja: jinja2.Environment) -> None:
        self._jinja = jinja  # the application's own environment: same filters, same i18n

    def _render(self, template: str, **ctx: object) -> str:
        ctx.setdefault("url_for", _url_for)
        ctx.setdefault("csrf_token", "")  # htmx sends the header from the page's meta tag
        return self._jinja.get_template(template).render(vocab=VOCAB, **ctx)

    async def render_events(self, uow: UnitOfWork, room: str, events: list[RoomEvent]) -> str:
        session_id = int(room.split(":", 1)[1])
        if any(e.kind == "session.closed" for e in events):
            # Rare and changes everything on screen: render the whole table once.
            view = await service.session_view(uow, session_id)
            return self._render("triage/_partials/closed_oob.html", s=view)
        steps = await self._render_steps(uow, session_id, events)
        refs = [
            (kind, e.subject_id)
            for e in events
            if (kind := e.kind.partition(".")[0]) in {"factor", "goal"} and e.subject_id is not None
        ]
        if not refs:
            return steps
        changes = await service.table_changes(uow, session_id, refs)
        parts: list[str] = []
        for e in events:
            kind, _, action = e.kind.partition(".")
            subject = e.subject_id or 0
            if (kind, subject) in changes.items:
                parts.append(
                    self._render(
                        "triage/_partials/item_oob.html",
                        item=changes.items[(kind, subject)],
                        session_id=session_id,
                        created=action == "created",
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
        changes = await service.table_changes(uow, session_id, [])
        labels = [
            changes.present.get(p.actor) or service.PersonLabel(None, p.display_name)
            for p in present
        ]
        return self._render("triage/_partials/presence.html", present=labels, oob=True)
