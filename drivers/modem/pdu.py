"""SMS PDU mode (3GPP TS 23.040 §9.2): SMS-SUBMIT encoding, SMS-DELIVER decoding, and the
concatenation header (§9.2.3.24.1 8-bit reference, §9.2.3.24.8 16-bit reference).

Text goes as GSM-7 when every character fits (23.038 §6.2.1), otherwise as UCS-2. Long text is
split into parts of 153 septets or 67 UCS-2 units, never splitting an escape sequence or a
surrogate pair. PDUs read from the modem that do not parse raise RemoteProtocolError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from drivers.modem import gsm7
from drivers.modem.errors import RemoteProtocolError

_GSM7_SINGLE, _GSM7_PART = 160, 153
_UCS2_SINGLE, _UCS2_PART = 70, 67
_DCS_GSM7, _DCS_UCS2 = 0x00, 0x08


@dataclass(frozen=True)
class Concat:
    """Concatenation info element: reference, part count, 1-based sequence number."""

    reference: int
    total: int
    sequence: int


@dataclass(frozen=True)
class SmsPart:
    """One decoded TPDU: the other party's number, text, timestamp and concatenation info."""

    number: str
    text: str
    timestamp: datetime | None = None
    concat: Concat | None = None


@dataclass(frozen=True)
class EncodedPdu:
    """A PDU as hex for ``AT+CMGS`` and its TPDU octet count (the SMSC octet excluded)."""

    hex: str
    tpdu_length: int


def split_text(text: str) -> tuple[int, list[str]]:
    """The data coding scheme and the text of each part."""
    if gsm7.encodable(text):
        septets = len(gsm7.to_septets(text))
        limit = _GSM7_SINGLE if septets <= _GSM7_SINGLE else _GSM7_PART
        return _DCS_GSM7, _chunks(text, limit, gsm7.char_septets)
    units = len(text.encode("utf-16-be")) // 2
    limit = _UCS2_SINGLE if units <= _UCS2_SINGLE else _UCS2_PART
    return _DCS_UCS2, _chunks(text, limit, lambda char: len(char.encode("utf-16-be")) // 2)


def _chunks(text: str, limit: int, cost: Callable[[str], int]) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for char in text:
        size = cost(char)
        if used + size > limit:
            parts.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += size
    parts.append("".join(current))
    return parts


def encode_submit(number: str, text: str, *, reference: int = 0) -> list[EncodedPdu]:
    """SMS-SUBMIT PDUs for ``text`` to ``number``, SMSC taken from the SIM (leading ``00``)."""
    dcs, parts = split_text(text)
    pdus = []
    for sequence, chunk in enumerate(parts, start=1):
        concat = Concat(reference & 0xFF, len(parts), sequence) if len(parts) > 1 else None
        first = 0x11 | (0x40 if concat else 0x00)  # TP-MTI submit, TP-VPF relative, TP-UDHI
        body = bytes([first, 0x00]) + _address(number) + bytes([0x00, dcs, 0xAA])
        tpdu = body + _user_data(chunk, dcs, concat)
        pdus.append(EncodedPdu("00" + tpdu.hex().upper(), len(tpdu)))
    return pdus


def encode_deliver(number: str, text: str, when: datetime, *, reference: int = 0) -> list[str]:
    """SMS-DELIVER PDUs (with an SMSC address), as a network would hand them to a modem."""
    dcs, parts = split_text(text)
    smsc = _address("+15550000000")[1:]
    out = []
    for sequence, chunk in enumerate(parts, start=1):
        concat = Concat(reference & 0xFF, len(parts), sequence) if len(parts) > 1 else None
        first = 0x04 | (0x40 if concat else 0x00)  # TP-MTI deliver, TP-MMS, TP-UDHI
        body = bytes([first]) + _address(number) + bytes([0x00, dcs]) + _timestamp(when)
        tpdu = body + _user_data(chunk, dcs, concat)
        out.append((bytes([len(smsc)]) + smsc + tpdu).hex().upper())
    return out


def _address(number: str) -> bytes:
    """23.040 §9.1.2.5 address: digit count, type (0x91 international), swapped semi-octets."""
    international = number.startswith("+")
    digits = number.lstrip("+")
    swapped = _semi_octets(digits)
    return bytes([len(digits), 0x91 if international else 0x81]) + swapped


def _semi_octets(digits: str) -> bytes:
    padded = digits + ("F" if len(digits) % 2 else "")
    return bytes.fromhex("".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2)))


