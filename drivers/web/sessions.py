"""Web console sessions: server-side, in memory, keyed by a random id sent as a cookie.

Shared by HQ's console and the appliance's agent pages; each keeps its own principal type
(who signed in) and its own cookie name.

A session starts anonymous when the sign-in form is shown (so the form itself carries a
CSRF token) and is replaced by a new one, with a new id and a new CSRF token, when a
token signs in; signing out drops it. Sessions end after ``idle_s`` without a request.
The store holds at most ``max_sessions``: the least recently used goes first, so a
flood of anonymous visits cannot grow memory without bound.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

PrincipalT = TypeVar("PrincipalT")


@dataclass
class Session(Generic[PrincipalT]):
    """One browser's session; ``principal`` is None until a token signed in."""

    session_id: str
    csrf_token: str
    principal: PrincipalT | None
    expires_at: float = field(default=0.0)

    def csrf_ok(self, presented: str | None) -> bool:
        """Whether a request carries this session's CSRF token."""
        return presented is not None and hmac.compare_digest(
            self.csrf_token.encode(), presented.encode()
        )


class SessionStore(Generic[PrincipalT]):
    """Sessions by id, least recently used first."""

    def __init__(
        self, idle_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._idle_s = idle_s
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session[PrincipalT]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, principal: PrincipalT | None) -> Session[PrincipalT]:
        """A new session with fresh random id and CSRF token."""
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), principal)
        self._sessions[session.session_id] = session
        self._touch(session)
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session[PrincipalT] | None:
        """The live session of this id (its expiry pushed back), or None."""
        session = self._sessions.get(session_id or "")
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[session.session_id]
            return None
        self._touch(session)
        return session

    def end(self, session_id: str) -> None:
        """Forget a session (sign-out, or replaced at sign-in)."""
        self._sessions.pop(session_id, None)

    def _touch(self, session: Session[PrincipalT]) -> None:
        session.expires_at = self._clock() + self._idle_s
        self._sessions.move_to_end(session.session_id)
