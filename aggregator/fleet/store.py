"""The SIM fleet in the aggregator's database: ingest of site reports and operator writes.

Theory of operation: a ``sim-status`` is the whole state of a site's SIMs, so storing it
is an upsert per ICCID, an upsert per (ICCID, local day) of the day figures the site
keeps, and an insert-or-ignore of the switch log; a repeated message changes nothing.
A SIM's row belongs to the site that first reported it: another site reporting the same
ICCID is refused (``sim-owned-by-another-site``), since commands for the SIM go to the
row's site. Only ``move_sim``, an operator's action, gives the row to another site.
Refused-call records arrive in batches keyed by (site, event id) and are acknowledged
after the commit, like CDRs.
Operator actions become rows of ``commands`` for the site holding the SIM; the ingest
sends pending commands on every ``hello`` until the site answers.

The company do-not-call list is the ``dnc`` snapshot topic: the numbers live in the
shared row (site ``*``), each site's own row is empty and carries the version, so one
write publishes to every site, and a site first seen later gets its row on ``hello``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.schema import (
    commands,
    compliance_events,
    dnc_numbers,
    sim_switches,
    sim_usage_days,
    sims,
    sites,
    snapshots,
)
from drivers.sync.records import SimCommand

log = logging.getLogger(__name__)

DNC = "dnc"
SHARED = "*"
OWNED_ELSEWHERE = "sim-owned-by-another-site"
_SIM_TEXT = {"channel": 64, "modem": 64, "number": 32, "operator": 64, "imsi": 32}


class FleetError(ValueError):
    """A request about the fleet that cannot be served (``error_id`` is stable)."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


