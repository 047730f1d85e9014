"""Paths of the HQ API built from what the user typed."""

from __future__ import annotations

from urllib.parse import quote


def segment(text: str) -> str:
    """``text`` as one URL path segment: a ``/`` or ``?`` in an id cannot reach another route."""
    return quote(text, safe="")
