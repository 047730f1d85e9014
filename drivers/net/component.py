"""The network as a lifecycle component: plan at start, apply (unless dry run), verify.

Verification reads the kernel again and plans again: a plan with nothing left to do
means the network matches the config. The outcome is kept for /healthz and the doctor.
Stopping leaves the network as it is: calls in progress and the technician's session
must survive a service restart.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from drivers.net import NetError
from drivers.net.netlink import NetlinkDriver
from drivers.net.plan import Action, Desired, changes, plan, problems

log = logging.getLogger(__name__)


@dataclass
class NetworkReport:
    """The last plan and what came of it."""

    planned: list[Action] = field(default_factory=list)
    applied: list[Action] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    remaining: list[Action] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and (self.dry_run or not self.remaining)

    def summary(self) -> str:
        if self.dry_run:
            shown = "; ".join(a.describe() for a in self.planned) or "nothing to change"
            return f"dry run, would: {shown}"
        if self.ok:
            return f"matches config ({len(self.applied)} changes applied)"
        left = [a.describe() for a in self.remaining]
        return "; ".join([*self.problems, *(f"not in effect: {d}" for d in left)])


class NetworkComponent:
    """Applies the configured network through ``driver``."""

    name = "network"

    def __init__(self, desired: Desired, driver: NetlinkDriver, dry_run: bool = False) -> None:
        self._desired = desired
        self._driver = driver
        self._dry_run = dry_run
        self.report = NetworkReport(dry_run=dry_run)

    async def start(self) -> None:
        self.report = await asyncio.to_thread(self.converge)
        level = logging.INFO if self.report.ok else logging.ERROR
        log.log(level, "network: %s", self.report.summary())

    async def stop(self) -> None:
        """Nothing to undo: the network stays configured."""

    def plan(self) -> list[Action]:
        """What would change now (read-only)."""
        return plan(self._desired, self._driver.read(), self._driver.supports)

    def converge(self) -> NetworkReport:
        """Plan, apply unless dry run, then verify against a fresh read."""
        report = NetworkReport(planned=self.plan(), dry_run=self._dry_run)
        report.problems = [_problem(a) for a in problems(report.planned)]
        if self._dry_run:
            return report
        for action in changes(report.planned):
            try:
                self._driver.apply(action)
            except NetError as err:
                report.problems.append(str(err))
                continue
            report.applied.append(action)
        report.remaining = changes(self.plan())
        return report

    def check(self) -> tuple[bool, str]:
        """Health: the network matches the config (or the dry-run plan)."""
        return self.report.ok, self.report.summary()


def _problem(action: Action) -> str:
    if action.op == "missing-device":
        return f"{action.target}: no such network device: check network.interfaces"
    kind = action.args.get("kind", "link")
    return f"{action.target}: {kind} unsupported by this kernel"
