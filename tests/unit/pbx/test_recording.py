"""pcap to two-channel WAV: G.711 tables, side assignment, alignment, truncated files."""

from __future__ import annotations

import itertools
import math
import struct
import wave
from pathlib import Path

import pytest
from scapy.utils import RawPcapWriter

from drivers.sip.errors import RecordingError
from drivers.sip.recording import ALAW, ULAW, RecordingMeta, parse_metadata, pcap_to_wav

CALLER_SENDS_TO, CALLEE_SENDS_TO = 40018, 40000

METADATA = """/spool/pcaps/abc-0123456789abcdef.pcap


Timestamp started ms: 1795645054121.340
SDP mode: offer
SDP before RTP packet: 1

v=0\r
m=audio 40000 RTP/AVP 0 101\r

Timestamp started ms: 1795645054121.348
SDP mode: answer
SDP before RTP packet: 1

v=0\r
m=audio 40018 RTP/AVP 0 101\r

call start time: 2026-11-25T22:17:34


cid:abc|caller:1001|callee:1002
"""


def test_g711_tables_match_the_standard_end_points() -> None:
    assert ULAW[0xFF] == 0
    assert ULAW[0x00] == -32124
    assert ULAW[0x80] == 32124
    assert ALAW[0xD5] == 8
    assert ALAW[0x55] == -8
    assert ALAW[0xAA] == 32256


def test_metadata_gives_ports_per_side_and_tags() -> None:
    meta = parse_metadata(METADATA)
    assert meta.pcap == Path("/spool/pcaps/abc-0123456789abcdef.pcap")
    assert (meta.caller_port, meta.callee_port) == (CALLER_SENDS_TO, CALLEE_SENDS_TO)
    assert meta.tags == {"cid": "abc", "caller": "1001", "callee": "1002"}


def test_metadata_without_pcap_path_is_refused() -> None:
    with pytest.raises(RecordingError):
        parse_metadata("Timestamp started ms: 1\n")


def _ulaw_encode(sample: int) -> int:
    return min(range(256), key=lambda code: abs(ULAW[code] - sample))


def _tone(freq: float, count: int) -> bytes:
    table = {}
    out = bytearray()
    for n in range(count):
        value = round(8000 * math.sin(2 * math.pi * freq * n / 8000))
        if value not in table:
            table[value] = _ulaw_encode(value)
        out.append(table[value])
    return bytes(out)


def _packet(dport: int, ssrc: int, seq: int, payload: bytes, pt: int = 0) -> bytes:
    rtp = struct.pack("!BBHII", 0x80, pt, seq, seq * 160, ssrc) + payload
    udp = struct.pack("!HHHH", 50000, dport, 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))  # fmt: skip
    return ip + udp


def _write_pcap(
    path: Path, frames: int, endianness: str = "", nano: bool = False, callee_from: int = 0
) -> None:
    caller, callee = _tone(1000, 160 * frames), _tone(500, 160 * frames)
    writer = RawPcapWriter(str(path), linktype=101, endianness=endianness, nano=nano)
    writer.write_header(None)
    unit = 1e9 if nano else 1e6
    for n in range(frames):
        when = 1_700_000_000 + n * 0.02
        chunk = slice(160 * n, 160 * (n + 1))
        writer.write_packet(_packet(CALLER_SENDS_TO, 1, n, caller[chunk]), sec=int(when),
                            usec=round(when % 1 * unit))  # fmt: skip
        if n >= callee_from:
            writer.write_packet(_packet(CALLEE_SENDS_TO, 2, n, callee[chunk]), sec=int(when),
                                usec=round(when % 1 * unit))  # fmt: skip
        writer.write_packet(_packet(CALLEE_SENDS_TO, 2, n, b"\x01\x00\x00\xa0", pt=101))
    writer.close()


def _zero_crossings(samples: list[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)


def _channels(path: Path) -> tuple[list[int], list[int]]:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        raw = wav.readframes(wav.getnframes())
    samples = list(struct.unpack(f"<{len(raw) // 2}h", raw))
    return samples[0::2], samples[1::2]


def test_caller_lands_left_and_callee_right(tmp_path: Path) -> None:
    pcap = tmp_path / "call.pcap"
    _write_pcap(pcap, 50)
    meta = RecordingMeta(pcap, CALLER_SENDS_TO, CALLEE_SENDS_TO)
    assert pcap_to_wav(meta, tmp_path / "call.wav") == pytest.approx(1.0)
    left, right = _channels(tmp_path / "call.wav")
    assert _zero_crossings(left) == pytest.approx(1000, abs=3)
    assert _zero_crossings(right) == pytest.approx(500, abs=3)


def test_a_pcap_cut_mid_record_converts_what_is_there(tmp_path: Path) -> None:
    pcap = tmp_path / "cut.pcap"
    _write_pcap(pcap, 50)
    data = pcap.read_bytes()
    pcap.write_bytes(data[: len(data) // 2 + 7])
    seconds = pcap_to_wav(RecordingMeta(pcap, CALLER_SENDS_TO, CALLEE_SENDS_TO), tmp_path / "c.wav")
    assert 0.3 < seconds < 0.7
    left, _ = _channels(tmp_path / "c.wav")
    assert _zero_crossings(left) > 250


def test_metadata_without_an_answer_cannot_be_converted(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="offer or answer"):
        pcap_to_wav(RecordingMeta(tmp_path / "x.pcap", None, 40000), tmp_path / "x.wav")


def test_an_empty_pcap_is_a_recording_error(tmp_path: Path) -> None:
    (tmp_path / "empty.pcap").write_bytes(b"")
    meta = RecordingMeta(tmp_path / "empty.pcap", CALLER_SENDS_TO, CALLEE_SENDS_TO)
    with pytest.raises(RecordingError, match="cannot read pcap"):
        pcap_to_wav(meta, tmp_path / "e.wav")


@pytest.mark.parametrize(("endianness", "nano"), [(">", False), ("<", True), (">", True)])
def test_every_pcap_byte_order_and_time_unit_gives_the_same_wav(
    tmp_path: Path, endianness: str, nano: bool
) -> None:
    _write_pcap(tmp_path / "usual.pcap", 50, callee_from=10)
    _write_pcap(tmp_path / "other.pcap", 50, endianness, nano, callee_from=10)
    pcap_to_wav(RecordingMeta(tmp_path / "usual.pcap", CALLER_SENDS_TO, CALLEE_SENDS_TO),
                tmp_path / "usual.wav")  # fmt: skip
    pcap_to_wav(RecordingMeta(tmp_path / "other.pcap", CALLER_SENDS_TO, CALLEE_SENDS_TO),
                tmp_path / "other.wav")  # fmt: skip
    assert (tmp_path / "other.wav").read_bytes() == (tmp_path / "usual.wav").read_bytes()


@pytest.mark.parametrize("content", [b"\x0a\x0d\x0d\x0a" + bytes(40), b"not a capture at all"])
def test_a_file_that_is_no_classic_pcap_is_a_recording_error(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "x.pcap").write_bytes(content)
    meta = RecordingMeta(tmp_path / "x.pcap", CALLER_SENDS_TO, CALLEE_SENDS_TO)
    with pytest.raises(RecordingError, match="not a pcap file"):
        pcap_to_wav(meta, tmp_path / "x.wav")


def test_a_missing_pcap_is_a_recording_error(tmp_path: Path) -> None:
    meta = RecordingMeta(tmp_path / "gone.pcap", CALLER_SENDS_TO, CALLEE_SENDS_TO)
    with pytest.raises(RecordingError, match="cannot read pcap"):
        pcap_to_wav(meta, tmp_path / "gone.wav")
