"""Renders triage-room events as htmx out-of-band fragments, per viewer.

Each viewer gets the item as *they* may see it: consent decides, at every push. When the
consent of a case changes (``consent.changed``, saved in every room of the case), each viewer
gets everything personal on the page again — title, invited people, every item with its
author, who is present — as it is allowed for them now.
"""

from __future__ import annotations

import jinja2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform.models import RoomEvent
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import CONSENT_CHANGED, UnitOfWork, register_case_rooms
from keerpunt.triage import service
from keerpunt.triage.models import TriageSession
from keerpunt.triage.vocab import VOCAB


async def rooms_of_case(db: AsyncSession, case_id: int) -> list[str]:
    """The rooms of every session of a case (closed ones too: their pages stay open)."""
    ids = await db.scalars(select(TriageSession.id).where(TriageSession.case_id == case_id))
    return [f"triage:{sid}" for sid in ids]


register_case_rooms(rooms_of_case)


class TriageRenderer:
    def __init__(self, jinja: jinja2.Environment) -> None:
        self._jinja = jinja  # the application's own environment: same filters, same i18n

    def _render(self, template: str, **ctx: object) -> str:
        return self._jinja.get_template(template).render(vocab=VOCAB, **ctx)

    async def render_events(self, uow: UnitOfWork, room: str, events: list[RoomEvent]) -> str:
        session_id = int(room.split(":", 1)[1])
        if any(e.kind == CONSENT_CHANGED for e in events):
            # Everything personal on the page, as this viewer may see it now.
            view = await service.session_view(uow, session_id)
            return self._render(
                "triage/_partials/consent_oob.html", s=view, csrf_token=uow.who.csrf_token
            )  # the hub adds who is present, labelled anew
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
