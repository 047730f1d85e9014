"""HQ API for the SIM fleet (/api/v1/fleet): every role reads its sites, admins act.

An action on a SIM becomes a command for the site that holds its row and answers
``202`` with the command id; ``GET /commands/{id}`` shows whether the site applied it.
``POST /sims/{iccid}/move`` hands the row to another site (a card moved between sites).
Reads are in ``fleet/queries.py``, writes in ``fleet/store.py``.
"""

import datetime
from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query

from aggregator import reports
from aggregator.api.auth import Principal, hq_access
from aggregator.api.csv_export import csv_response
from aggregator.api.errors import ApiError
from aggregator.api.params import Format, guard, respond
from aggregator.fleet import queries
from aggregator.fleet import store as fleet
from aggregator.fleet.schemas import DncEntry, GroupMove, Limits, SiteMove, SlotSelect, plain_number
from aggregator.settings import AggregatorSettings
from drivers.sync.records import SimCommand


def build_fleet_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """The /api/v1/fleet routes."""
    router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"])
    access = hq_access(settings.api.tokens)
    who = Annotated[Principal, access.needs("viewer")]
    admin = Annotated[Principal, access.needs("admin")]
    configured = [s.site_id for s in settings.ingest.sites if not s.revoked]

    @router.get("/sims", summary="Every SIM by ICCID with site, slot, status, usage, limits")
    def list_sims(principal: who, site: str | None = None, format: Format = "json") -> Any:
        scope = principal.scope(site)
        with engine().connect() as conn:
            rows = queries.sim_list(conn, scope)
        if format == "csv":
            return csv_response("sims.csv", iter(_flat(r) for r in rows))
        return {"sims": rows}

    @router.get("/sims/{iccid}", summary="One SIM")
    def get_sim(iccid: str, principal: who) -> dict[str, Any]:
        with engine().connect() as conn:
            row = _guard(fleet.sim_site, conn, iccid)
            principal.scope(row.site_id)
            return queries.sim(conn, row)

    def act(iccid: str, principal: Principal, kind: str, **args: Any) -> dict[str, Any]:
        with engine().begin() as conn:
            row = _guard(fleet.sim_site, conn, iccid)
            command_id = fleet.issue(conn, row.site_id, SimCommand(kind, iccid, **args))
        return {"command_id": command_id, "site_id": row.site_id, "kind": kind}

    @router.put("/sims/{iccid}/limits", status_code=202, summary="Set a SIM's limits")
    def set_limits(iccid: str, limits: Limits, principal: admin) -> dict[str, Any]:
        return act(iccid, principal, "sim-set-limits", limits=limits.model_dump(exclude_none=True))

    @router.put("/sims/{iccid}/group", status_code=202, summary="Move a SIM to another group")
    def set_group(iccid: str, move: GroupMove, principal: admin) -> dict[str, Any]:
        return act(iccid, principal, "sim-set-group", group=move.group)

    @router.post("/sims/{iccid}/select-slot", status_code=202, summary="Select a slot on its modem")
    def select_slot(iccid: str, choice: SlotSelect, principal: admin) -> dict[str, Any]:
        with engine().connect() as conn:
            channel = _guard(fleet.sim_site, conn, iccid).channel
        return act(iccid, principal, "sim-select-slot", channel=channel, slot=choice.slot)

    @router.post("/sims/{iccid}/move", summary="Hand a SIM's row to the site it was moved to")
    def move_sim(iccid: str, move: SiteMove, principal: admin) -> dict[str, Any]:
        with engine().begin() as conn:
            try:
                old = fleet.move_sim(conn, iccid, move.site, configured)
            except fleet.FleetError as err:
                status = 404 if err.error_id == "unknown-sim" else 422
                raise ApiError(status, err.error_id, str(err)) from None
        return {"iccid": iccid, "from_site": old, "site_id": move.site}

    for action, kind in (
        ("disable", "sim-disable"),
        ("enable", "sim-enable"),
        ("retire", "sim-retire"),
        ("clear-review", "sim-clear-review"),
    ):
        _action_route(router, admin, act, action, kind)

    @router.put(
        "/groups/{group}/limits", status_code=202, summary="Set a group's limits everywhere"
    )
    def set_group_limits(group: str, limits: Limits, principal: admin) -> dict[str, Any]:
        command = SimCommand(
            "sim-set-group-limits", group=group, limits=limits.model_dump(exclude_none=True)
        )
        with engine().begin() as conn:
            targets = sorted(set(configured).union(queries.seen_sites(conn)))
            ids = {s: fleet.issue(conn, s, command) for s in targets}
        return {"commands": ids}

    @router.get("/commands/{command_id}", summary="Whether a site applied a command")
    def get_command(command_id: str, principal: who) -> dict[str, Any]:
        with engine().connect() as conn:
            found = queries.command(conn, command_id)
        if found is None or not principal.may_see(found.site_id):
            raise ApiError(404, "unknown-command", f"no command {command_id!r}")
        return {
            "command_id": command_id,
            "site_id": found.site_id,
            "kind": found.kind,
            "args": found.args,
            "state": found.state,
            "detail": found.detail,
        }

    @router.get("/reports/usage", summary="Per SIM and local day: calls, answer rate, talk time")
    def usage(
        principal: who,
        start: Annotated[str, Query(alias="from", description="first day, YYYY-MM-DD")],
        end: Annotated[str, Query(alias="to", description="last day, inclusive")],
        site: str | None = None,
        iccid: str | None = None,
        format: Format = "json",
    ) -> Any:
        first, last = _day(start), _day(end)
        _day_span(first, last, settings.reports.max_span_days)
        flt = queries.UsageFilter(first, last, principal.scope(site), iccid)
        with engine().connect() as conn:
            rows = queries.usage_days(conn, flt)
        return respond(rows, format, "sim-usage.csv")

    @router.get("/refusals", summary="Outbound calls the sites refused (DNC, hours, attempts)")
    def refusals(
        principal: who,
        site: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        format: Format = "json",
    ) -> Any:
        scope = principal.scope(site)
        with engine().connect() as conn:
            rows = queries.refusals(conn, scope, limit)
        return respond(rows, format, "refusals.csv", key="refusals")

    _dnc_routes(router, who, admin, engine, configured)
    return router