def now_ms() -> int:
    """Now as UTC epoch milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class StatusResult:
    """What became of a ``sim-status``: SIMs stored, and refused ones with their owner."""

    stored: int = 0
    refused: dict[str, str] = field(default_factory=dict)


def store_status(
    conn: sa.Connection, site_id: str, records: Iterable[Any], switches: Iterable[Any]
) -> StatusResult:
    """Upsert a site's own SIM records, day figures and switches; refuse other sites' SIMs."""
    now = now_ms()
    pairs = [(r, row) for r in records if (row := _sim_row(site_id, r, now)) is not None]
    owners = _owners(conn, [row["iccid"] for _, row in pairs])
    stored, refused = 0, {}
    for record, row in pairs:
        owner = owners.get(row["iccid"], site_id)
        if owner != site_id:
            refused[row["iccid"]] = owner
            continue
        stmt = insert(conn.engine, sims).on_conflict_do_update(
            index_elements=["iccid"],
            set_={k: v for k, v in row.items() if k != "iccid"},
            where=sims.c.site_id == site_id,
        )
        conn.execute(stmt, row)
        _store_days(conn, site_id, row["iccid"], record.get("days"))
        stored += 1
    rows = [r for r in (_switch_row(site_id, s) for s in switches) if r is not None]
    if rows:
        stmt = insert(conn.engine, sim_switches).on_conflict_do_nothing()
        conn.execute(stmt, rows)
    return StatusResult(stored, refused)


def _owners(conn: sa.Connection, iccids: list[str]) -> dict[str, str]:
    if not iccids:
        return {}
    query = sa.select(sims.c.iccid, sims.c.site_id).where(sims.c.iccid.in_(iccids))
    return {r.iccid: r.site_id for r in conn.execute(query)}


def move_sim(conn: sa.Connection, iccid: str, to_site: str, configured: Iterable[str]) -> str:
    """Give a SIM's row to ``to_site`` (an operator moved the card); returns the old site.

    The new site's reports are taken from now on and the old site's refused. Its
    placement is cleared until the new site reports it. ``to_site`` must be configured
    or have connected once (FleetError ``unknown-site``).
    """
    row = sim_site(conn, iccid)
    seen = conn.execute(sa.select(sites.c.site_id).where(sites.c.site_id == to_site)).first()
    if to_site not in set(configured) and seen is None:
        raise FleetError("unknown-site", f"no site {to_site!r} is configured or has connected")
    conn.execute(
        sa.update(sims)
        .where(sims.c.iccid == iccid)
        .values(site_id=to_site, channel="", modem="", slot=0, status="moved",
                registered=False, signal_dbm=None, updated_ms=now_ms())
    )  # fmt: skip
    return str(row.site_id)


def _sim_row(site_id: str, record: Any, now: int) -> dict[str, Any] | None:
    if not isinstance(record, Mapping) or not isinstance(record.get("iccid"), str):
        return None
    row = {name: str(record.get(name) or "")[:size] for name, size in _SIM_TEXT.items()}
    signal = record.get("signal_dbm")
    return {
        **row,
        "iccid": record["iccid"][:32],
        "site_id": site_id,
        "slot": int(record.get("slot") or 0),
        "signal_dbm": signal if type(signal) is int else None,
        "registered": bool(record.get("registered")),
        "status": str(record.get("status") or "unknown")[:16],
        "reason": str(record.get("reason") or "")[:64],
        "needs_review": str(record.get("needs_review") or "")[:256],
        "sim_group": str(record.get("group") or "default")[:64],
        "limits": _map(record.get("limits")),
        "usage": _map(record.get("usage")),
        "last_switch": record.get("last_switch")
        if isinstance(record.get("last_switch"), dict)
        else None,
        "updated_ms": now,
    }


def _map(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _store_days(conn: sa.Connection, site_id: str, iccid: str, days: Any) -> None:
    if not isinstance(days, Mapping):
        return
    for day, figures in days.items():
        if not isinstance(day, str) or not isinstance(figures, list) or len(figures) != 4:
            continue
        calls, answered, connected_s, effective = figures
        row = {
            "iccid": iccid,
            "day": day[:10],
            "site_id": site_id,
            "calls": int(calls),
            "answered": int(answered),
            "connected_s": float(connected_s),
            "effective": int(effective),
        }
        keep = {k: v for k, v in row.items() if k not in ("iccid", "day")}
        stmt = insert(conn.engine, sim_usage_days).on_conflict_do_update(
            index_elements=["iccid", "day"], set_=keep
        )
        conn.execute(stmt, row)


def _switch_row(site_id: str, event: Any) -> dict[str, Any] | None:
    if not isinstance(event, Mapping) or not isinstance(event.get("id"), str):
        return None
    return {
        "site_id": site_id,
        "switch_id": event["id"][:64],
        "at_ms": int(event.get("at_ms") or 0),
        "channel": str(event.get("channel") or "")[:64],
        "modem": str(event.get("modem") or "")[:64],
        "from_slot": int(event.get("from_slot") or 0),
        "to_slot": int(event.get("to_slot") or 0),
        "from_iccid": str(event.get("from_iccid") or "")[:32],
        "to_iccid": str(event.get("to_iccid") or "")[:32],
        "reason": str(event.get("reason") or "")[:64],
    }


def store_refusals(conn: sa.Connection, site_id: str, records: Iterable[tuple[int, bytes]]) -> int:
    """Keep a batch of refused-call records (repeats ignored); returns records readable."""
    rows = []
    for _seq, raw in records:
        try:
            event = msgpack.unpackb(raw, raw=False)
        except (ValueError, msgpack.UnpackException) as err:
            log.warning(
                "unreadable refused-call record skipped", extra={"site": site_id, "error": str(err)}
            )
            continue
        if isinstance(event, dict) and isinstance(event.get("id"), str):
            rows.append(
                {
                    "site_id": site_id,
                    "event_id": event["id"][:64],
                    "at_ms": int(float(event.get("at") or 0) * 1000),
                    "destination": str(event.get("destination") or "")[:64],
                    "campaign": None
                    if event.get("campaign") is None
                    else str(event["campaign"])[:64],
                    "error_id": str(event.get("error_id") or "")[:64],
                    "message": str(event.get("message") or "")[:512],
                }
            )
    if rows:
        conn.execute(insert(conn.engine, compliance_events).on_conflict_do_nothing(), rows)
    return len(rows)


def issue(conn: sa.Connection, site_id: str, command: SimCommand) -> str:
    """Queue a command for a site; returns its id."""
    command_id = uuid.uuid4().hex
    conn.execute(
        sa.insert(commands).values(
            command_id=command_id,
            site_id=site_id,
            kind=command.kind,
            args=command.args(),
            created_ms=now_ms(),
        )
    )
    return command_id


def sim_site(conn: sa.Connection, iccid: str) -> Any:
    """The fleet row of a SIM, or FleetError ``unknown-sim``."""
    row = conn.execute(sa.select(sims).where(sims.c.iccid == iccid)).first()
    if row is None:
        raise FleetError("unknown-sim", f"no site has reported SIM {iccid}")
    return row


def publish_dnc(conn: sa.Connection, site_ids: Iterable[str]) -> int:
    """Write the company list as a new ``dnc`` snapshot version for every site; the version."""
    numbers = {r.number: r.reason for r in conn.execute(sa.select(dnc_numbers))}
    current = conn.execute(
        sa.select(snapshots.c.version).where(
            snapshots.c.topic == DNC, snapshots.c.site_id == SHARED
        )
    ).scalar()
    version = int(current or 0) + 1
    known = {r.site_id for r in conn.execute(sa.select(sites.c.site_id))}
    known.update(r.site_id for r in conn.execute(_dnc_rows()))
    known.discard(SHARED)
    for site_id in [SHARED, *sorted(known.union(site_ids))]:
        _upsert_snapshot(conn, site_id, version, numbers if site_id == SHARED else {})
    return version


def _dnc_rows() -> sa.Select[tuple[str]]:
    return sa.select(snapshots.c.site_id).where(snapshots.c.topic == DNC)


def ensure_dnc_row(conn: sa.Connection, site_id: str) -> None:
    """Give a site first seen after the last DNC change its row of the current version."""
    query = sa.select(snapshots.c.site_id, snapshots.c.version).where(
        snapshots.c.topic == DNC, snapshots.c.site_id.in_([SHARED, site_id])
    )
    rows = {r.site_id: r.version for r in conn.execute(query)}
    if SHARED in rows and site_id not in rows:
        _upsert_snapshot(conn, site_id, rows[SHARED], {})


def _upsert_snapshot(conn: sa.Connection, site_id: str, version: int, data: Any) -> None:
    stmt = insert(conn.engine, snapshots).on_conflict_do_update(
        index_elements=["site_id", "topic"], set_={"version": version, "data": data}
    )
    conn.execute(stmt, {"site_id": site_id, "topic": DNC, "version": version, "data": data})


def dnc_add(conn: sa.Connection, number: str, reason: str, site_ids: Iterable[str]) -> int:
    """Put a number on the company list (or change its reason) and publish; the version."""
    stmt = insert(conn.engine, dnc_numbers).on_conflict_do_update(
        index_elements=["number"], set_={"reason": reason}
    )
    conn.execute(stmt, {"number": number, "reason": reason, "added_ms": now_ms()})
    return publish_dnc(conn, site_ids)


def dnc_remove(conn: sa.Connection, number: str, site_ids: Iterable[str]) -> int | None:
    """Take a number off the company list and publish; None when it was not listed."""
    gone = conn.execute(sa.delete(dnc_numbers).where(dnc_numbers.c.number == number)).rowcount
    return publish_dnc(conn, site_ids) if gone else None
