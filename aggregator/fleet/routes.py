"""HQ API for the SIM fleet (/api/v1/fleet): every role reads its sites, admins act.

An action on a SIM becomes a command for the site that holds its row and answers
``202`` with the command id; ``GET /commands/{id}`` shows whether the site applied it.
``POST /sims/{iccid}/move`` hands the row to another site (a card moved between sites).
"""

import datetime
from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from aggregator import reports
from aggregator.api.auth import Principal, hq_access
from aggregator.api.csv_export import csv_response
from aggregator.api.errors import ApiError
from aggregator.api.routes import Format
from aggregator.fleet import store as fleet
from aggregator.settings import AggregatorSettings
from aggregator.store.db import insert
from aggregator.store.schema import commands, compliance_events, dnc_numbers, sim_usage_days, sims
from aggregator.store.sms import counts_by_sim

Hhmm = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class HourWindow(BaseModel):
    start: Hhmm
    end: Hhmm
    days: list[Annotated[int, Field(ge=0, le=6)]] = [0, 1, 2, 3, 4, 5, 6]


class Limits(BaseModel):
    """Limits of a SIM or group; a field left out is not set by HQ."""

    calls_per_day: int | None = Field(None, ge=0)
    minutes_per_day: float | None = Field(None, ge=0)
    minutes_per_month: float | None = Field(None, ge=0)
    max_call_s: int | None = Field(None, ge=1)
    hours: list[HourWindow] | None = None


class GroupMove(BaseModel):
    group: str = Field(min_length=1, max_length=64)


class SlotSelect(BaseModel):
    slot: int = Field(ge=0, le=7)


class SiteMove(BaseModel):
    site: str = Field(min_length=1, max_length=64)


