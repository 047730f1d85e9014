"""The agent pages' settings for the shared console plumbing (``drivers.web.pages``).

Tokens and roles are the local API's (``api.tokens``; ``viewer`` < ``operator`` <
``admin``, ``appliance.access``). Every page declares the least level it needs; every
state-changing request (all are ``POST``) also presents the session's CSRF token.
Refusals of the plumbing are ``PageError``s, shown as the error page; the contact
centre's refusals of a button (``AcdError``, ``SupervisionError``) are an ``Outcome``
shown on the page itself (``Refusals.attempt``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.access import LEVELS
from appliance.contact.acd import AcdError
from appliance.contact.supervisors import SupervisionError
from drivers.daemon.access import Access
from drivers.daemon.settings_base import ApiToken
from drivers.web import pages
from drivers.web.pages import PageError
from drivers.web.sessions import Session, SessionStore

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PREFIX = "/console"
COOKIE = "callmesh_agent_console"
IDLE_S = 8 * 3600
MAX_SESSIONS = 200


@dataclass(frozen=True)
class User:
    """Who signed in: the token's name and role."""

    name: str
    role: str


UserSession = Session[User]
Pages = pages.Pages[User]


@dataclass(frozen=True)
class Outcome:
    """What a button did, shown above the page's live part: a notice or a refusal."""

    status: int = 200
    notice: str = ""
    refusal: str = ""


SHOWN = Outcome()


@dataclass(frozen=True)
class Refusals:
    """How a page answers its service's refusals: ``statuses`` by ``error_id``, else
    ``default``; ``page`` names it in the log."""

    page: str
    error: type[AcdError] | type[SupervisionError]
    statuses: Mapping[str, int]
    default: int

    def attempt(self, agent: str, action: Callable[[], str]) -> Outcome:
        """Run ``action`` (its text is the notice), or answer its refusal."""
        try:
            done = action()
        except self.error as err:
            log.info("%s refused", self.page, extra={"agent": agent, "error_id": err.error_id})
            return Outcome(
                self.statuses.get(err.error_id, self.default), refusal=f"{err.error_id}: {err}"
            )
        return Outcome(notice=done)


def agent_pages(tokens: Sequence[ApiToken]) -> Pages:
    """The plumbing of the agent pages, admitting the local API's tokens."""
    access = Access(tokens, LEVELS, _user, PageError)
    return Pages(SITE, access, SessionStore(IDLE_S, MAX_SESSIONS))


def _context(user: User | None) -> dict[str, Any]:
    return {"user": user, "operator": user is not None and user.role in LEVELS["operator"]}


def _user(token: ApiToken) -> User:
    return User(token.name, token.role)


SITE: pages.Site[User] = pages.Site(
    name="agent pages",
    cookie=COOKIE,
    templates=HERE / "templates",
    home="/queues",
    context=_context,
)
