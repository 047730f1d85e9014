"""What the console reads and writes that no other slice offers as a function yet.

Sites, SIMs, the company DNC list and the state of SIM commands, scoped to the sites a
principal may see. Writes to the DNC list publish it to every site the way the fleet API
does (``fleet.store.publish_dnc``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from aggregator import reports
from aggregator.api.routes import calls_active
from aggregator.fleet import store as fleet
from aggregator.store.db import insert
from aggregator.store.schema import commands, dnc_numbers, sims, sites

ONLINE_WINDOW_MS = 60_000
UTC = reports.zone("UTC")


@dataclass(frozen=True)
class SiteRow:
    """A site as the sites page shows it."""

    site_id: str
    online: bool
    last_seen: str | None
    software: str
    backlog_cdr: int
    cdrs_received: int
    recordings_quarantined: int
    calls_active: int | None


def site_rows(conn: sa.Connection, scope: frozenset[str] | None) -> list[SiteRow]:
    """Every site the scope covers (None: all), by id."""
    query = sa.select(sites).order_by(sites.c.site_id)
    if scope is not None:
        query = query.where(sites.c.site_id.in_(sorted(scope)))
    now = int(time.time() * 1000)
    return [_site(row, now) for row in conn.execute(query)]


def _site(row: Any, now_ms: int) -> SiteRow:
    health = row.health or {}
    return SiteRow(
        site_id=row.site_id,
        online=now_ms - row.last_seen_ms < ONLINE_WINDOW_MS,
        last_seen=reports.render_time(row.last_seen_ms, UTC),
        software=row.software,
        backlog_cdr=row.backlog_cdr,
        cdrs_received=row.cdrs_received,
        recordings_quarantined=int(health.get("recordings_quarantined") or 0),
        calls_active=calls_active(health),
    )


def sim_rows(conn: sa.Connection, scope: frozenset[str] | None) -> list[dict[str, Any]]:
    """Every SIM of the scope with its latest command (kind and state), by site and slot."""
    query = sa.select(sims).order_by(sims.c.site_id, sims.c.channel, sims.c.slot)
    if scope is not None:
        query = query.where(sims.c.site_id.in_(sorted(scope)))
    rows = [dict(r._mapping) for r in conn.execute(query)]
    latest = _latest_commands(conn, [r["site_id"] for r in rows])
    for row in rows:
        row["command"] = latest.get(row["iccid"])
    return rows


def _latest_commands(conn: sa.Connection, site_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    query = (
        sa.select(commands)
        .where(commands.c.site_id.in_(sorted(set(site_ids))))
        .order_by(commands.c.created_ms)
    )
    latest: dict[str, dict[str, str]] = {}
    for row in conn.execute(query):
        iccid = (row.args or {}).get("iccid")
        if isinstance(iccid, str):
            latest[iccid] = {"kind": row.kind, "state": command_state(row), "detail": row.detail}
    return latest


def command_state(row: Any) -> str:
    """pending, applied or failed."""
    if row.done_ms is None:
        return "pending"
    return "applied" if row.ok else "failed"


def dnc_list(conn: sa.Connection) -> list[dict[str, str]]:
    """The company do-not-call list, by number."""
    rows = conn.execute(sa.select(dnc_numbers).order_by(dnc_numbers.c.number))
    return [{"number": r.number, "reason": r.reason} for r in rows]


def dnc_add(conn: sa.Connection, number: str, reason: str, site_ids: Sequence[str]) -> int:
    """Put a number on the list (or change its reason) and publish; the list's version."""
    stmt = insert(conn.engine, dnc_numbers).on_conflict_do_update(
        index_elements=["number"], set_={"reason": reason}
    )
    conn.execute(stmt, {"number": number, "reason": reason, "added_ms": fleet.now_ms()})
    return fleet.publish_dnc(conn, site_ids)


def dnc_remove(conn: sa.Connection, number: str, site_ids: Sequence[str]) -> int | None:
    """Take a number off the list and publish; None when it was not listed."""
    gone = conn.execute(sa.delete(dnc_numbers).where(dnc_numbers.c.number == number)).rowcount
    return fleet.publish_dnc(conn, site_ids) if gone else None
