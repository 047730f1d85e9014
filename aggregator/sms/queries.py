"""SMS at HQ as the API and the fleet read them (the ingest writes: ``store/sms.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from aggregator import reports
from aggregator.store.schema import sms_messages

UTC = reports.zone("UTC")


@dataclass(frozen=True)
class SmsFilter:
    """Which SMS to list: sites (None: all), direction, SIM, since (epoch ms)."""

    sites: frozenset[str] | None = None
    direction: str | None = None
    iccid: str | None = None
    since_ms: int | None = None


def search_sms(conn: sa.Connection, flt: SmsFilter, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` SMS matching ``flt``, newest first."""
    table = sms_messages.c
    query = sa.select(sms_messages).order_by(table.at_ms.desc(), table.sms_id.desc())
    if flt.sites is not None:
        query = query.where(table.site_id.in_(sorted(flt.sites)))
    if flt.direction is not None:
        query = query.where(table.direction == flt.direction)
    if flt.iccid is not None:
        query = query.where(table.iccid == flt.iccid)
    if flt.since_ms is not None:
        query = query.where(table.at_ms >= flt.since_ms)
    return [_sms(r) for r in conn.execute(query.limit(limit))]


def _sms(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    found["id"] = found.pop("sms_id")
    found["at"] = reports.render_time(found.pop("at_ms"), UTC)
    found["received"] = reports.render_time(found.pop("received_ms"), UTC)
    return found


def counts_by_sim(conn: sa.Connection, iccids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per ICCID: SMS received, sent and failed (all time)."""
    wanted = sorted(set(iccids))
    if not wanted:
        return {}
    query = (
        sa.select(sms_messages.c.iccid, sms_messages.c.status, sa.func.count())
        .where(sms_messages.c.iccid.in_(wanted))
        .group_by(sms_messages.c.iccid, sms_messages.c.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for iccid, status, count in conn.execute(query):
        counts.setdefault(iccid, {"received": 0, "sent": 0, "failed": 0})[status] = count
    return counts
