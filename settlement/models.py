"""Settlement tables (filled in by the settlement module)."""

from __future__ import annotations
