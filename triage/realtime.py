"""Renders triage-room events as htmx out-of-band fragments, per viewer.

Each viewer gets the item as *they* may see it: consent decides, at every push.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from keerpunt.platform.models import RoomEvent
from keerpunt.platform.principal import Principal
from keerpunt.platform.settings import _package_dir
from keerpunt.platform.uow import UnitOfWork
from keerpunt.platform.web import make_jinja_env
from keerpunt.triage import service
from keerpunt.triage.vocab import VOCAB

_env: jinja2.Environment | None = None


def _jinja() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = make_jinja_env(Path(_package_dir("keerpunt.templates")))
    return _env


def _render(template: str, **ctx: object) -> str:
    return _jinja().get_template(template).render(vocab=VOCAB, **ctx)


class TriageRenderer:
    async def render_events(self, uow: UnitOfWork, room: str, events: list[RoomEvent]) -> str:
        session_id = int(room.split(":", 1)[1])
        view = await service.session_view(uow, session_id)
        items = {(i.kind, i.id): i for i in (*view.factors, *view.goals)}
        lines = {ln.id: ln for ln in view.lines}
        parts: list[str] = []
        for e in events:
            kind, _, action = e.kind.partition(".")
            subject = e.subject_id or 0
            if kind in {"factor", "goal"} and (kind, subject) in items:
                item = items[(kind, subject)]
                parts.append(
                    _render(
                        "triage/_partials/item_oob.html",
                        item=item,
                        session_id=session_id,
                        created=action == "created",
                    )
                )
            elif kind == "line" and subject in lines:
                parts.append(_render("triage/_partials/line_oob.html", line=lines[subject]))
            elif e.kind == "session.closed":
                parts.append(_render("triage/_partials/closed_oob.html", s=view))
        return "".join(parts)

    async def render_presence(self, uow: UnitOfWork, room: str, present: list[Principal]) -> str:
        session_id = int(room.split(":", 1)[1])
        view = await service.session_view(uow, session_id)
        names = {f"member:{m.id}": m for m in view.case.members if m.is_family}
        labels: list[dict[str, str | None]] = []
        for p in present:
            member = names.get(p.actor)
            if member is not None:
                labels.append({"role": member.role_label, "name": member.name})
            else:
                labels.append({"role": None, "name": p.display_name})
        return _render("triage/_partials/presence.html", present=labels, oob=True)