class DncEntry(BaseModel):
    reason: str = Field("", max_length=256)


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
        query = sa.select(sims).order_by(sims.c.site_id, sims.c.channel, sims.c.slot)
        if scope is not None:
            query = query.where(sims.c.site_id.in_(sorted(scope)))
        with engine().connect() as conn:
            rows = [_sim(r) for r in conn.execute(query)]
            _add_sms_counts(conn, rows)
        if format == "csv":
            return csv_response("sims.csv", iter(_flat(r) for r in rows))
        return {"sims": rows}

    @router.get("/sims/{iccid}", summary="One SIM")
    def get_sim(iccid: str, principal: who) -> dict[str, Any]:
        with engine().connect() as conn:
            row = _guard(fleet.sim_site, conn, iccid)
            principal.scope(row.site_id)
            return _add_sms_counts(conn, [_sim(row)])[0]

    def act(iccid: str, principal: Principal, kind: str, **args: Any) -> dict[str, Any]:
        with engine().begin() as conn:
            row = _guard(fleet.sim_site, conn, iccid)
            command_id = fleet.issue(conn, row.site_id, kind, {"iccid": iccid, **args})
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
        args = {"group": group, "limits": limits.model_dump(exclude_none=True)}
        with engine().begin() as conn:
            targets = sorted(set(configured).union(_seen_sites(conn)))
            ids = {s: fleet.issue(conn, s, "sim-set-group-limits", args) for s in targets}
        return {"commands": ids}

    @router.get("/commands/{command_id}", summary="Whether a site applied a command")
    def get_command(command_id: str, principal: who) -> dict[str, Any]:
        with engine().connect() as conn:
            row = conn.execute(
                sa.select(commands).where(commands.c.command_id == command_id)
            ).first()
        if row is None or not principal.may_see(row.site_id):
            raise ApiError(404, "unknown-command", f"no command {command_id!r}")
        state = "pending" if row.done_ms is None else ("applied" if row.ok else "failed")
        return {
            "command_id": command_id,
            "site_id": row.site_id,
            "kind": row.kind,
            "args": row.args,
            "state": state,
            "detail": row.detail,
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
        query = (
            sa.select(sim_usage_days)
            .where(sim_usage_days.c.day >= first, sim_usage_days.c.day <= last)
            .order_by(sim_usage_days.c.day, sim_usage_days.c.iccid)
        )
        scope = principal.scope(site)
        if scope is not None:
            query = query.where(sim_usage_days.c.site_id.in_(sorted(scope)))
        if iccid is not None:
            query = query.where(sim_usage_days.c.iccid == iccid)
        with engine().connect() as conn:
            rows = [_usage(r) for r in conn.execute(query)]
        if format == "csv":
            return csv_response("sim-usage.csv", iter(rows))
        return {"rows": rows}

    @router.get("/refusals", summary="Outbound calls the sites refused (DNC, hours, attempts)")
    def refusals(
        principal: who,
        site: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        format: Format = "json",
    ) -> Any:
        query = sa.select(compliance_events).order_by(compliance_events.c.at_ms.desc()).limit(limit)
        scope = principal.scope(site)
        if scope is not None:
            query = query.where(compliance_events.c.site_id.in_(sorted(scope)))
        with engine().connect() as conn:
            rows = [_refusal(r) for r in conn.execute(query)]
        return csv_response("refusals.csv", iter(rows)) if format == "csv" else {"refusals": rows}

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
            rows = conn.execute(sa.select(dnc_numbers).order_by(dnc_numbers.c.number)).all()
        return {"numbers": [{"number": r.number, "reason": r.reason} for r in rows]}

    @router.put("/dnc/{number}", summary="Put a number on the company list (pushed to every site)")
    def put_dnc(number: str, entry: DncEntry, principal: admin) -> dict[str, Any]:
        plain = _number(number)
        with engine().begin() as conn:
            stmt = insert(conn.engine, dnc_numbers).on_conflict_do_update(
                index_elements=["number"], set_={"reason": entry.reason}
            )
            conn.execute(
                stmt, {"number": plain, "reason": entry.reason, "added_ms": fleet.now_ms()}
            )
            version = fleet.publish_dnc(conn, configured)
        return {"number": plain, "version": version}

    @router.delete("/dnc/{number}", summary="Take a number off the company list")
    def delete_dnc(number: str, principal: admin) -> dict[str, Any]:
        plain = _number(number)
        with engine().begin() as conn:
            gone = conn.execute(
                sa.delete(dnc_numbers).where(dnc_numbers.c.number == plain)
            ).rowcount
            if not gone:
                raise ApiError(404, "not-listed", f"{plain} is not on the company list")
            version = fleet.publish_dnc(conn, configured)
        return {"number": plain, "version": version}


def _number(text: str) -> str:
    plain = "".join(c for c in text if c not in " ().-")
    if not (plain.lstrip("+").isdigit() and 3 <= len(plain.lstrip("+")) <= 20):
        raise ApiError(422, "bad-number", f"{text!r} is not a phone number")
    return plain


def _seen_sites(conn: sa.Connection) -> set[str]:
    return {r.site_id for r in conn.execute(sa.select(sims.c.site_id).distinct())}


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
    start = datetime.date.fromisoformat(first)
    end = datetime.date.fromisoformat(last)
    try:
        reports.report_span(0, (end - start).days * reports.DAY_MS, max_days)
    except reports.QueryError as err:
        raise ApiError(422, err.error_id, str(err)) from None


def _sim(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    found["group"] = found.pop("sim_group")
    found["updated"] = reports.render_time(found.pop("updated_ms"), reports.zone("UTC"))
    return found


def _add_sms_counts(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts = counts_by_sim(conn, [r["iccid"] for r in rows])
    for row in rows:
        row["sms"] = counts.get(row["iccid"], {"received": 0, "sent": 0, "failed": 0})
    return rows


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


def _usage(row: Any) -> dict[str, Any]:
    answered = row.answered
    return {
        "day": row.day,
        "site_id": row.site_id,
        "iccid": row.iccid,
        "calls": row.calls,
        "answered": answered,
        "answer_rate": round(100 * answered / row.calls, 1) if row.calls else None,
        "connected_min": round(row.connected_s / 60, 2),
        "average_talk_s": round(row.connected_s / answered, 1) if answered else None,
        "effective_calls": row.effective,
    }


def _refusal(row: Any) -> dict[str, Any]:
    return {
        "site_id": row.site_id,
        "at": reports.render_time(row.at_ms, reports.zone("UTC")),
        "destination": row.destination,
        "campaign": row.campaign,
        "error_id": row.error_id,
        "message": row.message,
    }
