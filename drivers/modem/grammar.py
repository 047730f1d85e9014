"""AT response grammar: final results and the information records the driver reads.

Every pattern names the clause it comes from: 3GPP TS 27.007 (call control, network, SIM),
27.005 (SMS), V.250 (framing and final results). Vendor records (Huawei ``^CEND``, Quectel
``+QIND``, SIMCom ``VOICE CALL``) are parsed in :mod:`drivers.modem.profiles`, beside the data
that says which modem sends them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.modem import errors

# V.250 §5.7.1 final result codes, plus Huawei's dialect for an unknown command.
_FINAL_PLAIN = {
    "OK": "ok",
    "ERROR": "error",
    "NO CARRIER": "no-carrier",
    "BUSY": "busy",
    "NO ANSWER": "no-answer",
    "NO DIALTONE": "no-dialtone",
    "COMMAND NOT SUPPORT": "not-supported",
}
# 27.007 §9.2 / 27.005 §3.2.5: "+CME ERROR: 10" (CMEE=1) or "+CME ERROR: SIM not inserted" (CMEE=2).
_FINAL_CODED = re.compile(r"^\+(CME|CMS) ERROR: ?(.*)$")

# 27.007 §9.2.1 numeric codes and the verbose texts modems print with CMEE=2.
CME_TEXTS: dict[int, str] = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    100: "unknown",
}
_CME_BY_TEXT = {text.lower(): code for code, text in CME_TEXTS.items()}
_CME_CLASSES: dict[int, type[errors.CmeError]] = {
    10: errors.SimNotInserted,
    11: errors.SimPinRequired,
    17: errors.SimPinRequired,
    12: errors.SimPukRequired,
    18: errors.SimPukRequired,
    13: errors.SimFailure,
    14: errors.SimBusy,
    30: errors.NoNetworkService,
    31: errors.NoNetworkService,
    32: errors.NoNetworkService,
}


@dataclass(frozen=True)
class FinalResult:
    """A V.250 final result line, classified."""

    kind: str
    line: str
    code: int | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        """True for `OK`."""
        return self.kind == "ok"


def parse_final(line: str) -> FinalResult | None:
    """Classify a line as a final result code, or return None."""
    kind = _FINAL_PLAIN.get(line)
    if kind is not None:
        return FinalResult(kind, line)
    match = _FINAL_CODED.match(line)
    if match is None:
        return None
    body = match.group(2).strip()
    code = int(body) if body.isdigit() else _CME_BY_TEXT.get(body.lower())
    text = CME_TEXTS.get(code, body) if body.isdigit() and code is not None else body
    return FinalResult(match.group(1).lower(), line, code, text)


def error_for(command: str, result: FinalResult) -> errors.CommandError:
    """The typed exception for a failed command."""
    if result.kind == "cme":
        cls = _CME_CLASSES.get(result.code or -1, errors.CmeError)
        return cls(command, result.line, result.code, result.text)
    if result.kind == "cms":
        return errors.CmsError(command, result.line, result.code)
    if result.kind in ("error", "not-supported"):
        return errors.CommandNotSupported(command, result.line)
    return errors.CallFailed(command, result.line)


def fields(line: str, prefix: str) -> list[str]:
    """Split ``PREFIX: a,"b,c",d`` into ``["a", "b,c", "d"]`` (quotes protect commas)."""
    body = line[len(prefix) :].lstrip(":").strip()
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for char in body:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    out.append("".join(current).strip())
    return out


def to_int(value: str, default: int | None = None) -> int | None:
    """An integer field, or ``default`` when the field is empty or not numeric."""
    value = value.strip()
    if value.lstrip("-").isdigit():
        return int(value)
    return default


@dataclass(frozen=True)
class Clcc:
    """27.007 §7.18 ``+CLCC: idx,dir,stat,mode,mpty[,number,type]``."""

    idx: int
    incoming: bool
    stat: int
    mode: int
    number: str

    @property
    def is_voice(self) -> bool:
        """Mode 0 is voice; LTE lists a phantom PS "call" with mode 1 (filter it out)."""
        return self.mode == 0


def parse_clcc(line: str) -> Clcc:
    """Parse one ``+CLCC:`` line."""
    parts = fields(line, "+CLCC")
    if len(parts) < 5:
        raise errors.RemoteProtocolError(f"short +CLCC record: {line!r}")
    idx, direction, stat, mode = (to_int(p) for p in parts[:4])
    if idx is None or direction is None or stat is None or mode is None:
        raise errors.RemoteProtocolError(f"non-numeric +CLCC field: {line!r}")
    number = parts[5] if len(parts) > 5 else ""
    return Clcc(idx, direction == 1, stat, mode, number)


@dataclass(frozen=True)
class Registration:
    """27.007 §7.2 ``+CREG`` / §10.1.22 ``+CEREG`` registration state."""

    stat: int
    lac: str = ""
    cell: str = ""
    act: int | None = None

    @property
    def registered(self) -> bool:
        """Stat 1 is home, 5 is roaming."""
        return self.stat in (1, 5)


def parse_registration(line: str) -> Registration:
    """``+CREG: n,stat[,lac,ci[,AcT]]`` (read answer) or ``+CREG: stat[,lac,ci[,AcT]]`` (URC).

    Both forms share the prefix, and a URC may land inside an ``AT+CREG?`` answer, so the form
    is told from the line itself: the URC's second field is the quoted LAC, the answer's is the
    numeric stat.
    """
    prefix = line.split(":", 1)[0]
    parts = fields(line, prefix)
    raw = line.split(":", 1)[1].split(",") if ":" in line else []
    if is_solicited_registration(raw):
        parts = parts[1:]
    stat = to_int(parts[0]) if parts else None
    if stat is None:
        raise errors.RemoteProtocolError(f"bad registration record: {line!r}")
    lac = parts[1] if len(parts) > 1 else ""
    cell = parts[2] if len(parts) > 2 else ""
    act = to_int(parts[3]) if len(parts) > 3 else None
    return Registration(stat, lac, cell, act)


def is_solicited_registration(raw_fields: list[str]) -> bool:
    """True for the read-answer form ``n,stat,...`` (second field numeric, not quoted)."""
    return len(raw_fields) >= 2 and not raw_fields[1].strip().startswith('"')


def csq_to_dbm(rssi: int) -> int | None:
    """27.007 §8.5: rssi 0..31 maps to -113 + 2*rssi dBm; 99 is unknown."""
    if 0 <= rssi <= 31:
        return -113 + 2 * rssi
    return None


@dataclass(frozen=True)
class Cops:
    """27.007 §7.3 ``+COPS: mode[,format,oper[,AcT]]``."""

    mode: int
    operator: str
    act: int | None


def parse_cops(line: str) -> Cops:
    """Parse the read answer of ``AT+COPS?``."""
    parts = fields(line, "+COPS")
    mode = to_int(parts[0], 0) or 0
    operator = parts[2] if len(parts) > 2 else ""
    act = to_int(parts[3]) if len(parts) > 3 else None
    return Cops(mode, operator, act)


@dataclass(frozen=True)
class Cusd:
    """27.007 §7.15 ``+CUSD: m[,str,dcs]`` (m 0 done, 1 further action, 2 terminated)."""

    status: int
    text: str
    dcs: int


def parse_cusd(line: str) -> Cusd:
    """Parse a ``+CUSD`` URC; decoding of the string is the profile's job."""
    parts = fields(line, "+CUSD")
    status = to_int(parts[0])
    if status is None:
        raise errors.RemoteProtocolError(f"bad +CUSD record: {line!r}")
    text = parts[1] if len(parts) > 1 else ""
    dcs = to_int(parts[2], 15) if len(parts) > 2 else 15
    return Cusd(status, text, dcs if dcs is not None else 15)


def parse_cpin(line: str) -> str:
    """27.007 §8.3 ``+CPIN: READY | SIM PIN | SIM PUK | ...``."""
    return line.split(":", 1)[1].strip() if ":" in line else line.strip()
