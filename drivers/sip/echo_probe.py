"""A loopback call: INVITE the echo feature code through the SIP edge, send a tone as PCMU
RTP and count the audible packets that come back (RFC 3261 UAC, RFC 3550, ITU-T G.711).

Theory of operation: one UDP socket for SIP, one for RTP, both on loopback. The INVITE is
answered with a digest challenge (401/407), acknowledged and sent again with credentials.
On 200 OK the call is acknowledged along its route set, ``TONE_S`` of a 1 kHz tone is sent
while the echo is read, then the call is hung up with BYE. Every wait is bounded by the
caller's ``wait_s``; nothing is retransmitted (loopback does not lose datagrams).
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import struct
import time
from dataclasses import dataclass
from typing import Any

from drivers.sip.register_probe import Account, authorization, challenge, header, status_code

TONE_S = 1.5
FRAME_S = 0.02
SAMPLES = 160
AUDIBLE_SHARE = 0.5


@dataclass(frozen=True)
class EchoResult:
    """How the call went: final status, RTP packets sent, echoed back, and audible among them."""

    code: int
    sent: int = 0
    received: int = 0
    audible: int = 0


def ulaw(sample: int) -> int:
    """One signed 16-bit sample as a G.711 mu-law byte."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


TONE = bytes(ulaw(int(8000 * math.sin(2 * math.pi * 1000 * n / 8000))) for n in range(SAMPLES))


def audible(payload: bytes) -> bool:
    """Whether a PCMU frame carries sound: most bytes above the two lowest segments."""
    loud = sum(1 for b in payload if (~b & 0x7F) >= 0x20)
    return bool(payload) and loud >= len(payload) * AUDIBLE_SHARE


def rtp_packet(seq: int, ssrc: int, payload: bytes) -> bytes:
    """RTP version 2, payload type 0 (PCMU), 20 ms per packet."""
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * SAMPLES & 0xFFFFFFFF, ssrc) + payload


def sdp(rtp_port: int) -> bytes:
    """An offer of PCMU only, send and receive, on loopback."""
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=callmesh-doctor\r\nc=IN IP4 127.0.0.1\r\n"
        f"t=0 0\r\nm=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ).encode()


def media_address(message: bytes) -> tuple[str, int] | None:
    """The ``c=`` address and ``m=audio`` port of the answer's SDP."""
    body = message.partition(b"\r\n\r\n")[2].decode(errors="replace")
    host = re.search(r"^c=IN IP4 (\S+)", body, re.M)
    port = re.search(r"^m=audio (\d+) ", body, re.M)
    return (host.group(1), int(port.group(1))) if host and port else None


def all_values(message: bytes, name: str) -> list[str]:
    """Every value of header ``name``, comma-separated lists split (for Record-Route)."""
    out = []
    for line in message.partition(b"\r\n\r\n")[0].decode(errors="replace").split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name.lower():
            out += [v.strip() for v in re.split(r",(?=\s*<)", value)]
    return out


@dataclass
class Dialog:
    """What the UAC keeps of one call: identifiers, CSeq, the remote tag and target."""

    account: Account
    local: tuple[str, int]
    target: str
    call_id: str
    tag: str
    cseq: int = 1
    remote_tag: str = ""
    remote_target: str = ""
    route: tuple[str, ...] = ()

    def request(
        self, method: str, branch: str, extra: tuple[str, ...] = (), body: bytes = b""
    ) -> bytes:
        """A request in this dialog (``branch`` reused for the ACK of a non-2xx answer)."""
        host, port = self.local
        domain, cseq = self.account.domain, self.cseq
        to_tag = f";tag={self.remote_tag}" if self.remote_tag else ""
        uri = self.remote_target or self.target
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.account.user}@{domain}>;tag={self.tag}",
            f"To: <{self.target}>{to_tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{self.account.user}@{host}:{port}>",
            "User-Agent: callmesh-doctor",
            *(f"Route: {r}" for r in self.route),
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        return "\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""]).encode() + body


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=512)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.queue.full():
            self.queue.put_nowait(data)