def _timestamp(when: datetime) -> bytes:
    """23.040 §9.2.3.11 service centre time stamp, semi-octets, zone in quarter hours."""
    offset = when.utcoffset() or timedelta(0)
    quarters = int(offset.total_seconds() // 900)
    digits = when.strftime("%y%m%d%H%M%S") + f"{abs(quarters):02d}"
    stamp = bytearray(_semi_octets(digits))
    if quarters < 0:
        stamp[-1] |= 0x08
    return bytes(stamp)


def _user_data(chunk: str, dcs: int, concat: Concat | None) -> bytes:
    udh = (
        b""
        if concat is None
        else bytes([5, 0x00, 3, concat.reference, concat.total, concat.sequence])
    )
    if dcs == _DCS_UCS2:
        payload = udh + chunk.encode("utf-16-be")
        return bytes([len(payload)]) + payload
    header_bits = len(udh) * 8
    fill = (7 - header_bits % 7) % 7
    septets = gsm7.to_septets(chunk)
    udl = (header_bits + fill) // 7 + len(septets)
    return bytes([udl]) + udh + gsm7.pack(septets, fill)


class _Reader:
    """Bounds-checked cursor over PDU octets; running off the end is a remote error."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise RemoteProtocolError(f"PDU truncated at octet {self.pos}")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def octet(self) -> int:
        return self.take(1)[0]


def decode_deliver(pdu_hex: str) -> SmsPart:
    """Decode an SMS-DELIVER PDU as read by ``AT+CMGR`` / ``+CMT`` (SMSC prefix included)."""
    reader = _reader(pdu_hex)
    reader.take(reader.octet())
    first = reader.octet()
    if first & 0x03 != 0x00:
        raise RemoteProtocolError(f"not an SMS-DELIVER (first octet {first:#04x})")
    number = _read_address(reader)
    reader.octet()
    dcs = reader.octet()
    when = _read_timestamp(reader.take(7))
    text, concat = _read_user_data(reader, dcs, bool(first & 0x40))
    return SmsPart(number, text, when, concat)


def decode_submit(pdu_hex: str) -> SmsPart:
    """Decode an SMS-SUBMIT PDU as written to ``AT+CMGS`` (the simulator's side)."""
    reader = _reader(pdu_hex)
    reader.take(reader.octet())
    first = reader.octet()
    if first & 0x03 != 0x01:
        raise RemoteProtocolError(f"not an SMS-SUBMIT (first octet {first:#04x})")
    reader.octet()
    number = _read_address(reader)
    reader.octet()
    dcs = reader.octet()
    vpf = (first >> 3) & 0x03
    reader.take({0: 0, 2: 1}.get(vpf, 7))
    text, concat = _read_user_data(reader, dcs, bool(first & 0x40))
    return SmsPart(number, text, None, concat)


def _reader(pdu_hex: str) -> _Reader:
    try:
        return _Reader(bytes.fromhex(pdu_hex.strip()))
    except ValueError as err:
        raise RemoteProtocolError(f"PDU is not hex: {pdu_hex[:40]!r}") from err


def _read_address(reader: _Reader) -> str:
    digits = reader.octet()
    kind = reader.octet()
    raw = reader.take((digits + 1) // 2)
    if kind & 0x70 == 0x50:  # alphanumeric sender (23.040 §9.1.2.5)
        return gsm7.from_septets(gsm7.unpack(raw, digits * 4 // 7))
    swapped = "".join(f"{octet & 0x0F:X}{octet >> 4:X}" for octet in raw)[:digits]
    return ("+" if kind & 0x70 == 0x10 else "") + swapped


def _read_timestamp(raw: bytes) -> datetime | None:
    unsigned = raw[:6] + bytes([raw[6] & 0xF7])
    digits = "".join(f"{octet & 0x0F:X}{octet >> 4:X}" for octet in unsigned)
    try:
        quarters = int(digits[12:14]) * (-1 if raw[6] & 0x08 else 1)
        zone = timezone(timedelta(minutes=15 * quarters))
        return datetime.strptime(digits[:12], "%y%m%d%H%M%S").replace(tzinfo=zone)
    except ValueError:
        return None


def _read_user_data(reader: _Reader, dcs: int, udhi: bool) -> tuple[str, Concat | None]:
    udl = reader.octet()
    rest = reader.data[reader.pos :]
    udh = rest[: rest[0] + 1] if udhi and rest else b""
    concat = _read_concat(udh[1:]) if udh else None
    if _alphabet(dcs) == "gsm7":
        fill = (7 - len(udh) * 8 % 7) % 7
        skip = (len(udh) * 8 + fill) // 7
        septets = gsm7.unpack(rest[len(udh) :], udl - skip, fill) if udl >= skip else []
        return gsm7.from_septets(septets), concat
    body = rest[len(udh) : udl]
    if _alphabet(dcs) == "ucs2":
        return body.decode("utf-16-be", errors="replace"), concat
    return body.hex().upper(), concat


def _alphabet(dcs: int) -> str:
    """23.038 §4 coding groups, reduced to the three alphabets."""
    if dcs & 0xC0 == 0x00 or dcs & 0xF0 == 0xF0:
        group = (dcs >> 2) & 0x03 if dcs & 0xC0 == 0x00 else (dcs >> 2) & 0x01
        return {0: "gsm7", 1: "8bit", 2: "ucs2"}.get(group, "gsm7")
    return "ucs2" if dcs & 0x0C == 0x08 else "gsm7"


def _read_concat(elements: bytes) -> Concat | None:
    pos = 0
    while pos + 2 <= len(elements):
        iei, length = elements[pos], elements[pos + 1]
        value = elements[pos + 2 : pos + 2 + length]
        if iei == 0x00 and length == 3 and len(value) == 3:
            return Concat(value[0], value[1], value[2])
        if iei == 0x08 and length == 4 and len(value) == 4:
            return Concat(int.from_bytes(value[:2], "big"), value[2], value[3])
        pos += 2 + length
    return None
