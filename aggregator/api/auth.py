"""Bearer-token auth with roles: admin, hq-viewer (all sites), site-viewer (its sites).

Each route needs one of two levels: ``viewer`` (every role; a site-viewer sees only its
``sites``) or ``admin`` (directory, SIM fleet and DNC changes). See docs/sync.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aggregator.api.errors import ApiError
from aggregator.settings import HqToken
from drivers.daemon.access import Access, Refuse

LEVELS = {
    "viewer": frozenset({"admin", "hq-viewer", "site-viewer"}),
    "admin": frozenset({"admin"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling, and which sites they may see (None: every site)."""

    name: str
    role: str
    sites: frozenset[str] | None

    def may_see(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites

    def scope(self, requested: str | None) -> frozenset[str] | None:
        """The sites a query may touch: the requested one (if allowed) or all allowed."""
        if requested is not None:
            if not self.may_see(requested):
                raise ApiError(403, "site-forbidden", f"token may not read site {requested!r}")
            return frozenset({requested})
        return self.sites


def hq_access(tokens: Sequence[HqToken], refuse: Refuse = ApiError) -> Access[Principal]:
    """Access to the HQ API: ``needs("viewer")`` or ``needs("admin")`` on each route;
    refusals are ``refuse(status, error_id, message)`` (the API's ``ApiError``)."""
    return Access(tokens, LEVELS, _principal, refuse)


def _principal(token: HqToken) -> Principal:
    sites = frozenset(token.sites) if token.role == "site-viewer" else None
    return Principal(token.name, token.role, sites)
