"""Routes of the HQ API. Every route needs a bearer token; site-viewers see their sites."""

import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from aggregator import recording_store, reports
from aggregator.api.auth import Principal, hq_access
from aggregator.api.csv_export import csv_response
from aggregator.api.errors import ApiError
from aggregator.settings import AggregatorSettings
from aggregator.store.schema import sites

ONLINE_WINDOW_MS = 60_000
Format = Literal["json", "csv"]


def build_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """All /api/v1 routes bound to this aggregator's settings and database."""
    router = APIRouter(prefix="/api/v1")
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]

    @router.get("/sites", tags=["sites"], summary="Sites with status, last seen and backlog")
    def list_sites(principal: who) -> dict[str, Any]:
        with engine().connect() as conn:
            rows = conn.execute(sa.select(sites).order_by(sites.c.site_id)).all()
        now = int(time.time() * 1000)
        return {"sites": [_site(r, now) for r in rows if principal.may_see(r.site_id)]}

    @router.get("/sites/{site_id}", tags=["sites"], summary="One site's status and health")
    def get_site(site_id: str, principal: who) -> dict[str, Any]:
        principal.scope(site_id)
        with engine().connect() as conn:
            row = conn.execute(sa.select(sites).where(sites.c.site_id == site_id)).first()
        if row is None:
            raise ApiError(404, "unknown-site", f"no site {site_id!r} has connected yet")
        return {**_site(row, int(time.time() * 1000)), "health": row.health}

    @router.get("/cdrs", tags=["cdrs"], summary="Search CDRs, newest first, cursor paginated")
    def search_cdrs(
        principal: who,
        site: str | None = None,
        start: Annotated[str | None, Query(alias="from", description="date or ISO time")] = None,
        end: Annotated[str | None, Query(alias="to", description="exclusive")] = None,
        number: str | None = None,
        extension: str | None = None,
        disposition: str | None = None,
        trunk: str | None = None,
        tz: str = "UTC",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        format: Format = "json",
    ) -> Any:
        zone = _zone(tz)
        flt = reports.CdrFilter(
            sites=principal.scope(site),
            start_ms=_time(start, zone),
            end_ms=_time(end, zone),
            number=number,
            extension=extension,
            disposition=disposition,
            trunk=trunk,
        )
        if format == "csv":
            return csv_response("cdrs.csv", _all_pages(engine, flt, zone))
        with engine().connect() as conn:
            page, next_cursor = _guard(reports.search_cdrs, conn, flt, zone, limit, cursor)
            recording_store.annotate(conn, page)
        return {"cdrs": page, "next_cursor": next_cursor}

    @router.get(
        "/reports/summary",
        tags=["reports"],
        summary="Calls, answered, ASR, ACD, minutes, busiest hour per site and day/hour",
    )
    def summary(
        principal: who,
        start: Annotated[str, Query(alias="from")],
        end: Annotated[str, Query(alias="to")],
        site: str | None = None,
        tz: str = "UTC",
        group: Literal["day", "hour"] = "day",
        format: Format = "json",
    ) -> Any:
        zone = _zone(tz)
        span = _span(start, end, zone, settings.reports.max_span_days)
        with engine().connect() as conn:
            rows = reports.summary(conn, principal.scope(site), *span, zone, group)
        return _respond(rows, format, "summary.csv")

    def by_key(dim: str) -> Callable[..., Any]:
        def handler(
            principal: who,
            start: Annotated[str, Query(alias="from")],
            end: Annotated[str, Query(alias="to")],
            site: str | None = None,
            tz: str = "UTC",
            format: Format = "json",
        ) -> Any:
            zone = _zone(tz)
            span = _span(start, end, zone, settings.reports.max_span_days)
            with engine().connect() as conn:
                rows = reports.by_key(conn, dim, principal.scope(site), *span)
            return _respond(rows, format, f"by-{dim}.csv")

        return handler

    router.add_api_route(
        "/reports/by-extension",
        by_key("extension"),
        methods=["GET"],
        tags=["reports"],
        summary="Totals per extension",
    )
    router.add_api_route(
        "/reports/by-trunk",
        by_key("trunk"),
        methods=["GET"],
        tags=["reports"],
        summary="Totals per trunk",
    )

    @router.get(
        "/reports/routing",
        tags=["reports"],
        summary="Per site: peer site health (SIP OPTIONS) and failover counts per route",
    )
    def routing_health(principal: who) -> dict[str, Any]:
        with engine().connect() as conn:
            rows = conn.execute(sa.select(sites).order_by(sites.c.site_id)).all()
        now = int(time.time() * 1000)
        return {
            "sites": {
                r.site_id: {
                    "status": _site(r, now)["status"],
                    "peers": (r.health or {}).get("peers", {}),
                    "failovers": (r.health or {}).get("failovers", {}),
                }
                for r in rows
                if principal.may_see(r.site_id)
            }
        }

    @router.get(
        "/recordings/{site_id}/{recording_id}",
        tags=["recordings"],
        summary="Download a recording (WAV)",
    )
    def download(site_id: str, recording_id: str, principal: who) -> FileResponse:
        principal.scope(site_id)
        with engine().connect() as conn:
            found = recording_store.find(conn, site_id, recording_id)
        if found is None:
            raise ApiError(404, "unknown-recording", f"no recording {recording_id!r} at {site_id}")
        if found.state == "expired":
            raise ApiError(410, "recording-expired", "deleted by HQ's recording retention")
        path = settings.recordings_dir() / found.path
        if not path.is_file():
            raise ApiError(410, "recording-file-gone", "the recording's file is no longer on disk")
        return FileResponse(
            path,
            media_type="audio/wav",
            filename=f"{recording_id}.wav",
            headers={"X-Content-SHA256": found.sha256},
        )

    return router


