"""The doctor's report on its way to HQ: kept, sent over the sync link, made on a schedule.

Theory of operation: ``LatestReport`` holds the newest report of this box (one owner: the
event loop). Two producers give it reports: ``callmesh doctor --upload`` through
``POST /api/v1/doctor/report`` (checked with the wire parser, so a report HQ would refuse
is refused here first), and ``DoctorSchedule``, which runs the checks in this process
``doctor.first_run_s`` after start and then every ``doctor.interval_h``. An older report
never replaces a newer one. ``DoctorReportPublisher`` sends the newest report once per
session and again whenever a newer one arrives; HQ keeps the newest per site, so a
report lost with a session is simply sent on the next one.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Body

from appliance.access import local_access
from appliance.compliance.routes import LocalApiError
from appliance.doctor import Appliance, Finding, run_checks
from appliance.settings import ApplianceSettings
from drivers.daemon.api_docs import ErrorBody, ValidationErrors, error_responses
from drivers.daemon.settings_base import ApiToken
from drivers.sync.doctor_report import (
    DoctorFinding,
    DoctorReport,
    parse_doctor_report,
)
from drivers.sync.protocol import DoctorReportMessage, Message
from drivers.sync.records import RecordError

log = logging.getLogger(__name__)


class LatestReport:
    """The newest doctor report of this box, and a count of changes for the publisher."""

    def __init__(self) -> None:
        self.report: DoctorReport | None = None
        self.revision = 0

    def offer(self, report: DoctorReport) -> bool:
        """Keep ``report`` unless a newer one is held; whether it was kept."""
        if self.report is not None and report.at <= self.report.at:
            return False
        self.report, self.revision = report, self.revision + 1
        return True


class DoctorReportPublisher:
    """``doctor-report`` with the newest report: once per session and on each newer one."""

    def __init__(self, latest: LatestReport) -> None:
        self._latest = latest
        self._sent = 0

    def reset(self) -> None:
        """A new session: send the newest report again."""
        self._sent = 0

    def due(self, _now: float) -> list[Message]:
        """The report message when one has not been sent in this session."""
        report = self._latest.report
        if report is None or self._sent == self._latest.revision:
            return []
        self._sent = self._latest.revision
        return [DoctorReportMessage(report.pack())]


def report_of(findings: Sequence[Finding], source: str, at: float) -> DoctorReport:
    """The typed report of ``findings`` made at ``at`` (epoch seconds)."""
    return DoctorReport(
        at,
        source,
        tuple(DoctorFinding(f.group, f.check, f.status, f.detail, f.next_step) for f in findings),
    )


def build_doctor_router(tokens: Sequence[ApiToken], latest: LatestReport | None) -> APIRouter:
    """``POST /api/v1/doctor/report``: a report made on the box, queued for HQ.

    ``latest`` is None when the box does not sync with HQ: the route then answers 409.
    """
    errors = error_responses(ErrorBody, ValidationErrors)
    router = APIRouter(prefix="/api/v1/doctor", tags=["doctor"], responses=errors)
    writer = Annotated[str, local_access(tokens, LocalApiError).needs("operator")]

    @router.post("/report", summary="Queue a doctor report (callmesh doctor --json) for HQ")
    async def post_report(who: writer, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        if latest is None:
            raise LocalApiError(409, "sync-disabled", "this box does not sync with HQ")
        try:
            report = parse_doctor_report(body, now=time.time())
        except RecordError as err:
            raise LocalApiError(422, err.error_id, err.message) from err
        kept = latest.offer(report)
        return {"queued": kept, "status": report.status, "counts": report.counts}

    return router


Checks = Callable[[ApplianceSettings], Awaitable[list[Finding]]]


async def self_test(settings: ApplianceSettings) -> list[Finding]:
    """The doctor run by the service on itself: software and live checks, none as a user."""
    from appliance.doctor_live import run_live

    findings = await asyncio.to_thread(run_checks, None)
    tokens = settings.api.tokens
    async with httpx.AsyncClient(
        base_url=f"http://{settings.http.host}:{settings.http.port}",
        headers={"Authorization": f"Bearer {tokens[0].token}"} if tokens else {},
    ) as api:
        return findings + await run_live(Appliance(settings, api), as_user=False)


class DoctorSchedule:
    """Runs the doctor ``first_run_s`` after start, then every ``interval_h`` hours."""

    name = "doctor"

    def __init__(
        self, settings: ApplianceSettings, latest: LatestReport, checks: Checks = self_test
    ) -> None:
        self._settings = settings
        self._latest = latest
        self._checks = checks
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="doctor-schedule")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        doctor = self._settings.doctor
        await asyncio.sleep(doctor.first_run_s)
        await self.run_once()
        while doctor.interval_h > 0:
            await asyncio.sleep(doctor.interval_h * 3600)
            await self.run_once()

    async def run_once(self) -> None:
        """One run of the checks; its report replaces the held one."""
        started = time.time()
        try:
            findings = await self._checks(self._settings)
        except TimeoutError:
            log.warning("scheduled doctor run timed out", extra={"error_id": "doctor-timeout"})
            return
        except Exception:
            # A check that breaks must not end the schedule: the next run may work.
            log.exception("scheduled doctor run failed", extra={"error_id": "doctor-failed"})
            return
        report = report_of(findings, "scheduled", started)
        self._latest.offer(report)
        log.info("doctor report made", extra={"status": report.status, **report.counts})