def _action_route(
    router: APIRouter, admin: Any, act: Callable[..., Any], action: str, kind: str
) -> None:
    def handler(iccid: str, principal: admin) -> dict[str, Any]:
        return dict(act(iccid, principal, kind))

    router.add_api_route(
        f"/sims/{{iccid}}/{action}",
        handler,
        methods=["POST"],
        status_code=202,
        summary=f"{action.capitalize()} a SIM",
    )


def _dnc_routes(
    router: APIRouter, who: Any, admin: Any, engine: Callable[[], sa.Engine], configured: list[str]
) -> None:
    @router.get("/dnc", summary="The company do-not-call list")
    def get_dnc(principal: who) -> dict[str, Any]:
        with engine().connect() as conn:
            return {"numbers": queries.dnc_list(conn)}

    @router.put("/dnc/{number}", summary="Put a number on the company list (pushed to every site)")
    def put_dnc(number: str, entry: DncEntry, principal: admin) -> dict[str, Any]:
        plain = _number(number)
        with engine().begin() as conn:
            version = fleet.dnc_add(conn, plain, entry.reason, configured)
        return {"number": plain, "version": version}

    @router.delete("/dnc/{number}", summary="Take a number off the company list")
    def delete_dnc(number: str, principal: admin) -> dict[str, Any]:
        plain = _number(number)
        with engine().begin() as conn:
            version = fleet.dnc_remove(conn, plain, configured)
        if version is None:
            raise ApiError(404, "not-listed", f"{plain} is not on the company list")
        return {"number": plain, "version": version}


def _number(text: str) -> str:
    plain = plain_number(text)
    if plain is None:
        raise ApiError(422, "bad-number", f"{text!r} is not a phone number")
    return plain


def _guard(func: Callable[..., Any], *args: Any) -> Any:
    try:
        return func(*args)
    except fleet.FleetError as err:
        raise ApiError(404, err.error_id, str(err)) from None


def _day(text: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ApiError(422, "bad-date", f"{text!r} is not a date (YYYY-MM-DD)") from None


def _day_span(first: str, last: str, max_days: int) -> None:
    """Refuse a usage report that runs backwards or covers more than ``max_days`` days."""
    days = (datetime.date.fromisoformat(last) - datetime.date.fromisoformat(first)).days
    guard(reports.report_span, 0, days * reports.DAY_MS, max_days)


def _flat(sim: dict[str, Any]) -> dict[str, Any]:
    usage = sim.get("usage") or {}
    keep = {k: v for k, v in sim.items() if k not in ("usage", "limits", "last_switch", "sms")}
    sms = sim.get("sms") or {}
    switch = sim.get("last_switch") or {}
    return {
        **keep,
        **{
            f"usage_{k}": usage.get(k)
            for k in ("calls_today", "connected_s_today", "connected_s_month")
        },
        "limits": ";".join(f"{k}={v}" for k, v in sorted((sim.get("limits") or {}).items())),
        "last_switch_reason": switch.get("reason", ""),
        **{f"sms_{k}": sms.get(k, 0) for k in ("received", "sent", "failed")},
    }
