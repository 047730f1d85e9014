"""Simulated modems on ptys and drivers with test-speed timers; everything is torn down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from drivers.modem.driver import ModemConfig, ModemDriver
from drivers.modem.session import EventStream
from drivers.modem.simulator import ModemSimulator, SimulatorConfig
from drivers.modem.transport import Timeouts

FAST = Timeouts(short=0.5, medium=2.0, long=5.0)
SimFactory = Callable[..., ModemSimulator]


@pytest.fixture
def make_sim() -> Iterator[SimFactory]:
    """Start simulators (fast boot and reset); all are stopped at teardown."""
    started: list[ModemSimulator] = []

    def make(**kwargs: Any) -> ModemSimulator:
        for name, value in (
            ("reset_seconds", 0.3),
            ("boot_seconds", 0.01),
            ("sim_ready_seconds", 0.05),
            ("register_seconds", 0.05),
        ):
            kwargs.setdefault(name, value)
        sim = ModemSimulator(SimulatorConfig(**kwargs))
        sim.start()
        started.append(sim)
        sim.wait_booted(5.0)
        return sim

    yield make
    for sim in reversed(started):
        sim.stop()


@pytest.fixture
async def make_driver() -> AsyncIterator[Callable[..., Any]]:
    """Start drivers with short timers; all are stopped at teardown."""
    started: list[ModemDriver] = []

    async def make(port: str, **kwargs: Any) -> ModemDriver:
        options: dict[str, Any] = {
            "timeouts": FAST,
            "boot_timeout": 5.0,
            "keepalive": 0.5,
            "call_poll": 0.3,
            "zombie_grace": 0.5,
            "pacing": 0.005,
            "recovery_timeout": 15.0,
        }
        options.update(kwargs)
        driver = ModemDriver(ModemConfig(port=port, **options))
        await driver.start()
        started.append(driver)
        return driver

    yield make
    for driver in reversed(started):
        await driver.stop()


async def next_of(stream: EventStream, kind: type, within: float = 5.0, **match: Any) -> Any:
    """The next event of ``kind`` whose attributes equal ``match``."""

    def wanted(event: object) -> bool:
        if not isinstance(event, kind):
            return False
        return all(getattr(event, name) == value for name, value in match.items())

    return await stream.wait_for(wanted, within)
