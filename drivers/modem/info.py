"""Read-only modem queries: identity (27.007 §5), SIM (§8.3, §5.6), network (§7.2, §7.3, §8.5)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from drivers.modem import grammar
from drivers.modem.errors import CommandError, SimBusy
from drivers.modem.session import ModemSession

T = TypeVar("T")

# 27.007 §7.3 <AcT> values.
TECHNOLOGIES = {
    0: "GSM",
    1: "GSM",
    2: "UMTS",
    3: "EDGE",
    4: "HSDPA",
    5: "HSUPA",
    6: "HSPA",
    7: "LTE",
    13: "NR",
}


@dataclass(frozen=True)
class Identity:
    """``AT+CGMI``, ``AT+CGMM``, ``AT+CGMR``, ``AT+CGSN``."""

    manufacturer: str
    model: str
    firmware: str
    imei: str


@dataclass(frozen=True)
class SimInfo:
    """PIN state, ICCID, IMSI and own number (empty when the SIM does not store it)."""

    pin_state: str
    iccid: str = ""
    imsi: str = ""
    number: str = ""


@dataclass(frozen=True)
class NetworkInfo:
    """Registration, operator and signal."""

    registered: bool
    stat: int
    technology: str
    operator: str
    signal_dbm: int | None
    lac: str = ""
    cell: str = ""


async def _text(session: ModemSession, command: str) -> str:
    """Single-line answers (some modems prefix them with ``+CGMI:``)."""
    response = await session.run(command, raw=True)
    line = response.lines[0] if response.lines else ""
    head, sep, rest = line.partition(":")
    return rest.strip() if sep and head.startswith(("+", "^")) else line.strip()


async def identify(session: ModemSession) -> Identity:
    """Manufacturer, model, firmware and IMEI."""
    manufacturer = await _text(session, "AT+CGMI")
    model = await _text(session, "AT+CGMM")
    firmware = await _text(session, "AT+CGMR")
    imei = await _text(session, "AT+CGSN")
    return Identity(manufacturer, model, firmware, imei)


async def pin_state(session: ModemSession) -> str:
    """``+CPIN: READY | SIM PIN | SIM PUK``; raises SimNotInserted, SimBusy, ..."""
    lines = await session.query("AT+CPIN?", "+CPIN:")
    return grammar.parse_cpin(lines[0]) if lines else "UNKNOWN"


async def sim_info(session: ModemSession, deadline: float) -> SimInfo:
    """PIN state and, when the SIM is ready, ICCID, IMSI and own number. Each query is retried
    on its own while the SIM answers busy, until the loop time ``deadline``."""
    state = await retry_busy(lambda: pin_state(session), deadline=deadline)
    if state != "READY":
        return SimInfo(state)
    command, prefix = session.profile.iccid
    iccid = await retry_busy(lambda: _optional(session.query(command, prefix)), deadline=deadline)
    imsi = await retry_busy(lambda: _text(session, "AT+CIMI"), deadline=deadline)
    numbers = await retry_busy(
        lambda: _optional(session.query("AT+CNUM", "+CNUM:")), deadline=deadline
    )
    number = grammar.fields(numbers[0], "+CNUM")[1] if numbers else ""
    iccid_text = grammar.fields(iccid[0], prefix.rstrip(":"))[0] if iccid else ""
    return SimInfo(state, iccid_text.rstrip("F"), imsi, number)


async def _optional(call: Awaitable[T]) -> T | None:
    """Answers many SIMs or firmwares lack (``AT+CNUM`` without MSISDN): None on ERROR.
    A busy SIM is not a missing answer: SimBusy propagates so the caller can retry."""
    try:
        return await call
    except SimBusy:
        raise
    except CommandError:
        return None


async def network_info(session: ModemSession) -> NetworkInfo:
    """Best registration of CREG/CEREG, operator name and signal in dBm."""
    reg = await registration(session)
    cops = await session.query("AT+COPS?", "+COPS:")
    operator = grammar.parse_cops(cops[0]) if cops else grammar.Cops(0, "", None)
    csq = await session.query("AT+CSQ", "+CSQ:")
    rssi = grammar.to_int(grammar.fields(csq[0], "+CSQ")[0], 99) if csq else 99
    act = reg.act if reg.act is not None else operator.act
    technology = TECHNOLOGIES.get(act, "") if act is not None else ""
    dbm = grammar.csq_to_dbm(rssi if rssi is not None else 99)
    return NetworkInfo(
        reg.registered, reg.stat, technology, operator.operator, dbm, reg.lac, reg.cell
    )


async def registration(session: ModemSession) -> grammar.Registration:
    """CREG, or CEREG when only LTE is registered (27.007 §10.1.22)."""
    creg = _answer(await session.query("AT+CREG?", "+CREG:"))
    best = grammar.parse_registration(creg) if creg else grammar.Registration(4)
    if best.registered:
        return best
    cereg = _answer(await _optional(session.query("AT+CEREG?", "+CEREG:")) or [])
    if cereg:
        lte = grammar.parse_registration(cereg)
        if lte.registered:
            return lte
    return best


def _answer(lines: list[str]) -> str | None:
    """The read answer among ``+CREG`` lines (a registration URC may have slipped in)."""
    for line in lines:
        if grammar.is_solicited_registration(line.split(":", 1)[-1].split(",")):
            return line
    return None


async def retry_busy(call: Callable[[], Awaitable[T]], *, deadline: float) -> T:
    """Run ``call`` again while the SIM answers ``+CME ERROR: 14`` (busy), up to ``deadline``."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await call()
        except SimBusy:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.2)