async def echo_call(account: Account, code: str, wait_s: float = 4.0) -> EchoResult:
    """Call ``code`` (the echo feature) as ``account`` and measure the echoed audio."""
    loop = asyncio.get_running_loop()
    sip_t, sip = await loop.create_datagram_endpoint(
        _Datagrams, local_addr=("127.0.0.1", 0), remote_addr=(account.host, account.port)
    )
    rtp_t, rtp = await loop.create_datagram_endpoint(_Datagrams, local_addr=("127.0.0.1", 0))
    try:
        local = sip_t.get_extra_info("sockname")[:2]
        dialog = Dialog(
            account,
            local,
            f"sip:{code}@{account.domain}",
            secrets.token_hex(12),
            secrets.token_hex(4),
        )
        offer = sdp(rtp_t.get_extra_info("sockname")[1])
        answer = await _invite(dialog, sip_t, sip.queue, offer, wait_s)
        if status_code(answer) != 200:
            return EchoResult(status_code(answer))
        remote = media_address(answer)
        if remote is None:
            return EchoResult(488)
        sent, received, heard = await _talk(rtp_t, rtp.queue, remote)
        dialog.cseq += 1
        sip_t.sendto(dialog.request("BYE", _branch()))
        await _final(sip.queue, wait_s, "BYE")
        return EchoResult(200, sent, received, heard)
    finally:
        sip_t.close()
        rtp_t.close()


async def _invite(
    dialog: Dialog,
    sip_t: asyncio.DatagramTransport,
    queue: asyncio.Queue[bytes],
    offer: bytes,
    wait_s: float,
) -> bytes:
    """INVITE, answering one digest challenge; the final answer (2xx acknowledged)."""
    auth: tuple[str, ...] = ()
    while True:
        branch = _branch()
        sip_t.sendto(dialog.request("INVITE", branch, auth, offer))
        answer = await _final(queue, wait_s, "INVITE")
        code = status_code(answer)
        if code in (401, 407):
            dialog.remote_tag = _tag(answer)
            sip_t.sendto(dialog.request("ACK", branch))
            dialog.remote_tag = ""
        if code not in (401, 407) or auth:
            break
        name = "Proxy-Authorization" if code == 407 else "Authorization"
        value = authorization(dialog.account, "INVITE", dialog.target, challenge(answer))
        auth, dialog.cseq = (f"{name}: {value}",), dialog.cseq + 1
    if code == 200:
        dialog.remote_tag = _tag(answer)
        dialog.route = tuple(reversed(all_values(answer, "Record-Route")))
        contact = header(answer, "Contact") or ""
        dialog.remote_target = contact.partition("<")[2].partition(">")[0] or dialog.target
        sip_t.sendto(dialog.request("ACK", _branch()))
    return answer


async def _talk(
    rtp_t: asyncio.DatagramTransport, queue: asyncio.Queue[bytes], remote: tuple[str, int]
) -> tuple[int, int, int]:
    """Send the tone for ``TONE_S`` and collect what comes back until shortly after."""
    ssrc, sent, received, heard = secrets.randbits(32), 0, 0, 0
    start = time.monotonic()
    end = start + TONE_S
    while (now := time.monotonic()) < end + 0.5:
        if now < end and sent <= (now - start) / FRAME_S:
            rtp_t.sendto(rtp_packet(sent, ssrc, TONE), remote)
            sent += 1
        try:
            packet = await asyncio.wait_for(queue.get(), FRAME_S / 2)
        except TimeoutError:
            continue
        received += 1
        heard += audible(packet[12:])
    return sent, received, heard


async def _final(queue: asyncio.Queue[bytes], wait_s: float, method: str) -> bytes:
    """The first final response to ``method`` within ``wait_s``; empty bytes when none came."""
    try:
        async with asyncio.timeout(wait_s):
            while True:
                message = await queue.get()
                cseq = header(message, "CSeq") or ""
                if status_code(message) >= 200 and cseq.endswith(method):
                    return message
    except TimeoutError:
        return b""


def _branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def _tag(message: bytes) -> str:
    match = re.search(r";tag=([^;>\s]+)", header(message, "To") or "")
    return match.group(1) if match else ""
