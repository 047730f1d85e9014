"""Unsolicited result codes decoded into typed, vendor-neutral events.

Each decoder turns one URC line (27.007, 27.005 or a vendor dialect) into a :data:`ModemUrc`, or
None for URCs the driver only counts (signal reports, time zone). Which decoders apply to a
modem is data in :mod:`drivers.modem.profiles`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from drivers.modem import grammar
from drivers.modem.grammar import Cusd, Registration


class CallState(enum.Enum):
    """Call states after 27.007 §7.18 (``+CLCC`` stat) plus RELEASED."""

    ACTIVE = "active"
    HELD = "held"
    DIALING = "dialing"
    ALERTING = "alerting"
    INCOMING = "incoming"
    WAITING = "waiting"
    RELEASED = "released"


# 27.007 §7.18 +CLCC stat values.
CLCC_STATES: Mapping[int, CallState] = {
    0: CallState.ACTIVE,
    1: CallState.HELD,
    2: CallState.DIALING,
    3: CallState.ALERTING,
    4: CallState.INCOMING,
    5: CallState.WAITING,
}


@dataclass(frozen=True)
class CallUpdate:
    """A call changed state; ``idx`` is None when the modem did not say which call."""

    idx: int | None
    state: CallState
    incoming: bool | None = None
    number: str | None = None
    cause: str | None = None
    duration: float | None = None


@dataclass(frozen=True)
class Ring:
    """``RING`` / ``+CRING`` (V.250 §6.3.4, 27.007 §6.11)."""


@dataclass(frozen=True)
class CallerId:
    """``+CLIP: "<number>",<type>`` (27.007 §7.6)."""

    number: str


@dataclass(frozen=True)
class DtmfReceived:
    """A DTMF digit detected on the downlink (vendor URC)."""

    digit: str


@dataclass(frozen=True)
class NewSms:
    """``+CMTI: <mem>,<index>`` (27.005 §3.4.1): a message was stored."""

    storage: str
    index: int


@dataclass(frozen=True)
class SmsDelivered:
    """``+CMT: ,<len>`` then the PDU (27.005 §3.4.1), delivered without storing."""

    pdu: str


@dataclass(frozen=True)
class UssdReceived:
    """``+CUSD`` (27.007 §7.15)."""

    cusd: Cusd


@dataclass(frozen=True)
class RegistrationChanged:
    """``+CREG`` / ``+CEREG`` URC (27.007 §7.2, §10.1.22)."""

    registration: Registration


@dataclass(frozen=True)
class SimStatus:
    """SIM presence or readiness changed (``+CPIN``, ``+QSIMSTAT``)."""

    state: str
    inserted: bool | None = None


@dataclass(frozen=True)
class ModemReady:
    """Boot markers (``RDY``, ``+QIND: SMS DONE``, ``^SIMST``)."""

    marker: str


ModemUrc = (
    CallUpdate
    | Ring
    | CallerId
    | DtmfReceived
    | NewSms
    | SmsDelivered
    | UssdReceived
    | RegistrationChanged
    | SimStatus
    | ModemReady
)
Decoder = Callable[[str, str], ModemUrc | None]


def ring(_line: str, _body: str) -> ModemUrc:
    """RING and +CRING."""
    return Ring()


def clip(line: str, _body: str) -> ModemUrc:
    """27.007 §7.6 +CLIP."""
    return CallerId(grammar.fields(line, "+CLIP")[0])


def line_released(line: str, _body: str) -> ModemUrc:
    """NO CARRIER / BUSY / NO ANSWER outside a dial: the call ended (V.250 §5.7.1)."""
    return CallUpdate(None, CallState.RELEASED, cause=line.lower())


def cmti(line: str, _body: str) -> ModemUrc | None:
    """27.005 §3.4.1 +CMTI."""
    parts = grammar.fields(line, "+CMTI")
    index = grammar.to_int(parts[-1])
    return NewSms(parts[0], index) if index is not None else None


def cmt(_line: str, body: str) -> ModemUrc:
    """27.005 §3.4.1 +CMT with its PDU line."""
    return SmsDelivered(body)


def cusd(line: str, _body: str) -> ModemUrc:
    """27.007 §7.15 +CUSD."""
    return UssdReceived(grammar.parse_cusd(line))


def registration(line: str, _body: str) -> ModemUrc:
    """27.007 §7.2 +CREG, §10.1.22 +CEREG."""
    return RegistrationChanged(grammar.parse_registration(line))


def cpin(line: str, _body: str) -> ModemUrc:
    """27.007 §8.3 +CPIN reported at boot or SIM change."""
    state = grammar.parse_cpin(line)
    return SimStatus(state, None if state == "NOT READY" else True)


def ready(line: str, _body: str) -> ModemUrc:
    """Boot markers."""
    return ModemReady(line)


def clcc_decoder(states: Mapping[int, CallState]) -> Decoder:
    """+CLCC auto-report (SIMCom ``AT+CLCC=1`` adds stat 6 = released)."""

    def decode(line: str, _body: str) -> ModemUrc | None:
        record = grammar.parse_clcc(line)
        state = states.get(record.stat)
        if state is None or not record.is_voice:
            return None
        return CallUpdate(record.idx, state, record.incoming, record.number)

    return decode


def qind(line: str, body: str) -> ModemUrc | None:
    """Quectel +QIND: ``"ccinfo",idx,dir,stat,mode,mpty,"num",type`` and ``SMS DONE``."""
    parts = grammar.fields(line, "+QIND")
    if parts[0] == "SMS DONE":
        return ModemReady(line)
    if parts[0] != "ccinfo" or len(parts) < 7:
        return None
    idx, direction, stat, mode = (grammar.to_int(p) for p in parts[1:5])
    if idx is None or mode != 0:
        return None
    state = CallState.RELEASED if stat == -1 else CLCC_STATES.get(stat if stat is not None else -2)
    if state is None:
        return None
    return CallUpdate(idx, state, direction == 1, parts[6])


# Quectel manual ch. 7.23: ^DSCI stat codes differ from +CLCC.
_DSCI_STATES = {
    1: CallState.HELD,
    2: CallState.DIALING,
    3: CallState.ACTIVE,
    4: CallState.INCOMING,
    5: CallState.WAITING,
    6: CallState.RELEASED,
    7: CallState.ALERTING,
}


def dsci(line: str, _body: str) -> ModemUrc | None:
    """``^DSCI: id,dir,stat,type,number,num_type,...``; Unisoc builds add a field before the
    number and a release cause after it (``^DSCI: 1,0,6,0,0,"n",129,,17``)."""
    parts = grammar.fields(line, "^DSCI")
    idx, direction, stat = (grammar.to_int(p) for p in parts[:3])
    state = _DSCI_STATES.get(stat if stat is not None else -1)
    if idx is None or state is None or len(parts) < 5:
        return None
    unisoc = len(parts) > 8 and parts[4] in ("0", "1")
    number = parts[5] if unisoc else parts[4]
    cause = parts[8] if unisoc and parts[8] else None
    return CallUpdate(idx, state, direction == 1, number, cause=cause)


def huawei_call(line: str, _body: str) -> ModemUrc | None:
    """Huawei ``^ORIG:idx,type`` ``^CONF:idx`` ``^CONN:idx,type`` ``^CEND:idx,dur,status,cause``."""
    tag, _, rest = line.partition(":")
    parts = [p.strip() for p in rest.split(",")]
    idx = grammar.to_int(parts[0])
    if idx is None:
        return None
    if tag == "^CEND":
        duration = grammar.to_int(parts[1]) if len(parts) > 1 else None
        cause = parts[3] if len(parts) > 3 else None
        seconds = float(duration) if duration is not None else None
        return CallUpdate(idx, CallState.RELEASED, cause=cause, duration=seconds)
    state = {"^ORIG": CallState.DIALING, "^CONF": CallState.ALERTING, "^CONN": CallState.ACTIVE}
    return CallUpdate(idx, state[tag], False if tag == "^ORIG" else None)


_DURATION = re.compile(r"(\d+):(\d\d)$|(\d\d)(\d\d)(\d\d)$")


def simcom_voice_call(line: str, _body: str) -> ModemUrc | None:
    """SIMCom ``VOICE CALL: END: 000003`` (HHMMSS) or ``0:12`` on A76xx; BEGIN is informative."""
    match = _DURATION.search(line)
    if "END" not in line or match is None:
        return None
    if match.group(1) is not None:
        seconds = int(match.group(1)) * 60 + int(match.group(2))
    else:
        hours, minutes, secs = (int(match.group(i)) for i in (3, 4, 5))
        seconds = hours * 3600 + minutes * 60 + secs
    return CallUpdate(None, CallState.RELEASED, duration=float(seconds))


def dtmf_ascii(line: str, _body: str) -> ModemUrc | None:
    """Quectel ``+QTONEDET: 56`` carries the digit as its ASCII code."""
    code = grammar.to_int(line.split(":", 1)[1])
    return DtmfReceived(chr(code)) if code is not None and 32 <= code < 127 else None


def dtmf_char(line: str, _body: str) -> ModemUrc:
    """SIMCom ``+RXDTMF: 5``."""
    return DtmfReceived(line.split(":", 1)[1].strip())


def qsimstat(line: str, _body: str) -> ModemUrc | None:
    """Quectel ``+QSIMSTAT: <enable>,<inserted>``."""
    parts = grammar.fields(line, "+QSIMSTAT")
    inserted = grammar.to_int(parts[-1])
    if inserted is None:
        return None
    return SimStatus("INSERTED" if inserted else "REMOVED", bool(inserted))


def ignore(_line: str, _body: str) -> None:
    """URCs counted but not acted on (signal, time zone, missed-call notes)."""


BASE_DECODERS: tuple[tuple[str, Decoder], ...] = (
    ("RING", ring),
    ("+CRING:", ring),
    ("+CLIP:", clip),
    ("NO CARRIER", line_released),
    ("BUSY", line_released),
    ("NO ANSWER", line_released),
    ("+CMTI:", cmti),
    ("+CMT:", cmt),
    ("+CUSD:", cusd),
    ("+CREG:", registration),
    ("+CEREG:", registration),
    ("+CPIN:", cpin),
    ("+CLCC:", ignore),
)
