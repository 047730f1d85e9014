"""GSM channels backed by the modem driver, and the pool that starts and watches them.

Theory of operation: each configured modem gets a ModemDriver (built by the composition
root from ``modem_config``) and a ModemChannel (the SIM policy's view of it). With
``bridged`` (the PBX bridges the channels' voice in its GSM media workers) the drivers
leave the PCM tty to the workers and keep AT control.
The pool starts every driver concurrently and waits, bounded,
for them to become ready; a modem that does not come up is reported unregistered and
keeps recovering in its driver, it never blocks the others. One watcher task per modem
turns driver events (registration, SIM presence, driver state) into fresh channel
states for the SIM policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from appliance.gateway.settings import GatewaySettings, ModemEntry
from appliance.sim.model import ChannelState, SimIdentity
from drivers.modem import (
    ModemConfig,
    ModemCounters,
    ModemDriver,
    ModemStateChanged,
    RegistrationChanged,
    SimStatus,
)
from drivers.modem.errors import ModemError

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 15.0
DRIVER_STATES = ("stopped", "starting", "ready", "recovering", "failed")
# Counters whose unit belongs at the end of the exported name.
EXPORT_NAMES = {"bytes_in": "received_bytes", "bytes_out": "sent_bytes"}
WATCHED = (RegistrationChanged, SimStatus, ModemStateChanged)


class ModemChannel:
    """One modem as a GSM channel: slot selection and a fresh read of its state."""

    def __init__(self, entry: ModemEntry, driver: ModemDriver) -> None:
        self.channel = entry.channel
        self.entry = entry
        self.driver = driver
        self.slot = 0

    @property
    def slots(self) -> int:
        profile = self.driver.session.profile
        return profile.sim_slots.count if profile and profile.sim_slots else 1

    async def select_slot(self, slot: int) -> None:
        """Switch SIM slot; the driver waits for re-registration."""
        await self.driver.select_sim(slot)
        self.slot = slot

    async def read_state(self) -> ChannelState:
        """Identity, registration and signal as the modem reports them now."""
        base = ChannelState(self.channel, self.entry.port, self.slot, self.slots)
        if self.driver.state != "ready":
            return base
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                sim = await self.driver.sim_info(wait=2.0)
                network = await self.driver.network_info()
        except (ModemError, TimeoutError) as err:
            log.info("cannot read channel", extra={"channel": self.channel, "error": str(err)})
            return base
        identity = None
        if sim.iccid:
            identity = SimIdentity(sim.iccid, sim.imsi, sim.number, network.operator)
        return ChannelState(
            self.channel,
            self.entry.port,
            self.slot,
            self.slots,
            identity,
            network.registered,
            network.signal_dbm,
        )


class ModemPool:
    """Lifecycle component owning every modem driver of the gateway."""

    name = "modems"

    def __init__(self, settings: GatewaySettings, channels: list[ModemChannel]) -> None:
        self._settings = settings
        self.channels = channels
        self._watchers: list[asyncio.Task[None]] = []
        self.on_change: Callable[[ChannelState], None] | None = None

    async def start(self) -> None:
        self._watchers = [asyncio.create_task(self._run(c)) for c in self.channels]
        ready = [c.driver.wait_ready(self._settings.ready_timeout_s) for c in self.channels]
        for channel, result in zip(
            self.channels, await asyncio.gather(*ready, return_exceptions=True), strict=True
        ):
            if isinstance(result, BaseException):
                log.warning(
                    "modem not ready yet; it keeps trying",
                    extra={"channel": channel.channel, "error": str(result)},
                )

    async def _run(self, channel: ModemChannel) -> None:
        """Start the driver (retrying with backoff while the port is absent), then watch it."""
        delay = 1.0
        while True:
            try:
                await channel.driver.start()
                break
            except (ModemError, OSError, TimeoutError) as err:
                log.warning(
                    "modem start failed",
                    extra={"channel": channel.channel, "error": str(err), "retry_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        events = channel.driver.subscribe()
        self._changed(await channel.read_state())
        while True:
            with contextlib.suppress(TimeoutError):
                event = await events.get(within=60.0)
                if isinstance(event, WATCHED):
                    self._changed(await channel.read_state())

    def _changed(self, state: ChannelState) -> None:
        if self.on_change is not None:
            self.on_change(state)

    async def stop(self) -> None:
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        await asyncio.gather(*(c.driver.stop() for c in self.channels), return_exceptions=True)

    def check(self) -> tuple[bool, str]:
        """Health: how many modems are ready (a gateway with none ready is failing)."""
        states = [c.driver.state for c in self.channels]
        ready = states.count("ready")
        ok = ready > 0 or not states
        return ok, f"{ready}/{len(states)} modems ready"

    def counters(self) -> Sequence[tuple[str, ModemCounters]]:
        """Per channel, the driver's counters (for /metrics)."""
        return [(c.channel, c.driver.counters) for c in self.channels]

    def states(self) -> Sequence[tuple[str, str]]:
        """Per channel, the driver's state (for /metrics)."""
        return [(c.channel, c.driver.state) for c in self.channels]


def modem_config(entry: ModemEntry, bridged: bool) -> ModemConfig:
    """A modem's driver options; a modem bridged to the PBX leaves its voice port to it."""
    return ModemConfig(
        port=entry.port,
        voice_port=entry.voice_port,
        open_voice=not bridged,
        profile=entry.profile,
        imei=entry.imei,
        pin=entry.pin,
    )


class ModemCollector:
    """Exports every modem driver's counters as ``callmesh_modem_<name>_total{channel}``,
    its ladder steps as ``callmesh_modem_recovery_steps_total{channel,step}`` and its state
    as ``callmesh_modem_state{channel,state}`` (1 for the current state)."""

    def __init__(self, pool: ModemPool) -> None:
        self._pool = pool

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        steps = CounterMetricFamily(
            "callmesh_modem_recovery_steps",
            "Recovery-ladder steps run (reopen, reset, reenumerate)",
            labels=["channel", "step"],
        )
        for channel, counters in self._pool.counters():
            for name, value in counters.as_dict().items():
                family = families.get(name)
                if family is None:
                    exported = EXPORT_NAMES.get(name, name)
                    family = CounterMetricFamily(
                        f"callmesh_modem_{exported}",
                        f"Modem driver counter {name}",
                        labels=["channel"],
                    )
                    families[name] = family
                family.add_metric([channel], value)
            for step, value in sorted(counters.recovery_steps.items()):
                steps.add_metric([channel, step], value)
        yield from families.values()
        yield steps
        yield self._states()

    def _states(self) -> Metric:
        family = GaugeMetricFamily(
            "callmesh_modem_state",
            "1 for the modem driver's current state",
            labels=["channel", "state"],
        )
        for channel, current in self._pool.states():
            for state in sorted({*DRIVER_STATES, current}):
                family.add_metric([channel, state], 1 if state == current else 0)
        return family
