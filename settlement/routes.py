"""HTTP routes of this domain (thin: parse, call the service, render)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
