"""Field-technician operations behind ``callmesh modem``: scan, probe, raw AT, SMS, test call.

Each function returns plain data for the CLI to print; failures raise the driver's own errors,
which the CLI turns into one-line messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from drivers.modem.calls import CallEvent
from drivers.modem.counters import ModemCounters
from drivers.modem.driver import ModemConfig, ModemDriver
from drivers.modem.errors import (
    CmeError,
    CommandError,
    ModemError,
    NoNetwork,
    PortBusy,
    SimPinRequired,
)
from drivers.modem.protocol import Command, Urc, answer_prefix
from drivers.modem.transport import AtTransport, Timeouts
from drivers.modem.urcs import CallState

DEFAULT_PORTS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*")
_PROBE = ModemConfig(port="", boot_timeout=1.5, keepalive=3600.0, timeouts=Timeouts(short=1.0))


def list_ports(patterns: tuple[str, ...] = DEFAULT_PORTS) -> list[str]:
    """Serial ports matching ``patterns``, without duplicates, in a stable order."""
    seen: dict[str, None] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            seen.setdefault(path, None)
    return list(seen)


async def probe(port: str, profile: str | None = None) -> dict[str, Any]:
    """Identity, SIM, registration and signal of the modem on ``port``."""
    config = dataclasses.replace(_PROBE, port=port, profile=profile)
    driver = ModemDriver(config)
    await driver.start()
    try:
        result: dict[str, Any] = {"port": port, "profile": driver.profile_name}
        result["identity"] = asdict(driver.identity) if driver.identity else None
        try:
            result["sim"] = asdict(await driver.sim_info(wait=3.0))
        except CmeError as err:
            result["sim"] = {"pin_state": err.text or err.result}
        result["network"] = asdict(await driver.network_info())
        return result
    finally:
        await driver.stop()


async def scan(patterns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Probe every port; a port that fails carries ``error`` instead of modem data, and
    ``busy`` when another process (such as the running appliance) holds it."""
    results = []
    for port in list_ports(patterns):
        try:
            results.append(await probe(port))
        except ModemError as err:
            results.append({"port": port, "error": str(err), "busy": isinstance(err, PortBusy)})
    return results


async def raw_at(
    port: str, commands: list[str], listen: float, show: Callable[[str], None]
) -> bool:
    """Send ``commands`` as typed, show answers and URCs; True when all ended in OK."""

    def on_urc(urc: Urc) -> None:
        show(f"URC {urc.line}" + (f" {urc.body}" if urc.body else ""))

    transport = AtTransport(
        port, urc_prefixes=(), on_urc=on_urc, on_lost=lambda _e: None, counters=ModemCounters()
    )
    await transport.open()
    ok = True
    try:
        for text in commands:
            show(f"> {text}")
            try:
                response = await transport.command(Command(text, answer_prefix(text), raw=True))
                for line in response.lines:
                    show(line)
                show(response.result.line)
            except CommandError as err:
                ok = False
                show(err.result)
        await asyncio.sleep(listen)
    finally:
        transport.close()
    return ok


async def _ready_driver(port: str, registered: bool) -> ModemDriver:
    driver = ModemDriver(ModemConfig(port=port, boot_timeout=5.0, keepalive=3600.0))
    await driver.start()
    try:
        sim = await driver.sim_info(wait=5.0)
        if sim.pin_state != "READY":
            raise SimPinRequired("AT+CPIN?", sim.pin_state, 11, f"SIM locked ({sim.pin_state})")
        if registered:
            await _require_network(driver)
    except BaseException:
        await driver.stop()
        raise
    return driver


async def _require_network(driver: ModemDriver) -> None:
    """Registered now, or searching (stat 2) and registered within 15 s; else NoNetwork."""
    network = await driver.network_info()
    if network.registered:
        return
    if network.stat != 2:
        meaning = _STAT.get(network.stat, "?")
        raise NoNetwork(f"no network: not registered (stat {network.stat}: {meaning})")
    await driver.wait_registered(15.0)


_STAT = {
    0: "not searching",
    1: "home",
    2: "searching",
    3: "registration denied",
    4: "unknown",
    5: "roaming",
}


async def send_sms(port: str, number: str, text: str) -> list[int]:
    """Send one SMS; returns the message references."""
    driver = await _ready_driver(port, registered=True)
    try:
        return await driver.send_sms(number, text)
    finally:
        await driver.stop()


async def test_call(
    port: str, number: str, seconds: float, show: Callable[[str], None]
) -> CallEvent | None:
    """Dial, hold the call ``seconds`` once answered, hang up; returns the release event."""
    driver = await _ready_driver(port, registered=True)
    stream = driver.subscribe()
    try:
        await driver.dial(number)
        async with asyncio.timeout(60.0 + seconds):
            return await _follow_call(driver, stream.get, seconds, show)
    except TimeoutError:
        raise NoNetwork(f"no network: call to {number} made no progress in 60 s") from None
    finally:
        with contextlib.suppress(ModemError):
            if driver.calls:
                await driver.hangup()
        await driver.stop()


async def _follow_call(
    driver: ModemDriver, get: Callable[[float], Any], seconds: float, show: Callable[[str], None]
) -> CallEvent | None:
    while True:
        event = await get(60.0)
        if not isinstance(event, CallEvent):
            continue
        show(f"call {event.state.value}" + (f" ({event.cause})" if event.cause else ""))
        if event.state is CallState.RELEASED:
            return event
        if event.state is CallState.ACTIVE:
            await asyncio.sleep(seconds)
            await driver.hangup()
