"""The agent pages' request plumbing: sessions from cookies, role checks, CSRF, rendering.

Exceptions::

    PageError(status, error_id, message)   answered as the error page
    SignInNeeded                           answered by a redirect to the sign-in form

Tokens and roles are the local API's (``api.tokens``; ``viewer`` < ``operator`` <
``admin``, ``appliance.access``). Every page declares the least level it needs; every
state-changing request (all are ``POST``) also presents the session's CSRF token, in the
``csrf_token`` form field or the ``X-CSRF-Token`` header (htmx sends the header).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from appliance.access import LEVELS
from drivers.daemon.access import Access
from drivers.daemon.settings_base import ApiToken
from drivers.web.sessions import Session, SessionStore

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PREFIX = "/console"
COOKIE = "callmesh_agent_console"
CSRF_HEADER = "X-CSRF-Token"
IDLE_S = 8 * 3600
MAX_SESSIONS = 200
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class User:
    """Who signed in: the token's name and role."""

    name: str
    role: str


UserSession = Session[User]


class PageError(Exception):
    """A request the pages refuse; shown as the error page."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message


class SignInNeeded(Exception):
    """No signed-in session: the browser goes to the sign-in form."""


class Pages:
    """What every page shares: access, sessions and templates."""

    def __init__(self, tokens: Sequence[ApiToken]) -> None:
        self.access = Access(tokens, LEVELS, _user, PageError)
        self.sessions: SessionStore[User] = SessionStore(IDLE_S, MAX_SESSIONS)
        self.templates = Jinja2Templates(directory=HERE / "templates")

    def session(self, request: Request) -> UserSession | None:
        """The request's live session, signed in or not."""
        return self.sessions.get(request.cookies.get(COOKIE))

    def needs(self, level: str) -> Any:
        """A dependency: the signed-in session whose role admits ``level``."""
        return Depends(self._signed_in(level))

    def changes(self, level: str) -> Any:
        """A dependency for ``POST``s: ``needs(level)`` plus the session's CSRF token."""
        signed_in = self._signed_in(level)

        async def checked(request: Request) -> UserSession:
            session = signed_in(request)
            await check_csrf(request, session)
            return session

        return Depends(checked)

    def _signed_in(self, level: str) -> Callable[[Request], UserSession]:
        def signed_in(request: Request) -> UserSession:
            session = self.session(request)
            if session is None or session.principal is None:
                raise SignInNeeded
            if not self.access.admits(session.principal.role, level):
                raise PageError(403, "role-forbidden", f"this needs the {level} role")
            return session

        return signed_in

    def render(
        self,
        request: Request,
        session: UserSession | None,
        template: str,
        status: int = 200,
        **ctx: Any,
    ) -> HTMLResponse:
        """A page (or, for htmx, a fragment) with the user and the CSRF token."""
        user = session.principal if session is not None else None
        context = {
            "user": user,
            "operator": user is not None and self.access.admits(user.role, "operator"),
            "csrf_token": session.csrf_token if session is not None else "",
            "prefix": PREFIX,
            **ctx,
        }
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    def set_cookie(self, request: Request, response: Response, session: UserSession) -> None:
        """Send the session id: HttpOnly, SameSite=Strict, Secure over TLS."""
        response.set_cookie(
            COOKIE,
            session.session_id,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


def _user(token: ApiToken) -> User:
    return User(token.name, token.role)


async def check_csrf(request: Request, session: UserSession) -> None:
    """Refuse a state-changing request without this session's CSRF token."""
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        field = (await request.form()).get("csrf_token")
        presented = field if isinstance(field, str) else None
    if not session.csrf_ok(presented):
        log.info("agent pages: csrf refused", extra={"path": request.url.path})
        raise PageError(403, "csrf-token-invalid", "reload the page and try again")


def install_handlers(app: FastAPI, pages: Pages) -> None:
    """Answer PageError with the error page and SignInNeeded with a redirect."""

    @app.exception_handler(PageError)
    async def _refused(request: Request, err: PageError) -> Response:
        log.info("agent pages refused", extra={"path": request.url.path, "error_id": err.error_id})
        return pages.render(request, pages.session(request), "error.html", err.status, error=err)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, err: SignInNeeded) -> Response:
        target = f"{PREFIX}/sign-in"
        if request.headers.get("HX-Request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