def _site(row: Any, now_ms: int) -> dict[str, Any]:
    health = row.health if isinstance(row.health, dict) else {}
    alarms = health.get("alarms")
    online = now_ms - row.last_seen_ms < ONLINE_WINDOW_MS
    return {
        "site_id": row.site_id,
        "status": "online" if online else "offline",
        "last_seen": reports.render_time(row.last_seen_ms, reports.zone("UTC")),
        "software": row.software,
        "backlog_cdr": row.backlog_cdr,
        "cdrs_received": row.cdrs_received,
        "store_used_percent": health.get("store_used_percent"),
        "calls_active": calls_active(health) if online else None,
        "alarms": [a for a in alarms if isinstance(a, str)] if isinstance(alarms, list) else [],
    }


def calls_active(health: Any) -> int | None:
    """Calls in progress a site last reported; None if it reports none (it has no PBX)."""
    found = health.get("calls_active") if isinstance(health, dict) else None
    valid = isinstance(found, int) and not isinstance(found, bool) and found >= 0
    return found if valid else None


def _guard(func: Callable[..., Any], *args: Any) -> Any:
    try:
        return func(*args)
    except reports.QueryError as err:
        raise ApiError(422, err.error_id, str(err)) from None


def _zone(name: str) -> Any:
    return _guard(reports.zone, name)


def _time(text: str | None, zone: Any) -> int | None:
    return None if text is None else _guard(reports.parse_time, text, zone)


def _span(start: str, end: str, zone: Any, max_days: int) -> tuple[int, int]:
    first, last = _guard(reports.parse_time, start, zone), _guard(reports.parse_time, end, zone)
    return tuple(_guard(reports.report_span, first, last, max_days))


def _all_pages(
    engine: Callable[[], sa.Engine], flt: reports.CdrFilter, zone: Any
) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    while True:
        with engine().connect() as conn:
            page, cursor = reports.search_cdrs(conn, flt, zone, 1000, cursor)
        yield from page
        if cursor is None:
            return


def _respond(rows: list[dict[str, Any]], format: str, filename: str) -> Any:
    if format == "csv":
        return csv_response(filename, iter(rows))
    return {"rows": rows}
