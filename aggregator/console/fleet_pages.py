"""Console pages of the SIM fleet and the company do-not-call list."""

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from aggregator.console import forms
from aggregator.console.sessions import Session
from aggregator.console.web import PREFIX, Console, form_text, scope
from aggregator.fleet import queries
from aggregator.fleet import store as fleet
from aggregator.fleet.schemas import Limits, SlotSelect, plain_number
from drivers.sync.records import SimCommand
from drivers.web.pages import PageError

ACTIONS = {
    "disable": "sim-disable",
    "enable": "sim-enable",
    "retire": "sim-retire",
    "clear-review": "sim-clear-review",
}


def build_fleet_pages(console: Console) -> APIRouter:
    """SIM list, one SIM with its actions, the DNC list."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    viewer = console.needs("viewer")
    admin = console.changes("admin")

    @router.get("/sims")
    def sims_page(request: Request, session: Annotated[Session, viewer]) -> Response:
        with console.engine().connect() as conn:
            rows = queries.sims_with_commands(conn, _sites(session))
        return console.render(request, session, "sims.html", page="sims", sims=rows)

    @router.get("/sims/{iccid}")
    def sim_page(iccid: str, request: Request, session: Annotated[Session, viewer]) -> Response:
        sim = _sim(console, session, iccid)
        shown = forms.as_text(forms.LIMITS_FORM, sim["limits"] or {})
        return _sim_view(console, request, session, sim, shown, {})

    @router.post("/sims/{iccid}/limits")
    async def set_limits(
        iccid: str, request: Request, session: Annotated[Session, admin]
    ) -> Response:
        sim = _sim(console, session, iccid)
        submitted = await form_text(request)
        try:
            limits = Limits.model_validate(forms.parse(forms.LIMITS_FORM, submitted))
        except ValidationError as err:
            errors = forms.field_errors(err, forms.LIMITS_FORM)
            return _sim_view(console, request, session, sim, submitted, errors, 422)
        _issue(console, sim, "sim-set-limits", limits=limits.model_dump(exclude_none=True))
        return _back_to(sim)

    @router.post("/sims/{iccid}/select-slot")
    async def select_slot(
        iccid: str, request: Request, session: Annotated[Session, admin]
    ) -> Response:
        sim = _sim(console, session, iccid)
        try:
            choice = SlotSelect.model_validate({"slot": (await form_text(request)).get("slot")})
        except ValidationError as err:
            errors = {"slot": [e["msg"] for e in err.errors()]}
            shown = forms.as_text(forms.LIMITS_FORM, sim["limits"] or {})
            return _sim_view(console, request, session, sim, shown, errors, 422)
        _issue(console, sim, "sim-select-slot", channel=sim["channel"], slot=choice.slot)
        return _back_to(sim)

    @router.post("/sims/{iccid}/{action}")
    def act(iccid: str, action: str, session: Annotated[Session, admin]) -> Response:
        if action not in ACTIONS:
            raise PageError(404, "unknown-action", f"no SIM action {action!r}")
        sim = _sim(console, session, iccid)
        _issue(console, sim, ACTIONS[action])
        return _back_to(sim)

    _dnc_pages(router, console)
    return router


def _dnc_pages(router: APIRouter, console: Console) -> None:
    viewer = console.needs("viewer")
    admin = console.changes("admin")

    def show(
        request: Request, session: Session, errors: dict[str, list[str]], status: int = 200
    ) -> Response:
        with console.engine().connect() as conn:
            numbers = queries.dnc_list(conn)
        return console.render(
            request, session, "dnc.html", status, page="dnc", numbers=numbers, errors=errors
        )

    @router.get("/dnc")
    def dnc_page(request: Request, session: Annotated[Session, viewer]) -> Response:
        return show(request, session, {})

    @router.post("/dnc")
    async def dnc_add(request: Request, session: Annotated[Session, admin]) -> Response:
        submitted = await form_text(request)
        number = plain_number(submitted.get("number", ""))
        if number is None:
            return show(request, session, {"number": ["3 to 20 digits, + allowed"]}, 422)
        reason = submitted.get("reason", "").strip()[:256]
        with console.engine().begin() as conn:
            fleet.dnc_add(conn, number, reason, console.sites_configured)
        return RedirectResponse(f"{PREFIX}/dnc", status_code=303)

    @router.post("/dnc/{number}/remove")
    def dnc_remove(number: str, session: Annotated[Session, admin]) -> Response:
        with console.engine().begin() as conn:
            if fleet.dnc_remove(conn, number, console.sites_configured) is None:
                raise PageError(404, "not-listed", f"{number} is not on the company list")
        return RedirectResponse(f"{PREFIX}/dnc", status_code=303)


def _sites(session: Session) -> frozenset[str] | None:
    return session.principal.sites if session.principal is not None else frozenset()


def _sim(console: Console, session: Session, iccid: str) -> dict[str, Any]:
    with console.engine().connect() as conn:
        try:
            site_id = fleet.sim_site(conn, iccid).site_id
        except fleet.FleetError as err:
            raise PageError(404, err.error_id, str(err)) from None
        if session.principal is not None:
            scope(session.principal, site_id)
        rows = queries.sims_with_commands(conn, frozenset({site_id}))
    return next(r for r in rows if r["iccid"] == iccid)


def _sim_view(
    console: Console,
    request: Request,
    session: Session,
    sim: dict[str, Any],
    shown: dict[str, str],
    errors: dict[str, list[str]],
    status: int = 200,
) -> Response:
    return console.render(
        request,
        session,
        "sim.html",
        status,
        page="sims",
        sim=sim,
        fields=forms.LIMITS_FORM,
        values=shown,
        errors=errors,
        actions=ACTIONS,
    )


def _issue(console: Console, sim: dict[str, Any], kind: str, **args: Any) -> str:
    with console.engine().begin() as conn:
        return fleet.issue(conn, sim["site_id"], SimCommand(kind, sim["iccid"], **args))


def _back_to(sim: dict[str, Any]) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/sims/{sim['iccid']}", status_code=303)
