"""GSM 7-bit default alphabet and septet packing (3GPP TS 23.038 §6.2.1, §6.1.2.1.1).

Text that does not fit the default alphabet plus its extension table must go as UCS-2; that
decision is made in :mod:`drivers.modem.pdu`.
"""

from __future__ import annotations

from drivers.modem.errors import RemoteProtocolError

# 23.038 §6.2.1 default alphabet, indexed by septet value; 0x1B escapes to the extension table.
DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
ESCAPE = 0x1B
# 23.038 §6.2.1.1 extension table (after an escape septet).
EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_ENCODE: dict[str, tuple[int, ...]] = {
    char: (index,) for index, char in enumerate(DEFAULT_ALPHABET) if index != ESCAPE
}
_ENCODE.update({char: (ESCAPE, code) for code, char in EXTENSION.items()})


def encodable(text: str) -> bool:
    """True when every character has a GSM-7 representation."""
    return all(char in _ENCODE for char in text)


def to_septets(text: str) -> list[int]:
    """Septet values for ``text`` (escape sequences for extension characters)."""
    septets: list[int] = []
    for char in text:
        septets.extend(_ENCODE[char])
    return septets


def char_septets(char: str) -> int:
    """How many septets one character takes (1, or 2 for extension-table characters)."""
    return len(_ENCODE[char])


def from_septets(septets: list[int]) -> str:
    """Text for septet values; an unknown escape falls back to the default table (23.038)."""
    out: list[str] = []
    escaped = False
    for value in septets:
        if escaped:
            out.append(EXTENSION.get(value, DEFAULT_ALPHABET[value]))
            escaped = False
        elif value == ESCAPE:
            escaped = True
        else:
            out.append(DEFAULT_ALPHABET[value])
    return "".join(out)


def pack(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB first (23.038 §6.1.2.1.1), after ``fill_bits`` zero bits."""
    out = bytearray()
    acc = 0
    nbits = fill_bits
    for value in septets:
        acc |= value << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits > 0:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """Unpack ``count`` septets that start ``fill_bits`` into ``data``."""
    if (count * 7 + fill_bits + 7) // 8 > len(data):
        raise RemoteProtocolError(f"{count} septets do not fit in {len(data)} octets")
    value = int.from_bytes(data, "little") >> fill_bits
    return [(value >> (7 * index)) & 0x7F for index in range(count)]


def pack_hex(text: str) -> str:
    """Packed GSM-7 as upper-case hex (Huawei USSD strings: ``*100#`` is ``AA180C3602``)."""
    return pack(to_septets(text)).hex().upper()


def unpack_hex(data: str) -> str:
    """Inverse of :func:`pack_hex`; a trailing CR pad septet is dropped (23.038 §6.1.2.3.1)."""
    try:
        raw = bytes.fromhex(data)
    except ValueError as err:
        raise RemoteProtocolError(f"not hex: {data!r}") from err
    septets = unpack(raw, len(raw) * 8 // 7)
    if septets and septets[-1] in (0, 0x0D) and len(raw) * 8 % 7 == 0:
        septets.pop()
    return from_septets(septets)
