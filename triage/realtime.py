"""Renders triage-room events as htmx out-of-band fragments, per viewer.

Each viewer gets the item as *they* may see it: consent decides, at every push.
"""

from __future__ import annotations

import jinja2

from keerpunt.platform.models import RoomEvent
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage import service
from keerpunt.triage.vocab import VOCAB


class TriageRenderer:
    def __init__(self, jinja: jinja2.Environment) -> None:
        self._jinja = jinja  # the application's own environment: same filters, same i18n

    def _render(self, template: str, **ctx: object) -> str:
        return self._jinja.get_template(template).render(vocab=VOCAB, **ctx)

    async def render_events(self, uow: UnitOfWork, room: str, events: list[RoomEvent]) -> str:
        session_id = int(room.split(":", 1)[1])
        if any(e.kind == "session.closed" for e in events):
            # Rare and changes everything on screen: render the whole table once.
            view = await service.session_view(uow, session_id)
            return self._render("triage/_partials/closed_oob.html", s=view)
        refs = [
            (kind, e.subject_id)
            for e in events
            if (kind := e.kind.partition(".")[0]) in {"factor", "goal", "line"}
            and e.subject_id is not None
        ]
        if not refs:
            return ""
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
            elif kind == "line" and subject in changes.lines:
                parts.append(
                    self._render("triage/_partials/line_oob.html", line=changes.lines[subject])
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
