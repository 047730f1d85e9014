"""Finding a modem again after it re-enumerated, and probing ports for an IMEI.

USB modems come back under new ``ttyUSB`` numbers after ``AT+CFUN=1,1`` or a replug, so the
driver prefers udev ``/dev/serial/by-id`` names, whose ``-ifNN-portM`` suffix names the USB
interface: the voice port of the same modem is the same name with the profile's voice
interface. When only a bare device path is known, candidates matching the configured globs are
probed for the IMEI recorded at start-up.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import re

from drivers.modem.counters import ModemCounters
from drivers.modem.errors import CommandTimeout, ModemError
from drivers.modem.profiles import ModemProfile
from drivers.modem.protocol import Command
from drivers.modem.transport import AtTransport, Timeouts

log = logging.getLogger(__name__)
_INTERFACE = re.compile(r"-if(\d\d)-port(\d+)$")


def sibling_port(path: str, interface: str) -> str | None:
    """The by-id path of another USB interface of the same device, or None for bare paths."""
    if _INTERFACE.search(path) is None:
        return None
    return _INTERFACE.sub(f"-{interface}-port0", path)


def candidates(patterns: tuple[str, ...], profile: ModemProfile) -> list[str]:
    """Ports matching ``patterns``; by-id names of other USB interfaces are skipped."""
    found: list[str] = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            match = _INTERFACE.search(path)
            if match is not None and f"if{match.group(1)}" != profile.at_interface:
                continue
            found.append(path)
    return found


async def probe_imei(path: str, limit: float = 1.0) -> str | None:
    """The IMEI answered on ``path`` (``AT+CGSN``), or None when nothing sensible answers."""
    transport = AtTransport(
        path,
        urc_prefixes=(),
        on_urc=lambda _urc: None,
        on_lost=lambda _err: None,
        counters=ModemCounters(),
        timeouts=Timeouts(short=limit, medium=limit, long=limit),
    )
    try:
        await transport.open()
        response = await transport.command(Command("AT+CGSN", raw=True))
    except ModemError as err:
        log.debug("probe of %s failed: %s", path, err)
        return None
    finally:
        transport.close()
    lines = [line for line in response.lines if line.isdigit()]
    return lines[0] if lines else None


async def find_by_imei(patterns: tuple[str, ...], profile: ModemProfile, imei: str) -> str | None:
    """The first candidate port whose modem answers with ``imei``."""
    for path in candidates(patterns, profile):
        if await probe_imei(path) == imei:
            return path
    return None


async def send_reset(path: str, counters: ModemCounters, limit: float) -> None:
    """``AT+CFUN=1,1`` (27.007 §8.2: full functionality with reset) on a possibly wedged port;
    no answer is expected from a wedged modem, so a timeout is not an error here."""
    transport = AtTransport(
        path,
        urc_prefixes=(),
        on_urc=lambda _urc: None,
        on_lost=lambda _err: None,
        counters=counters,
        timeouts=Timeouts(short=limit, medium=limit, long=limit),
    )
    await transport.open()
    try:
        await transport.command(Command("AT+CFUN=1,1"), limit=limit)
    except CommandTimeout:
        log.info("%s: no answer to AT+CFUN=1,1 (expected from a wedged modem)", path)
    finally:
        transport.close()


def present(path: str) -> bool:
    """True when the device node (or its by-id link target) exists; a single stat call."""
    return os.path.exists(path)


async def wait_gone(path: str, within: float) -> bool:
    """Wait until ``path`` disappears (the device dropped off USB); False if it stays."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while present(path):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True
