"""rtpengine pcap recordings to two-channel WAV (caller left, callee right).

rtpengine's pcap method writes one pcap per call (raw IPv4 link type) and, once the
call is purged, a metadata file holding the call's SDPs as rewritten and the
``metadata=`` string given by Kamailio. The port in the *answer* SDP is where the caller
sends to, the port in the *offer* SDP where the callee sends to; that is how packets are
assigned to sides. While a call is active its metadata sits in ``tmp/``; an rtpengine
crash leaves it there with a pcap that may end mid-record, which is converted as far as
it goes.

Samples are placed by RTP timestamp relative to the stream's first packet, which is
itself placed by capture time, so silence and loss keep both channels aligned.
"""

from __future__ import annotations

import array
import re
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from drivers.sip.errors import RecordingError

RATE = 8000
PCMU, PCMA = 0, 8
MAX_SECONDS = 6 * 3600

# pcap magic as read from the file: the byte order of the headers, the unit of the fraction.
_PCAP_FORMATS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAP_HEADER_BYTES = 24

_M_AUDIO = re.compile(r"^m=audio (\d+) ", re.MULTILINE)
_MODE = re.compile(r"^SDP mode: (offer|answer)\s*$", re.MULTILINE)


def _ulaw(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 0x07)
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


def _alaw(code: int) -> int:
    code ^= 0x55
    segment = (code >> 4) & 0x07
    magnitude = ((code & 0x0F) << 4) + 8
    if segment:
        magnitude = (magnitude + 0x100) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


ULAW = tuple(_ulaw(c) for c in range(256))
ALAW = tuple(_alaw(c) for c in range(256))


@dataclass(frozen=True)
class RecordingMeta:
    """What a metadata file says: pcap path, the ports each side sends to, the tag string."""

    pcap: Path
    caller_port: int | None
    callee_port: int | None
    tags: dict[str, str] = field(default_factory=dict)


def parse_metadata(text: str) -> RecordingMeta:
    """Parse an rtpengine metadata file (complete or a crashed call's ``.tmp``)."""
    lines = text.splitlines()
    if not lines or not lines[0].strip().endswith(".pcap"):
        raise RecordingError("metadata file does not start with a pcap path")
    offer = answer = None
    for match in _MODE.finditer(text):
        port = _M_AUDIO.search(text, match.end())
        if port is None:
            continue
        if match.group(1) == "offer" and offer is None:
            offer = int(port.group(1))
        elif match.group(1) == "answer" and answer is None:
            answer = int(port.group(1))
    tags: dict[str, str] = {}
    for line in reversed(lines):
        if "caller:" in line:
            tags = dict(part.split(":", 1) for part in line.strip().split("|") if ":" in part)
            break
    return RecordingMeta(Path(lines[0].strip()), answer, offer, tags)


@dataclass
class _Stream:
    start: int
    first_ts: int
    samples: array.array[int] = field(default_factory=lambda: array.array("h"))


def _rtp_audio(packet: bytes) -> tuple[int, int, int, bytes] | None:
    """(udp dst port, ssrc, rtp timestamp, pcm samples) of a G.711 RTP/IPv4 packet."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 17:
        return None
    ihl = (packet[0] & 0x0F) * 4
    udp = packet[ihl : ihl + 8]
    rtp = packet[ihl + 8 :]
    if len(udp) < 8 or len(rtp) < 12 or rtp[0] >> 6 != 2:
        return None
    dport = struct.unpack("!H", udp[2:4])[0]
    payload_type = rtp[1] & 0x7F
    offset = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10 and len(rtp) >= offset + 4:
        offset += 4 + 4 * struct.unpack("!H", rtp[offset + 2 : offset + 4])[0]
    payload = rtp[offset:]
    if rtp[0] & 0x20 and payload:
        payload = payload[: -payload[-1]]
    if payload_type not in (PCMU, PCMA):
        return None
    table = ULAW if payload_type == PCMU else ALAW
    timestamp, ssrc = struct.unpack("!II", rtp[4:12])
    pcm = array.array("h", (table[b] for b in payload))
    return dport, ssrc, timestamp, pcm.tobytes()


def _place(channel: array.array[int], at: int, pcm: bytes) -> None:
    samples = array.array("h")
    samples.frombytes(pcm)
    end = at + len(samples)
    if at < 0 or end > MAX_SECONDS * RATE:
        return
    if len(channel) < end:
        channel.extend(array.array("h", [0]) * (end - len(channel)))
    channel[at:end] = samples


def _read_packets(pcap: Path) -> Iterator[tuple[float, bytes]]:
    """(capture time, packet) per record of a classic pcap file, read as it goes; a file
    cut mid-record ends at the last whole record (RecordingError if it is no pcap)."""
    try:
        with pcap.open("rb") as f:
            header = f.read(_PCAP_HEADER_BYTES)
            layout = _PCAP_FORMATS.get(header[:4])
            if len(header) < _PCAP_HEADER_BYTES or layout is None:
                raise RecordingError(f"cannot read pcap {pcap}: not a pcap file")
            yield from _records(f, *layout)
    except OSError as err:
        raise RecordingError(f"cannot read pcap {pcap}: {err}") from None


def _records(f: BinaryIO, order: str, unit: float) -> Iterator[tuple[float, bytes]]:
    record = struct.Struct(f"{order}IIII")
    while len(head := f.read(record.size)) == record.size:
        seconds, fraction, caplen, _ = record.unpack(head)
        data = f.read(caplen)
        if len(data) < caplen:
            return
        yield seconds + fraction * unit, data


def pcap_to_wav(meta: RecordingMeta, wav: Path) -> float:
    """Write the two-channel WAV for ``meta``; returns its duration in seconds."""
    if meta.caller_port is None or meta.callee_port is None:
        raise RecordingError(f"{meta.pcap}: metadata lacks the offer or answer SDP")
    channels = (array.array("h"), array.array("h"))
    streams: dict[tuple[int, int], _Stream] = {}
    t0: float | None = None
    for when, data in _read_packets(meta.pcap):
        t0 = when if t0 is None else t0
        rtp = _rtp_audio(data)
        if rtp is None:
            continue
        dport, ssrc, timestamp, pcm = rtp
        side = 0 if dport == meta.caller_port else 1 if dport == meta.callee_port else None
        if side is None:
            continue
        stream = streams.setdefault((side, ssrc), _Stream(round((when - t0) * RATE), timestamp))
        at = stream.start + ((timestamp - stream.first_ts) & 0xFFFFFFFF)
        _place(channels[side], at, pcm)
    return _write_wav(wav, channels)


def _write_wav(wav: Path, channels: tuple[array.array[int], array.array[int]]) -> float:
    frames = max(len(channels[0]), len(channels[1]))
    for channel in channels:
        channel.extend(array.array("h", [0]) * (frames - len(channel)))
    stereo = array.array("h", [0]) * (2 * frames)
    stereo[0::2] = channels[0]
    stereo[1::2] = channels[1]
    tmp = wav.with_suffix(".part")
    wav.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(stereo.tobytes())
    tmp.replace(wav)
    return frames / RATE
