"""Live queue statistics as sites report them, checked before anything shows them.

A site with a contact centre adds ``queues`` to its status (``appliance/contact/stats.py``)
and sends a new status within about a second of a value changing. The report is
untrusted: each queue is validated (types, bounds, known agent states); a queue that
fails is left out, the rest shown. ``log_refused`` runs on each status as it arrives and
logs what fails with ``error_id`` ``queue-stats-invalid`` (once per status, not once per
page view).
The longest wait is worked out here from when the oldest caller entered, so it keeps
counting between reports.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aggregator.sites.queries import SiteRow
from drivers.sync.protocol import Status

log = logging.getLogger(__name__)

AGENT_STATES = ("available", "ringing", "on-call", "wrap-up", "paused", "logged-out")
MAX_QUEUES = 64
MAX_COUNT = 1_000_000
Count = Annotated[int, Field(ge=0, le=MAX_COUNT, strict=True)]


class ReportedAgents(BaseModel):
    """Agents of a queue by state."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    available: Count = 0
    ringing: Count = 0
    on_call: Count = Field(default=0, alias="on-call")
    wrap_up: Count = Field(default=0, alias="wrap-up")
    paused: Count = 0
    logged_out: Count = Field(default=0, alias="logged-out")


class ReportedQueue(BaseModel):
    """One queue as the site reported it."""

    model_config = ConfigDict(extra="ignore", strict=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    number: str = Field(pattern=r"^[0-9]{2,8}$")
    waiting: Count
    oldest_entered: float | None = Field(ge=0, allow_inf_nan=False)
    agents: ReportedAgents
    answered: Count
    abandoned: Count
    service_level_percent: float | None = Field(ge=0, le=100, allow_inf_nan=False)
    service_level_s: float = Field(gt=0, le=86_400, allow_inf_nan=False)


@dataclass(frozen=True)
class LiveQueue:
    """A validated queue of a site, with its longest wait now."""

    site_id: str
    queue: ReportedQueue
    longest_wait_s: float | None

    def view(self) -> dict[str, Any]:
        """The queue as the API shows it."""
        q = self.queue
        return {
            "site_id": self.site_id,
            "queue": q.name,
            "number": q.number,
            "waiting": q.waiting,
            "longest_wait_s": self.longest_wait_s,
            "agents": q.agents.model_dump(by_alias=True),
            "answered_today": q.answered,
            "abandoned_today": q.abandoned,
            "service_level_percent_today": q.service_level_percent,
            "service_level_s": q.service_level_s,
        }


def live_queues(rows: list[SiteRow], now: float | None = None) -> list[LiveQueue]:
    """The valid queues every online site reported, by site and queue name."""
    now = time.time() if now is None else now
    found: list[LiveQueue] = []
    for row in rows:
        if row.online:
            found += _site_queues(row, now)
    return found


def _site_queues(row: SiteRow, now: float) -> list[LiveQueue]:
    queues, _ = checked(row.reported("queues"))
    found = [LiveQueue(row.site_id, q, _wait(q, now)) for q in queues]
    return sorted(found, key=lambda q: q.queue.name)


def checked(reported: Any) -> tuple[list[ReportedQueue], list[str]]:
    """The valid queues of a ``queues`` report, and what is wrong with the others."""
    if reported is None:
        return [], []
    if not isinstance(reported, list) or len(reported) > MAX_QUEUES:
        return [], [f"queues must be a list of at most {MAX_QUEUES}"]
    queues, problems = [], []
    for item in reported:
        try:
            queues.append(ReportedQueue.model_validate(item))
        except ValidationError as err:
            problems.append(_first_error(err))
    return queues, problems


def log_refused(_conn: sa.Connection, site_id: str, status: Status) -> None:
    """Status hook: log each queue of the report that fails the checks."""
    _, problems = checked(status.health.get("queues"))
    for detail in problems:
        log.warning(
            "queue statistics refused",
            extra={"error_id": "queue-stats-invalid", "site": site_id, "detail": detail},
        )


def _wait(queue: ReportedQueue, now: float) -> float | None:
    if queue.waiting == 0 or queue.oldest_entered is None:
        return None
    return round(max(0.0, now - queue.oldest_entered), 1)


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}"
