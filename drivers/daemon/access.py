"""Bearer-token access for the HTTP APIs: every route declares the least role it needs.

A route asks for ``access.needs(level)``: a FastAPI security dependency on the ``bearer``
scheme whose scope is the level. FastAPI writes it into the route's OpenAPI operation as
``security: [{"bearer": [level]}]`` (OpenAPI 3.1 allows role names as scopes for any
scheme), so the document states each route's role and tests read it back to try every
route with every role. A level is the set of roles it admits; a token's role either is in
it (the request goes on) or is not (403 ``role-forbidden``).

Errors are built by the service's own ``refuse(status, error_id, message)`` so each API
keeps its error body: 401 ``missing-token`` (no ``Authorization: Bearer``), 401
``bad-token`` (unknown token), 403 ``role-forbidden``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

GrantT = TypeVar("GrantT")

BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="an api.tokens token")


class Token(Protocol):
    """What access needs of a configured token."""

    @property
    def token(self) -> str: ...

    @property
    def role(self) -> str: ...


Refuse = Callable[[int, str, str], Exception]


class Access(Generic[GrantT]):
    """Resolves bearer tokens and checks them against each route's level."""

    def __init__(
        self,
        tokens: Sequence[Token],
        levels: Mapping[str, frozenset[str]],
        grant: Callable[[Any], GrantT],
        refuse: Refuse,
    ) -> None:
        self._tokens = tuple(tokens)
        self._levels = dict(levels)
        self._grant = grant
        self._refuse = refuse

    def needs(self, level: str) -> Any:
        """The dependency admitting the roles of ``level``; it yields the caller's grant."""
        if level not in self._levels:
            raise ValueError(f"unknown access level {level!r}; known: {sorted(self._levels)}")
        return Security(self._resolve, scopes=[level])

    def _resolve(
        self,
        scopes: SecurityScopes,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> GrantT:
        if credentials is None:
            raise self._refuse(401, "missing-token", "send Authorization: Bearer <token>")
        token = self._token(credentials.credentials)
        for level in scopes.scopes:
            self._check(token, level)
        return self._grant(token)

    def grant(self, presented: str, level: str) -> GrantT:
        """The grant of a token presented other than as a header (a sign-in form)."""
        token = self._token(presented)
        self._check(token, level)
        return self._grant(token)

    def admits(self, role: str, level: str) -> bool:
        """Whether ``role`` is one of the roles of ``level``."""
        return role in self._levels[level]

    def _check(self, token: Token, level: str) -> None:
        if not self.admits(token.role, level):
            roles = ", ".join(sorted(self._levels[level]))
            raise self._refuse(403, "role-forbidden", f"this route needs a role of: {roles}")

    def _token(self, text: str) -> Token:
        presented = text.encode()
        for token in self._tokens:
            if hmac.compare_digest(token.token.encode(), presented):
                return token
        raise self._refuse(401, "bad-token", "the token is not known to this service")
