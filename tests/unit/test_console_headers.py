"""Both consoles' pages carry their security headers through the shared plumbing."""

from __future__ import annotations

from aggregator.console.web import SITE as HQ_SITE
from appliance.console.web import SITE as AGENT_SITE

CSP_HEAD = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
CSP_TAIL = "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"


def test_hq_pages_may_play_recordings_and_nothing_else_differs() -> None:
    headers = HQ_SITE.security_headers()
    assert headers["Content-Security-Policy"] == f"{CSP_HEAD}media-src 'self'; {CSP_TAIL}"
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_agent_pages_keep_the_strict_policy() -> None:
    headers = AGENT_SITE.security_headers()
    assert headers["Content-Security-Policy"] == CSP_HEAD + CSP_TAIL
    assert headers == {**HQ_SITE.security_headers(), "Content-Security-Policy": CSP_HEAD + CSP_TAIL}
