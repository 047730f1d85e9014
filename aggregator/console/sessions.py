"""HQ console sessions: the shared in-memory store (``drivers.web.sessions``) holding HQ
principals, under HQ's cookie."""

from __future__ import annotations

from aggregator.api.auth import Principal
from drivers.web import sessions

COOKIE = "callmesh_console"

Session = sessions.Session[Principal]


class SessionStore(sessions.SessionStore[Principal]):
    """Sessions of HQ users, least recently used first."""
