"""The doctor's report as it crosses the sync link: typed, size-capped, parsed here.

A site sends its latest ``callmesh doctor`` report in a ``doctor-report`` message
(``drivers/sync/protocol.py``); the appliance checks a report the same way before it
queues one. ``parse_doctor_report`` takes the decoded map and returns a ``DoctorReport``
or raises ``RecordError`` with a stable ``error_id``; nothing else escapes. HQ recomputes
the status and counts from the findings, so a site cannot claim ``ok`` over a failure.

Limits: at most ``FINDINGS_MAX`` findings; a check name is 1 to ``CHECK_MAX`` printable
characters; groups and statuses are enums; ``detail`` and ``next_step`` are cut to
``TEXT_MAX`` characters; ``at`` (epoch seconds, when the report was made) lies in the
record time range and, at HQ, no further ahead of HQ's clock than ``FUTURE_SLACK_S``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, cast

from drivers.sync.limits import TIME_MAX_S, TIME_MIN_S
from drivers.sync.records import RecordError, text

FINDINGS_MAX = 256
CHECK_MAX = 64
TEXT_MAX = 512
FUTURE_SLACK_S = 300.0
GROUPS = frozenset({"software", "config", "network", "system", "appliance", "hq", "sip", "gsm"})
STATUSES = ("ok", "warn", "fail")
SOURCES = frozenset({"cli", "scheduled"})

Status = Literal["ok", "warn", "fail"]


class DoctorFinding(NamedTuple):
    """One check's outcome: status, what was found and, unless ok, the next step."""

    group: str
    check: str
    status: Status
    detail: str
    next_step: str


class DoctorReport(NamedTuple):
    """A site's doctor report: when it was made, by whom (CLI or schedule), its findings."""

    at: float
    source: str
    findings: tuple[DoctorFinding, ...]

    @property
    def counts(self) -> dict[str, int]:
        """How many findings have each status."""
        return {s: sum(f.status == s for f in self.findings) for s in STATUSES}

    @property
    def status(self) -> Status:
        """The worst finding's status (``ok`` for an empty report)."""
        counts = self.counts
        return "fail" if counts["fail"] else ("warn" if counts["warn"] else "ok")

    def pack(self) -> dict[str, Any]:
        """The wire form (a map inside the ``doctor-report`` message)."""
        return {
            "at": self.at,
            "source": self.source,
            "findings": [f._asdict() for f in self.findings],
        }


def parse_doctor_report(value: Any, now: float | None = None) -> DoctorReport:
    """A report from its decoded map; with ``now``, a report from the future is refused."""
    if type(value) is not dict:
        raise RecordError("record-not-map", "a doctor report is a map")
    at = _at(value, now)
    source = value.get("source", "cli")
    if type(source) is not str or source not in SOURCES:
        raise RecordError("record-bad-enum", f"source must be one of {sorted(SOURCES)}")
    findings = value.get("findings")
    if type(findings) is not list:
        raise RecordError("record-bad-field", "findings must be a list")
    if len(findings) > FINDINGS_MAX:
        raise RecordError("record-out-of-range", f"at most {FINDINGS_MAX} findings")
    return DoctorReport(at, source, tuple(_finding(f) for f in findings))


def _at(doc: Mapping[str, Any], now: float | None) -> float:
    value = doc.get("at")
    if type(value) is not float and type(value) is not int:
        raise RecordError("record-bad-time", "at must be epoch seconds")
    at = float(value)
    if not TIME_MIN_S <= at < TIME_MAX_S:
        raise RecordError("record-bad-time", "at must be epoch seconds from 2000 to 2100")
    if now is not None and at > now + FUTURE_SLACK_S:
        raise RecordError("record-bad-time", "at is in the future: check the site's clock")
    return at


def _finding(value: Any) -> DoctorFinding:
    if type(value) is not dict:
        raise RecordError("record-not-map", "a finding is a map")
    group, status = value.get("group"), value.get("status")
    if type(group) is not str or group not in GROUPS:
        raise RecordError("record-bad-enum", f"group must be one of {sorted(GROUPS)}")
    if type(status) is not str or status not in STATUSES:
        raise RecordError("record-bad-enum", f"status must be one of {list(STATUSES)}")
    return DoctorFinding(
        group,
        _check_name(value.get("check")),
        cast(Status, status),
        text(value, "detail", TEXT_MAX),
        text(value, "next_step", TEXT_MAX),
    )


def _check_name(value: Any) -> str:
    if type(value) is not str or not 0 < len(value) <= CHECK_MAX or not value.isprintable():
        raise RecordError(
            "record-bad-field", f"check must be 1 to {CHECK_MAX} printable characters"
        )
    return value
