"""Supervision of one modem: keep-alive, zombie-call watchdog, wedge detection, recovery.

Theory of operation. While a call is up the supervisor polls ``AT+CLCC`` (which also releases
calls whose NO CARRIER never came); otherwise it sends ``AT`` after ``keepalive`` seconds of
silence. A command that timed out makes it probe with ``AT`` twice; no answer means the modem
is wedged. A wedge, or the port vanishing, runs the recovery ladder, every step logged and
counted in ``ModemCounters.recovery_steps``:

1. ``reopen``: close and reopen the same path, and re-initialise;
2. ``reset`` (wedge only): send ``AT+CFUN=1,1`` and wait for the device to drop off USB;
3. ``reenumerate``: wait for the by-id path to come back, or probe the configured globs for
   the IMEI, then ``reinit`` on whatever path the modem now has.

The whole ladder is bounded by ``recovery_timeout``; when it runs out the driver is "failed".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from drivers.modem import recovery
from drivers.modem.errors import CommandTimeout, ModemError

if TYPE_CHECKING:
    from drivers.modem.driver import ModemDriver

log = logging.getLogger(__name__)


class Supervisor:
    """Background supervision and the recovery ladder of one driver."""

    def __init__(self, driver: ModemDriver) -> None:
        self._driver = driver

    async def run(self) -> None:
        """Supervise until cancelled."""
        while True:
            busy = bool(self._driver.session.tracker.active)
            interval = self._driver.config.call_poll if busy else self._driver.config.keepalive / 2
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._driver.session.suspect.wait()
            if self._driver.state != "ready":
                self._driver.session.suspect.clear()
                continue
            try:
                await self._supervise_once(busy)
            except ModemError as err:
                log.warning("%s: supervision: %s", self._driver.port, err)

    async def _supervise_once(self, busy: bool) -> None:
        if self._driver.session.suspect.is_set():
            self._driver.session.suspect.clear()
            await self._check_wedge()
        elif busy:
            await self._driver.telephony.poll()
        elif self._idle() >= self._driver.config.keepalive:
            self._driver.counters.keepalives += 1
            await self._driver.session.run("AT")

    def _idle(self) -> float:
        transport = self._driver.session.transport
        if transport is None:
            return 0.0
        return asyncio.get_running_loop().time() - transport.last_activity

    async def _check_wedge(self) -> None:
        for _attempt in range(2):
            try:
                await self._driver.session.run("AT", limit=self._driver.config.timeouts.short)
                return
            except CommandTimeout:
                continue
        self._driver.counters.wedges += 1
        log.error("%s: modem wedged (no answer to AT)", self._driver.port)
        await self.recover("wedged")

    async def recover(self, reason: str) -> None:
        """Run the recovery ladder once (no-op unless the driver is ready)."""
        if self._driver.state != "ready":
            return
        self._driver.set_state("recovering", reason)
        self._driver.counters.recoveries += 1
        self._driver.telephony.handle(self._driver.session.tracker.release_all("modem lost"))
        try:
            async with asyncio.timeout(self._driver.config.recovery_timeout):
                await self._ladder(reason == "wedged")
        except (ModemError, TimeoutError) as err:
            self._driver.counters.recoveries_failed += 1
            self._driver.failure = f"recovery failed: {err}"
            self._driver.set_state("failed", self._driver.failure)
            log.error("%s: recovery failed: %s", self._driver.port, err)
            return
        self._driver.counters.recoveries_ok += 1
        self._driver.set_state("ready", f"recovered from {reason}")

    async def _ladder(self, wedged: bool) -> None:
        imei = self._driver.identity.imei if self._driver.identity else self._driver.config.imei
        await self._driver.disconnect()
        if await self._step("reopen", self._driver.connect(self._driver.port, 2.0, imei)):
            return
        if wedged:
            # Only a port that never went away is still ours: a vanished pty number may
            # already belong to another device, which must not be reset.
            await self._step("reset", self._reset())
            await recovery.wait_gone(self._driver.port, 5.0)
        self._driver.counters.step("reenumerate")
        while True:
            for path in await self._candidates(imei):
                if await self._step(
                    "reinit", self._driver.connect(path, self._driver.config.boot_timeout, imei)
                ):
                    return
            await asyncio.sleep(0.2)

    async def _step(self, name: str, action: Coroutine[Any, Any, None]) -> bool:
        self._driver.counters.step(name)
        log.info("%s: recovery step %s", self._driver.port, name)
        try:
            await action
        except ModemError as err:
            log.info("%s: recovery step %s failed: %s", self._driver.port, name, err)
            return False
        return True

    async def _reset(self) -> None:
        driver = self._driver
        await recovery.send_reset(driver.port, driver.counters, driver.config.timeouts.short)

    async def _candidates(self, imei: str | None) -> list[str]:
        """Where the modem may be now: its configured path if the IMEI answers there (a bare
        pty or ttyUSB number may have been reused by another device), else an IMEI search."""
        configured = self._driver.config.port
        if imei is None:
            return [configured] if recovery.present(configured) else []
        if recovery.present(configured) and await recovery.probe_imei(configured) == imei:
            return [configured]
        found = await recovery.find_by_imei(
            self._driver.config.search, self._driver.session.profile, imei
        )
        return [found] if found else []
