"""Bearer-token auth with roles: admin, hq-viewer (all sites), site-viewer (its sites)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastapi import Request

from aggregator.api.errors import ApiError
from aggregator.settings import HqToken


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


def authenticator(tokens: Sequence[HqToken]) -> Callable[[Request], Principal]:
    """A FastAPI dependency resolving the bearer token to a Principal."""

    def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise ApiError(401, "missing-token", "send Authorization: Bearer <token>")
        for token in tokens:
            if hmac.compare_digest(token.token.encode(), presented.encode()):
                sites = frozenset(token.sites) if token.role == "site-viewer" else None
                return Principal(token.name, token.role, sites)
        raise ApiError(401, "bad-token", "the token is not known to this aggregator")

    return principal


def require_admin(principal: Principal) -> None:
    """Refuse anyone but an admin."""
    if principal.role != "admin":
        raise ApiError(403, "admin-only", "this action needs an admin token")
