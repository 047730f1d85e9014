"""Start components in order, stop them in reverse on SIGTERM/SIGINT.

A component is anything with ``name``, ``async start()`` and ``async stop()``. If a
start fails, the components already started are stopped (in reverse) before the error
propagates, so stores are never left open behind a failed start-up.

Under systemd (``Type=notify``) the service says READY=1 once every component has
started, pings the watchdog from this loop from start-up until the last component has
stopped, and says STOPPING=1 before the components stop (``drivers/daemon/sd_notify.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Protocol

from drivers.daemon.sd_notify import SystemdNotifier

log = logging.getLogger(__name__)


class Component(Protocol):
    """A part of a service with an ordered start and stop."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until_signalled(
    components: Sequence[Component],
    stop_event: asyncio.Event | None = None,
    notifier: SystemdNotifier | None = None,
) -> None:
    """Start every component, wait for a stop signal, then stop them in reverse order."""
    stop_event = stop_event or asyncio.Event()
    notifier = notifier or SystemdNotifier.from_environment()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop_event)
    pinger = _start_watchdog(notifier)
    started: list[Component] = []
    try:
        for component in components:
            await component.start()
            started.append(component)
            log.debug("started %s", component.name)
        log.info("ready", extra={"components": ",".join(c.name for c in started)})
        notifier.ready()
        await stop_event.wait()
    finally:
        notifier.stopping()
        await stop_all(started)
        await _stop_watchdog(pinger)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _start_watchdog(notifier: SystemdNotifier) -> asyncio.Task[None] | None:
    """Ping from start-up to the last stop, so a slow start or stop is not taken for a hang."""
    interval = notifier.ping_interval_s
    if interval is None:
        return None
    return asyncio.create_task(_ping_watchdog(notifier, interval), name="sd-watchdog")


async def _ping_watchdog(notifier: SystemdNotifier, interval: float) -> None:
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


async def _stop_watchdog(pinger: asyncio.Task[None] | None) -> None:
    if pinger is None:
        return
    pinger.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pinger


def _on_signal(sig: signal.Signals, stop_event: asyncio.Event) -> None:
    log.info("received %s, shutting down", sig.name)
    stop_event.set()


async def stop_all(started: Sequence[Component]) -> None:
    """Stop components newest first; one failing stop does not skip the others."""
    for component in reversed(started):
        try:
            await component.stop()
            log.info("stopped %s", component.name)
        except Exception:
            log.exception("stopping %s failed", component.name)
