"""The health check a release must pass after it is installed.

Each unit that ran before the upgrade must be active again, with a new main process and
no automatic restart; the appliance's ``/healthz`` must answer 200, and still so ten
seconds later; then the release's own ``callmesh doctor --offline`` must report no
failure. A unit that failed or is
waiting to be restarted ends the wait at once; anything else is retried until the
timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from drivers.debpkg import UnitState

POLL_S = 1.0
SETTLE_S = 10.0
DOCTOR_TIMEOUT_S = 90.0


class Services(Protocol):
    """What the health check asks of systemd and the network."""

    def unit_state(self, unit: str) -> UnitState:
        """systemd's view of ``unit``."""

    def restart(self, units: Sequence[str], timeout: float) -> None:
        """Restart ``units``."""

    def http_ok(self, url: str, timeout: float) -> tuple[bool, str]:
        """Whether GET ``url`` answers 200, and what it said."""

    def command(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        """Run a command: exit code and output."""


@dataclass(frozen=True)
class HealthCheck:
    """What healthy means on this box."""

    healthz: str | None  # the appliance's /healthz URL, when it was running
    doctor: tuple[str, ...]  # the offline doctor's command line, empty for none
    timeout_s: float


@dataclass(frozen=True)
class _Problem:
    detail: str
    fatal: bool


def restart_stale(system: Services, before: Mapping[str, UnitState], timeout: float) -> None:
    """Restart the units the packages did not restart (same main process as before)."""
    stale = [
        unit for unit, was in before.items() if system.unit_state(unit).main_pid == was.main_pid
    ]
    if stale:
        system.restart(stale, timeout)


def wait_healthy(
    system: Services,
    before: Mapping[str, UnitState],
    check: HealthCheck,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """None once healthy; else what is wrong (at the first fatal sign or the timeout).

    Healthy once is not enough: after ``SETTLE_S`` the units and /healthz are looked at
    again, so a release that dies soon after it started is caught too.
    """
    deadline = clock() + check.timeout_s
    while (problem := _problem(system, before, check)) is not None:
        if problem.fatal or clock() >= deadline:
            return problem.detail
        sleep(POLL_S)
    sleep(SETTLE_S)
    problem = _problem(system, before, check)
    if problem is not None:
        return f"healthy at first, then {problem.detail}"
    return _doctor(system, check.doctor)


def _problem(
    system: Services, before: Mapping[str, UnitState], check: HealthCheck
) -> _Problem | None:
    for unit, was in before.items():
        now = system.unit_state(unit)
        if now.failed or now.restarts > was.restarts:
            return _Problem(
                f"{unit} failed ({now.active}/{now.sub}, {now.restarts} restarts)", True
            )
        if now.active != "active":
            return _Problem(f"{unit} is {now.active}/{now.sub}", False)
    if check.healthz:
        ok, said = system.http_ok(check.healthz, timeout=5)
        if not ok:
            return _Problem(f"{check.healthz}: {said[:300]}", False)
    return None


def _doctor(system: Services, argv: Sequence[str]) -> str | None:
    if not argv:
        return None
    code, out = system.command(argv, DOCTOR_TIMEOUT_S)
    if code == 0:
        return None
    try:
        report = json.loads(out)
        failed = [
            f"{f['check']}: {f['detail']}" for f in report["findings"] if f["status"] == "fail"
        ]
    except (ValueError, KeyError, TypeError):
        return f"callmesh doctor exited {code}: {out[-300:]}"
    return "callmesh doctor: " + "; ".join(failed)
