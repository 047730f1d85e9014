"""The HQ console's settings for the shared console plumbing (``drivers.web.pages``).

Every page declares the least level it needs (``viewer`` or ``admin``, the HQ API's
levels); every state-changing request also presents the session's CSRF token. Refusals
are ``PageError``s, shown as the error page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import Request

from aggregator.api.auth import Principal, hq_access
from aggregator.api.errors import ApiError
from aggregator.console.sessions import COOKIE, SessionStore
from aggregator.settings import AggregatorSettings
from drivers.web import pages
from drivers.web.pages import PageError

HERE = Path(__file__).parent
PREFIX = "/console"
NAV = (
    ("sites", "Sites"),
    ("activity", "Live activity"),
    ("wallboard", "Wallboard"),
    ("cdrs", "Calls"),
    ("reports", "Reports"),
    ("sims", "SIM fleet"),
    ("directory", "Directory"),
    ("dnc", "Do not call"),
)


def _context(principal: Principal | None) -> dict[str, Any]:
    return {
        "principal": principal,
        "is_admin": principal is not None and principal.role == "admin",
        "nav": NAV if principal is not None else (),
    }


SITE: pages.Site[Principal] = pages.Site(
    name="console",
    cookie=COOKIE,
    templates=HERE / "templates",
    home="/sites",
    csp=("media-src 'self'",),
    context=_context,
)


class Console(pages.Pages[Principal]):
    """What every console route shares: settings, database, sessions and templates."""

    def __init__(self, settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> None:
        sessions = SessionStore(
            settings.console.session_idle_minutes * 60, settings.console.max_sessions
        )
        super().__init__(SITE, hq_access(settings.api.tokens, PageError), sessions)
        self.settings = settings
        self.engine = engine
        self.sites_configured = [s.site_id for s in settings.ingest.sites if not s.revoked]


def scope(principal: Principal, site: str | None) -> frozenset[str] | None:
    """The sites a page may show: the requested one if allowed, else all allowed."""
    try:
        return principal.scope(site or None)
    except ApiError as err:
        raise PageError(err.status, err.error_id, err.message) from None


async def form_text(request: Request) -> dict[str, str]:
    """The submitted form's text fields, without the CSRF token."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
