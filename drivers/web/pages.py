"""The consoles' request plumbing: sessions from cookies, role checks, CSRF, rendering.

Shared by HQ's console and the appliance's agent pages; each passes what differs: its
``Access`` (tokens and role model, refusing with ``PageError``), its ``SessionStore``, and
a ``Site`` (cookie name, template directory, security headers, home page, its own
template context).

Exceptions::

    PageError(status, error_id, message)   answered as the error page
    SignInNeeded                           answered by a redirect to the sign-in form

Every page declares the least level it needs; every state-changing request also presents
the session's CSRF token, in the ``csrf_token`` form field or the ``X-CSRF-Token`` header
(htmx sends the header).
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from drivers.daemon.access import Access
from drivers.web.sessions import Session, SessionStore

log = logging.getLogger(__name__)

CSRF_HEADER = "X-CSRF-Token"
CSP_HEAD = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"
CSP_TAIL = "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"


class Principal(Protocol):
    """What the pages need of who signed in."""

    @property
    def role(self) -> str: ...


PrincipalT = TypeVar("PrincipalT", bound=Principal)


class PageError(Exception):
    """A request the pages refuse; shown as the error page."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message


class SignInNeeded(Exception):
    """No signed-in session: the browser goes to the sign-in form."""


@dataclass(frozen=True)
class Site(Generic[PrincipalT]):
    """What one console sets: ``context`` adds its own names (menu, role flags) to
    every page from the signed-in principal (None when nobody is); ``csp`` adds
    Content-Security-Policy directives (``media-src 'self'``) to the pages' own."""

    name: str
    cookie: str
    templates: Path
    home: str
    context: Callable[[PrincipalT | None], dict[str, Any]]
    csp: tuple[str, ...] = ()
    prefix: str = "/console"

    def security_headers(self) -> dict[str, str]:
        """The headers of every page: no framing, no sniffing, no caching."""
        return {
            "Content-Security-Policy": "; ".join((CSP_HEAD, *self.csp, CSP_TAIL)),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        }


