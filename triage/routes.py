"""HTTP routes of triage (thin: parse, call the service, render)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from keerpunt.platform.realtime import Hub

routes: list[BaseRoute] = []


def register_realtime(hub: Hub) -> None:
    pass
