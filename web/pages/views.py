"""Placeholder; the pages are filled in by the demo/pages work."""

from __future__ import annotations

from web.pages import pages


@pages.get("/healthz")
def healthz() -> tuple[str, int]:
    return "ok", 200