class Pages(Generic[PrincipalT]):
    """What every page of one console shares: access, sessions and templates."""

    def __init__(
        self,
        site: Site[PrincipalT],
        access: Access[PrincipalT],
        sessions: SessionStore[PrincipalT],
    ) -> None:
        self.site = site
        self.access = access
        self.sessions = sessions
        self.templates = Jinja2Templates(directory=site.templates)
        self.headers = site.security_headers()

    def session(self, request: Request) -> Session[PrincipalT] | None:
        """The request's live session, signed in or not."""
        return self.sessions.get(request.cookies.get(self.site.cookie))

    def needs(self, level: str) -> Any:
        """A dependency: the signed-in session whose role admits ``level``."""
        return Depends(self._signed_in(level))

    def changes(self, level: str) -> Any:
        """A dependency for state-changing requests: ``needs(level)`` plus the CSRF token."""
        signed_in = self._signed_in(level)

        async def checked(request: Request) -> Session[PrincipalT]:
            session = signed_in(request)
            await self.check_csrf(request, session)
            return session

        return Depends(checked)

    def _signed_in(self, level: str) -> Callable[[Request], Session[PrincipalT]]:
        def signed_in(request: Request) -> Session[PrincipalT]:
            session = self.session(request)
            if session is None or session.principal is None:
                raise SignInNeeded
            if not self.access.admits(session.principal.role, level):
                raise PageError(403, "role-forbidden", f"this page needs the {level} role")
            return session

        return signed_in

    async def check_csrf(self, request: Request, session: Session[PrincipalT]) -> None:
        """Refuse a state-changing request without this session's CSRF token."""
        presented = request.headers.get(CSRF_HEADER)
        if presented is None:
            field = (await request.form()).get("csrf_token")
            presented = field if isinstance(field, str) else None
        if not session.csrf_ok(presented):
            log.info("%s: csrf refused", self.site.name, extra={"path": request.url.path})
            raise PageError(403, "csrf-token-invalid", "reload the page and try again")

    def render(
        self,
        request: Request,
        session: Session[PrincipalT] | None,
        template: str,
        status: int = 200,
        **ctx: Any,
    ) -> HTMLResponse:
        """A page (or, for htmx, a fragment) with the site's context and the CSRF token."""
        principal = session.principal if session is not None else None
        context = {
            **self.site.context(principal),
            "csrf_token": session.csrf_token if session is not None else "",
            "prefix": self.site.prefix,
            **ctx,
        }
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        response.headers.update(self.headers)
        return response

    def set_cookie(
        self, request: Request, response: Response, session: Session[PrincipalT]
    ) -> None:
        """Send the session id: HttpOnly, SameSite=Strict, Secure over TLS."""
        response.set_cookie(
            self.site.cookie,
            session.session_id,
            path=self.site.prefix,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


def install_handlers(app: FastAPI, pages: Pages[Any]) -> None:
    """Answer PageError with the error page and SignInNeeded with a redirect."""
    name, prefix = pages.site.name, pages.site.prefix

    @app.exception_handler(PageError)
    async def _refused(request: Request, err: PageError) -> Response:
        log.info("%s refused", name, extra={"path": request.url.path, "error_id": err.error_id})
        return pages.render(request, pages.session(request), "error.html", err.status, error=err)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, err: SignInNeeded) -> Response:
        target = f"{prefix}/sign-in"
        if request.headers.get("HX-Request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)


def sign_in_router(pages: Pages[Any]) -> APIRouter:
    """The console's root (a redirect home), the sign-in form, sign-in and sign-out."""
    site = pages.site
    router = APIRouter(prefix=site.prefix, include_in_schema=False)

    @router.get("")
    def home() -> RedirectResponse:
        return RedirectResponse(f"{site.prefix}{site.home}", status_code=303)

    @router.get("/sign-in")
    def sign_in_form(request: Request) -> Response:
        session = pages.session(request) or pages.sessions.start(None)
        response = pages.render(request, session, "sign_in.html", problem=None)
        pages.set_cookie(request, response, session)
        return response

    @router.post("/sign-in")
    async def sign_in(request: Request, token: Annotated[str, Form()] = "") -> Response:
        anonymous = pages.session(request)
        if anonymous is None:
            raise PageError(403, "csrf-token-invalid", "the form expired; reload the page")
        await pages.check_csrf(request, anonymous)
        try:
            principal = pages.access.grant(token.strip(), "viewer")
        except PageError as err:
            return pages.render(request, anonymous, "sign_in.html", 401, problem=err.message)
        pages.sessions.end(anonymous.session_id)
        session = pages.sessions.start(principal)
        response = RedirectResponse(f"{site.prefix}{site.home}", status_code=303)
        pages.set_cookie(request, response, session)
        return response

    @router.post("/sign-out")
    async def sign_out(
        request: Request, session: Annotated[Session[Any], pages.changes("viewer")]
    ) -> Response:
        pages.sessions.end(session.session_id)
        response = RedirectResponse(f"{site.prefix}/sign-in", status_code=303)
        response.delete_cookie(site.cookie, path=site.prefix)
        return response

    return router


def vendor_router(prefix: str, node_modules: Path, files: Mapping[str, str]) -> APIRouter:
    """The npm libraries the pages load (name to path in ``node_modules``), and nothing
    else of node_modules."""
    missing = [p for p in files.values() if not (node_modules / p).is_file()]
    if missing:
        log.error(
            "console libraries missing (%s): run npm ci in %s",
            ", ".join(missing),
            node_modules.parent,
        )
    router = APIRouter(prefix=f"{prefix}/vendor", include_in_schema=False)

    @router.get("/{name}")
    def vendor(name: str) -> FileResponse:
        path = node_modules / files.get(name, "")
        if name not in files or not path.is_file():
            raise PageError(404, "unknown-file", f"no console library {name!r}; run npm ci")
        return FileResponse(path, media_type="text/javascript")

    return router
