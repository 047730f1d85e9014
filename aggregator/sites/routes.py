"""HQ API for sites (/api/v1/sites) and the per-site routing health report."""

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter

from aggregator.api.auth import Principal, hq_access
from aggregator.api.errors import ApiError
from aggregator.settings import AggregatorSettings
from aggregator.sites.live_queues import live_queues
from aggregator.sites.queries import LastUpgrade, SiteRow, site_row, site_rows


def build_sites_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """/sites, /sites/{site_id}, /queues/live and /reports/routing."""
    router = APIRouter(prefix="/api/v1")
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]

    @router.get("/sites", tags=["sites"], summary="Sites with status, last seen and backlog")
    def list_sites(principal: who) -> dict[str, Any]:
        with engine().connect() as conn:
            rows = site_rows(conn, principal.sites)
        return {"sites": [site_view(r) for r in rows]}

    @router.get("/sites/{site_id}", tags=["sites"], summary="One site's status and health")
    def get_site(site_id: str, principal: who) -> dict[str, Any]:
        principal.scope(site_id)
        with engine().connect() as conn:
            row = site_row(conn, site_id)
        if row is None:
            raise ApiError(404, "unknown-site", f"no site {site_id!r} has connected yet")
        return {**site_view(row), "health": row.health}

    @router.get(
        "/queues/live",
        tags=["sites"],
        summary="Contact-centre queues of online sites: waiting, longest wait, agents by "
        "state, answered, abandoned and service level today",
    )
    def queues_live(principal: who) -> dict[str, Any]:
        with engine().connect() as conn:
            rows = site_rows(conn, principal.sites)
        return {"queues": [q.view() for q in live_queues(rows)]}

    @router.get(
        "/reports/routing",
        tags=["reports"],
        summary="Per site: peer site health (SIP OPTIONS) and failover counts per route",
    )
    def routing_health(principal: who) -> dict[str, Any]:
        with engine().connect() as conn:
            rows = site_rows(conn, principal.sites)
        return {"sites": {r.site_id: _routing(r) for r in rows}}

    return router


def site_view(row: SiteRow) -> dict[str, Any]:
    """A site as the API shows it."""
    return {
        "site_id": row.site_id,
        "status": row.status,
        "last_seen": row.last_seen,
        "software": row.software,
        "backlog_cdr": row.backlog_cdr,
        "cdrs_received": row.cdrs_received,
        "store_used_percent": row.reported("store_used_percent"),
        "calls_active": row.calls_active if row.online else None,
        "alarms": row.alarms,
        "last_upgrade": _upgrade(row.last_upgrade),
    }


def _upgrade(last: LastUpgrade | None) -> dict[str, str] | None:
    return None if last is None else asdict(last)


def _routing(row: SiteRow) -> dict[str, Any]:
    return {
        "status": row.status,
        "peers": row.reported("peers", {}),
        "failovers": row.reported("failovers", {}),
    }
