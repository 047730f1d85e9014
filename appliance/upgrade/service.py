"""One upgrade, from the packages given to a healthy box (theory in ``__init__``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from appliance.upgrade.errors import HealthError, ReleaseError, UpgradeError
from appliance.upgrade.health import HealthCheck, Services, restart_stale, wait_healthy
from appliance.upgrade.record import UpgradeAttempt, UpgradeLog
from appliance.upgrade.release import (
    Checksums,
    Packages,
    Release,
    installed_release,
    keep_installed,
    keep_new,
    load_release,
    prune,
)
from drivers.debpkg import PackageSystemError, UnitState

UNITS = {
    "callmesh-appliance": "callmesh-appliance.service",
    "callmesh-aggregator": "callmesh-aggregator.service",
}
INSTALL_TIMEOUT_S = 600.0


class System(Packages, Services, Protocol):
    """The package system and the services, as the upgrade drives them."""

    def install(self, debs: Sequence[Path], timeout: float) -> None:
        """Install ``debs`` (upgrade or downgrade)."""

    def journal(self, message: str, failed: bool) -> None:
        """One line in the system journal."""


@dataclass(frozen=True)
class UpgradeRequest:
    """What ``callmesh upgrade`` was asked to do."""

    packages: tuple[Path, ...]
    sums: Checksums
    releases: Path
    check: HealthCheck


class Upgrader:
    """Installs a release, checks its health and rolls back when it fails."""

    def __init__(
        self,
        system: System,
        log: UpgradeLog,
        say: Callable[[str], None],
        time_source: tuple[Callable[[], float], Callable[[float], None]] = (
            time.monotonic,
            time.sleep,
        ),
    ) -> None:
        self.system = system
        self.log = log
        self.say = say
        self.clock, self.sleep = time_source

    def run(self, request: UpgradeRequest) -> UpgradeAttempt:
        """Upgrade; every outcome is recorded. ``UpgradeError`` unless upgraded."""
        started = _now()
        versions = ["", ""]
        try:
            self._upgrade(request, versions)
        except PackageSystemError as err:
            failure = UpgradeError(err.error_id, str(err), "fix what the message names, retry")
            self._record(versions, "failed", err.error_id, str(err), started)
            raise failure from err
        except UpgradeError as err:
            self._record(versions, _result(err), err.error_id, str(err), started)
            raise
        return self._record(versions, "upgraded", "", "", started)

    def _upgrade(self, request: UpgradeRequest, versions: list[str]) -> None:
        self.say("checking the packages")
        release = load_release(request.packages, request.sums, self.system.architecture())
        versions[1] = release.version
        installed = installed_release(self.system, release)
        versions[0] = installed["callmesh"]
        self.say(f"keeping callmesh {versions[0]} to roll back to")
        kept = self._keep(installed, request.releases)
        before = self._running(installed)
        check = request.check
        if "callmesh-appliance.service" not in before:
            # Nothing answers /healthz when the appliance was not running.
            check = replace(check, healthz=None)
        self.system.journal(f"upgrading callmesh {versions[0]} to {versions[1]}", failed=False)
        problem = self._install_and_check(release, before, check)
        if problem is not None:
            self._roll_back(kept, release, before, check, problem)
        keep_new(release, request.releases)
        prune(request.releases, [release.version, kept.version])

    def _keep(self, installed: dict[str, str], releases: Path) -> Release:
        try:
            return keep_installed(self.system, installed, releases, INSTALL_TIMEOUT_S)
        except (OSError, PackageSystemError) as err:
            raise ReleaseError(
                "keep-failed", f"cannot keep the installed packages: {err}", "free disk space"
            ) from err

    def _running(self, installed: dict[str, str]) -> dict[str, UnitState]:
        units = [UNITS[package] for package in installed if package in UNITS]
        states = {unit: self.system.unit_state(unit) for unit in units}
        return {unit: state for unit, state in states.items() if state.active == "active"}

    def _install_and_check(
        self, release: Release, before: dict[str, UnitState], check: HealthCheck
    ) -> str | None:
        """None when ``release`` is installed and healthy; else what went wrong."""
        self.say(f"installing callmesh {release.version}")
        try:
            self.system.install(release.paths, INSTALL_TIMEOUT_S)
            restart_stale(self.system, before, check.timeout_s)
        except PackageSystemError as err:
            return f"{err.error_id}: {err}"
        self.say(f"waiting up to {check.timeout_s:.0f} s for the health check")
        return wait_healthy(self.system, before, check, self.clock, self.sleep)

    def _roll_back(
        self,
        kept: Release,
        failed: Release,
        before: dict[str, UnitState],
        check: HealthCheck,
        problem: str,
    ) -> None:
        """Reinstall ``kept``; raise ``health-check-failed``, or ``rollback-failed``."""
        self.say(f"callmesh {failed.version} is not healthy: {problem}")
        self.system.journal(
            f"callmesh {failed.version} failed its health check ({problem}); "
            f"rolling back to {kept.version}",
            failed=True,
        )
        again = self._install_and_check(kept, before, check)
        if again is not None:
            raise HealthError(
                "rollback-failed",
                f"callmesh {failed.version} failed its health check ({problem}), and "
                f"{kept.version} reinstalled is not healthy either ({again})",
                "run `callmesh doctor --config /etc/callmesh/appliance.yaml` and read "
                "`journalctl -u callmesh-appliance`; the kept packages are in "
                f"{kept.paths[0].parent}",
            )
        raise HealthError(
            "health-check-failed",
            f"callmesh {failed.version} failed its health check ({problem}); "
            f"rolled back to {kept.version}, which is healthy",
            f"this box runs {kept.version} again; read `journalctl -u callmesh-appliance` "
            f"for why {failed.version} failed and report it with the release",
        )

    def _record(
        self, versions: list[str], result: str, error_id: str, detail: str, started: str
    ) -> UpgradeAttempt:
        attempt = UpgradeAttempt(
            versions[0], versions[1], result, error_id, detail, started, _now()
        )
        try:
            self.log.append(attempt)
        except OSError as err:
            self.say(f"cannot record the attempt in {self.log.path}: {err}")
        words = f"upgrade of callmesh {versions[0] or '?'} to {versions[1] or '?'}: {result}"
        self.system.journal(f"{words} {error_id} {detail}".strip(), failed=bool(error_id))
        return attempt


def _result(err: UpgradeError) -> str:
    if isinstance(err, ReleaseError):
        return "refused"
    return "rollback-failed" if err.error_id == "rollback-failed" else "rolled-back"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
