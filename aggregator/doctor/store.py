"""The newest doctor report of each site: written only when newer, read for a site."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.schema import doctor_reports
from drivers.sync.doctor_report import DoctorReport


@dataclass(frozen=True)
class StoredReport:
    """A site's newest report as HQ holds it."""

    site_id: str
    at_ms: int
    received_ms: int
    source: str
    status: str
    findings: list[dict[str, str]]

    def age_s(self, now_ms: int) -> float:
        """Seconds since the site made the report (never negative)."""
        return max(0, now_ms - self.at_ms) / 1000

    def counts(self) -> dict[str, int]:
        """How many findings have each status."""
        return {s: sum(f.get("status") == s for f in self.findings) for s in ("ok", "warn", "fail")}

    def view(self, now_ms: int | None = None) -> dict[str, Any]:
        """The report as the API shows it."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return {
            "site_id": self.site_id,
            "at_ms": self.at_ms,
            "received_ms": self.received_ms,
            "age_s": round(self.age_s(now), 1),
            "source": self.source,
            "status": self.status,
            "counts": self.counts(),
            "findings": self.findings,
        }


def store_report(conn: sa.Connection, site_id: str, report: DoctorReport, now_ms: int) -> bool:
    """Keep ``report`` as the site's newest unless a report as new or newer is held."""
    row = {
        "site_id": site_id,
        "at_ms": int(report.at * 1000),
        "received_ms": now_ms,
        "source": report.source,
        "status": report.status,
        "findings": [f._asdict() for f in report.findings],
    }
    stmt = insert(conn.engine, doctor_reports).on_conflict_do_update(
        index_elements=["site_id"],
        set_={k: v for k, v in row.items() if k != "site_id"},
        where=doctor_reports.c.at_ms < row["at_ms"],
    )
    return bool(conn.execute(stmt, row).rowcount)


def latest_report(conn: sa.Connection, site_id: str) -> StoredReport | None:
    """The newest report ``site_id`` sent, if any."""
    found = conn.execute(
        sa.select(doctor_reports).where(doctor_reports.c.site_id == site_id)
    ).first()
    if found is None:
        return None
    return StoredReport(
        found.site_id, found.at_ms, found.received_ms, found.source, found.status, found.findings
    )
