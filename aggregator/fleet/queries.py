"""The SIM fleet as the API and the console read it: SIMs, commands, usage, refusals, DNC.

Every read is scoped to the sites a principal may see (``None``: every site). Writes
(commands, SIM moves, the DNC list) are in ``fleet/store.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from aggregator import reports
from aggregator.sms.queries import counts_by_sim
from aggregator.store.schema import commands, compliance_events, dnc_numbers, sim_usage_days, sims

UTC = reports.zone("UTC")
NO_SMS = {"received": 0, "sent": 0, "failed": 0}


@dataclass(frozen=True)
class CommandView:
    """A command HQ issued to a site and whether the site applied it."""

    command_id: str
    site_id: str
    kind: str
    args: dict[str, Any]
    state: str
    detail: str | None


@dataclass(frozen=True)
class UsageFilter:
    """Which day figures to list: local days ``first``..``last`` (inclusive), sites, SIM."""

    first: str
    last: str
    sites: frozenset[str] | None = None
    iccid: str | None = None


def _sims_query(scope: frozenset[str] | None) -> sa.Select[Any]:
    query = sa.select(sims).order_by(sims.c.site_id, sims.c.channel, sims.c.slot)
    if scope is not None:
        query = query.where(sims.c.site_id.in_(sorted(scope)))
    return query


def sim_list(conn: sa.Connection, scope: frozenset[str] | None) -> list[dict[str, Any]]:
    """Every SIM of the scope as the API shows it, with its SMS counts, by site and slot."""
    return with_sms_counts(conn, [_sim(r) for r in conn.execute(_sims_query(scope))])


def sim(conn: sa.Connection, row: Any) -> dict[str, Any]:
    """One SIM's fleet row (``store.sim_site``) as the API shows it."""
    return with_sms_counts(conn, [_sim(row)])[0]


def _sim(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    found["group"] = found.pop("sim_group")
    found["updated"] = reports.render_time(found.pop("updated_ms"), UTC)
    return found


def with_sms_counts(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (SIMs), each given its SMS received, sent and failed."""
    counts = counts_by_sim(conn, [r["iccid"] for r in rows])
    for row in rows:
        row["sms"] = counts.get(row["iccid"], dict(NO_SMS))
    return rows


def sims_with_commands(conn: sa.Connection, scope: frozenset[str] | None) -> list[dict[str, Any]]:
    """Every SIM of the scope with its latest command (kind and state), by site and slot."""
    rows = [dict(r._mapping) for r in conn.execute(_sims_query(scope))]
    latest = _latest_commands(conn, [r["site_id"] for r in rows])
    for row in rows:
        row["command"] = latest.get(row["iccid"])
    return rows


def _latest_commands(conn: sa.Connection, site_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    query = (
        sa.select(commands)
        .where(commands.c.site_id.in_(sorted(set(site_ids))))
        .order_by(commands.c.created_ms)
    )
    latest: dict[str, dict[str, Any]] = {}
    for row in conn.execute(query):
        iccid = (row.args or {}).get("iccid")
        if isinstance(iccid, str):
            latest[iccid] = {"kind": row.kind, "state": _state(row), "detail": row.detail}
    return latest


def command(conn: sa.Connection, command_id: str) -> CommandView | None:
    """A command by id, or None."""
    row = conn.execute(sa.select(commands).where(commands.c.command_id == command_id)).first()
    if row is None:
        return None
    return CommandView(row.command_id, row.site_id, row.kind, row.args, _state(row), row.detail)


def _state(row: Any) -> str:
    if row.done_ms is None:
        return "pending"
    return "applied" if row.ok else "failed"


def seen_sites(conn: sa.Connection) -> set[str]:
    """Every site that reported a SIM."""
    return {r.site_id for r in conn.execute(sa.select(sims.c.site_id).distinct())}


def usage_days(conn: sa.Connection, flt: UsageFilter) -> list[dict[str, Any]]:
    """Per SIM and local day: calls, answer rate, talk time, by day and ICCID."""
    days = sim_usage_days.c
    query = (
        sa.select(sim_usage_days)
        .where(days.day >= flt.first, days.day <= flt.last)
        .order_by(days.day, days.iccid)
    )
    if flt.sites is not None:
        query = query.where(days.site_id.in_(sorted(flt.sites)))
    if flt.iccid is not None:
        query = query.where(days.iccid == flt.iccid)
    return [_usage(r) for r in conn.execute(query)]


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


def refusals(conn: sa.Connection, scope: frozenset[str] | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` outbound calls the sites refused (DNC, hours, attempts)."""
    events = compliance_events.c
    query = sa.select(compliance_events).order_by(events.at_ms.desc()).limit(limit)
    if scope is not None:
        query = query.where(events.site_id.in_(sorted(scope)))
    return [_refusal(r) for r in conn.execute(query)]


def _refusal(row: Any) -> dict[str, Any]:
    return {
        "site_id": row.site_id,
        "at": reports.render_time(row.at_ms, UTC),
        "destination": row.destination,
        "campaign": row.campaign,
        "error_id": row.error_id,
        "message": row.message,
    }


def dnc_list(conn: sa.Connection) -> list[dict[str, str]]:
    """The company do-not-call list, by number."""
    rows = conn.execute(sa.select(dnc_numbers).order_by(dnc_numbers.c.number))
    return [{"number": r.number, "reason": r.reason} for r in rows]
