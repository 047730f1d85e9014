"""The console's request plumbing: sessions from cookies, role checks, CSRF, rendering.

Exceptions::

    ConsoleError(status, error_id, message)   answered as the error page
    SignInNeeded                               answered by a redirect to the sign-in form

Every page declares the least level it needs (``viewer`` or ``admin``, the HQ API's
levels); every state-changing request also presents the session's CSRF token, in the
``csrf_token`` form field or the ``X-CSRF-Token`` header (htmx sends the header).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from aggregator.api.auth import Principal, hq_access
from aggregator.api.errors import ApiError
from aggregator.console.sessions import COOKIE, Session, SessionStore
from aggregator.settings import AggregatorSettings

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PREFIX = "/console"
CSRF_HEADER = "X-CSRF-Token"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
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


class ConsoleError(Exception):
    """A request the console refuses; shown as the error page."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message


class SignInNeeded(Exception):
    """No signed-in session: the browser goes to the sign-in form."""


class Console:
    """What every console route shares: settings, database, sessions and templates."""

    def __init__(self, settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> None:
        self.settings = settings
        self.engine = engine
        self.access = hq_access(settings.api.tokens)
        self.sessions = SessionStore(
            settings.console.session_idle_minutes * 60, settings.console.max_sessions
        )
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.sites_configured = [s.site_id for s in settings.ingest.sites if not s.revoked]

    def session(self, request: Request) -> Session | None:
        """The request's live session, signed in or not."""
        return self.sessions.get(request.cookies.get(COOKIE))

    def needs(self, level: str) -> Any:
        """A dependency: the signed-in session whose role admits ``level``."""
        return Depends(self._signed_in(level))

    def changes(self, level: str) -> Any:
        """A dependency for state-changing requests: ``needs(level)`` plus the CSRF token."""
        signed_in = self._signed_in(level)

        async def checked(request: Request) -> Session:
            session = signed_in(request)
            await check_csrf(request, session)
            return session

        return Depends(checked)

    def _signed_in(self, level: str) -> Callable[[Request], Session]:

        def signed_in(request: Request) -> Session:
            session = self.session(request)
            if session is None or session.principal is None:
                raise SignInNeeded
            if not self.access.admits(session.principal.role, level):
                raise ConsoleError(403, "role-forbidden", f"this page needs the {level} role")
            return session

        return signed_in

    def render(
        self,
        request: Request,
        session: Session | None,
        template: str,
        status: int = 200,
        **ctx: Any,
    ) -> HTMLResponse:
        """A page (or, for htmx, a fragment) with the session's user, CSRF token and menu."""
        principal = session.principal if session is not None else None
        context = {
            "principal": principal,
            "is_admin": principal is not None and principal.role == "admin",
            "csrf_token": session.csrf_token if session is not None else "",
            "nav": NAV if principal is not None else (),
            "prefix": PREFIX,
            **ctx,
        }
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    def set_cookie(self, request: Request, response: Response, session: Session) -> None:
        """Send the session id: HttpOnly, SameSite=Strict, Secure over TLS."""
        response.set_cookie(
            COOKIE,
            session.session_id,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


async def check_csrf(request: Request, session: Session) -> None:
    """Refuse a state-changing request without this session's CSRF token."""
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        field = (await request.form()).get("csrf_token")
        presented = field if isinstance(field, str) else None
    if not session.csrf_ok(presented):
        log.info("console csrf refused", extra={"path": request.url.path})
        raise ConsoleError(403, "csrf-token-invalid", "reload the page and try again")


def scope(principal: Principal, site: str | None) -> frozenset[str] | None:
    """The sites a page may show: the requested one if allowed, else all allowed."""
    try:
        return principal.scope(site or None)
    except ApiError as err:
        raise ConsoleError(err.status, err.error_id, err.message) from None


def install_handlers(app: FastAPI, console: Console) -> None:
    """Answer ConsoleError with the error page and SignInNeeded with a redirect."""

    @app.exception_handler(ConsoleError)
    async def _refused(request: Request, err: ConsoleError) -> Response:
        log.info("console refused", extra={"path": request.url.path, "error_id": err.error_id})
        return console.render(
            request, console.session(request), "error.html", err.status, error=err
        )

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, err: SignInNeeded) -> Response:
        target = f"{PREFIX}/sign-in"
        if request.headers.get("HX-Request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)


async def form_text(request: Request) -> dict[str, str]:
    """The submitted form's text fields, without the CSRF token."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
