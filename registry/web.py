"""HTML pages (placeholder, filled below)."""
from __future__ import annotations

from starlette.routing import Route

from registry.state import Registry


def routes(reg: Registry) -> list[Route]:
    return []
