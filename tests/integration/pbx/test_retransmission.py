"""An INVITE retransmitted while the edge still works on the original (route query, media
offer), or after the edge refused it (even once tm forgot the transaction), is absorbed:
it never sets the call up a second time nor gets a second refusal and CDR. At a cap of
one call, a copy handled as a new call would be refused with 503 while the original is
answered."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pbx.harness import (
    HERE,
    Pbx,
    free_udp_tcp_port,
    no_daemons_left,
    password,
    require_debs,
    sipp_media_port,
    wait_for,
)

COPIES = 6
TM_WAIT_S = 5  # tm's wt_timer: how long a transaction is kept after its final answer
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
      "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"  # fmt: skip


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    require_debs()
    root = tmp_path_factory.mktemp("pbx")
    instance = Pbx(root, max_calls=1, pike_exempt=["127.0.0.1"], kamailio_children=4)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


@pytest.fixture(scope="module")
def callee(single: Pbx, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A sipp UAS registered as 1002, answering every call."""
    uas = _callee(single, tmp_path_factory.mktemp("callee"))
    yield
    uas.kill()
    uas.wait(timeout=10)


def _callee(pbx: Pbx, root: Path) -> subprocess.Popen[bytes]:
    port = free_udp_tcp_port()
    uas = subprocess.Popen(
        ["sipp", "-sf", str(HERE / "sipp" / "capacity_uas.xml"), "-i", "127.0.0.1",
         "-p", str(port), "-mp", str(sipp_media_port()), "-cp", str(free_udp_tcp_port()),
         "-nostdin"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    register = subprocess.run(
        ["sipp", f"127.0.0.1:{pbx.sip_port}", "-i", "127.0.0.1", "-nostdin",
         "-p", str(free_udp_tcp_port()), "-sf", str(HERE / "sipp" / "capacity_register.xml"),
         "-m", "1", "-au", "1002", "-ap", password("1002"),
         "-key", "contact", f"127.0.0.1:{port}", "-timeout", "10s"],
        cwd=root, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert register.returncode == 0, register.stdout[-2000:]
    return uas


class Caller:
    """1001 on a raw UDP socket: one INVITE, sent as often as asked, then ACK and BYE."""

    def __init__(self, pbx: Pbx) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.target = ("127.0.0.1", pbx.sip_port)
        self.call_id = secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        self.uri = "sip:1002@test.local"

    def request(self, method: str, cseq: int, extra: str = "", body: str = "") -> bytes:
        kind = "Content-Type: application/sdp\r\n" if body else ""
        branch = f"z9hG4bK-{method}{cseq}-{self.call_id}"
        return (
            f"{method} {self.uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\r\n"
            f"From: <sip:1001@test.local>;tag={self.tag}\r\nTo: <sip:1002@test.local>\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:1001@127.0.0.1:{self.port}>\r\n{extra}{kind}"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()

    def replies(self, seconds: float) -> list[bytes]:
        """Every datagram received for ``seconds``."""
        found, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                found.append(self.sock.recv(65535))
            except TimeoutError:
                break
        return found

    def authorization(self, challenge: bytes) -> str:
        """A Proxy-Authorization header answering ``challenge`` (RFC 2617, MD5, no qop)."""
        found = re.search(rb'realm="([^"]+)".*nonce="([^"]+)"', challenge)
        assert found is not None, challenge
        realm, nonce = (v.decode() for v in found.groups())
        ha1 = hashlib.md5(f"1001:{realm}:{password('1001')}".encode()).hexdigest()
        ha2 = hashlib.md5(f"INVITE:{self.uri}".encode()).hexdigest()
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        return (
            f'Proxy-Authorization: Digest username="1001", realm="{realm}", nonce="{nonce}", '
            f'uri="{self.uri}", response="{response}", algorithm=MD5\r\n'
        )

    def invite(self) -> bytes:
        """The authenticated INVITE (CSeq 2), after the edge's challenge to a first one."""
        self.sock.sendto(self.request("INVITE", 1, body=SDP), self.target)
        [challenge] = [r for r in self.replies(3) if _status(r) == 407][:1]
        return self.request("INVITE", 2, self.authorization(challenge), SDP)

    def in_dialog(self, method: str, cseq: int, answer: bytes) -> bytes:
        """ACK or BYE within the dialog ``answer`` (the 200 OK) set up."""
        text = answer.decode(errors="replace")
        to = re.search(r"^To: (.*)$", text, re.MULTILINE | re.IGNORECASE)
        routes = re.findall(r"^Record-Route: (.*)$", text, re.MULTILINE | re.IGNORECASE)
        contact = re.search(r"^Contact: <([^>]+)>", text, re.MULTILINE | re.IGNORECASE)
        assert to, text
        assert contact, text
        request = self.request(method, cseq, "".join(f"Route: {r.strip()}\r\n" for r in routes))
        request = request.replace(b"To: <sip:1002@test.local>", b"To: " + to[1].strip().encode())
        return request.replace(self.uri.encode(), contact[1].encode(), 1)


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"SIP/2.0 ") else 0


def test_invite_copies_arriving_at_once_set_up_one_call_never_refused_beside_it(
    single: Pbx, callee: None
) -> None:
    caller = Caller(single)
    try:
        invite = caller.invite()
        for _ in range(COPIES):
            caller.sock.sendto(invite, caller.target)
        replies = caller.replies(5)
        codes = sorted({_status(r) for r in replies})
        assert 503 not in codes, codes
        answer = next(r for r in replies if _status(r) == 200)
        caller.sock.sendto(caller.in_dialog("ACK", 2, answer), caller.target)
        caller.sock.sendto(caller.in_dialog("BYE", 3, answer), caller.target)
        assert 200 in {_status(r) for r in caller.replies(3) if b"CSeq: 3 BYE" in r}
        wait_for(lambda: any(c["call_id"] == caller.call_id for c in single.cdrs()), 30,
                 single.output)  # fmt: skip
    finally:
        caller.sock.close()
    [cdr] = [c for c in single.cdrs() if c["call_id"] == caller.call_id]
    assert cdr["disposition"] == "answered"
    assert single.api("GET", "/calls")[1] == {"calls": []}


def test_an_invite_resent_after_its_503_gets_the_same_503_then_nothing_and_one_cdr(
    single: Pbx, callee: None
) -> None:
    holder, refused = Caller(single), Caller(single)
    try:
        holder.sock.sendto(holder.invite(), holder.target)
        answer = next(r for r in holder.replies(5) if _status(r) == 200)
        holder.sock.sendto(holder.in_dialog("ACK", 2, answer), holder.target)
        invite = refused.invite()
        refusals = []
        for _ in range(2):  # the second as if the first 503 had been lost
            refused.sock.sendto(invite, refused.target)
            refusals += [r for r in refused.replies(2) if _status(r) >= 200]
        assert {_status(r) for r in refusals} == {503}
        assert all(b"Retry-After:" in r for r in refusals)
        refused.sock.sendto(_ack_for(invite, refusals[0]), refused.target)
        # Resent once more after tm forgot the transaction: dropped, not a new call.
        time.sleep(TM_WAIT_S + 1)
        refused.sock.sendto(invite, refused.target)
        assert [_status(r) for r in refused.replies(2)] == []
        holder.sock.sendto(holder.in_dialog("BYE", 3, answer), holder.target)
        wait_for(lambda: {holder.call_id, refused.call_id} <= {c["call_id"] for c in single.cdrs()},
                 30, single.output)  # fmt: skip
    finally:
        holder.sock.close()
        refused.sock.close()
    cdrs = [c for c in single.cdrs() if c["call_id"] == refused.call_id]
    assert len(cdrs) == 1, cdrs
    assert cdrs[0]["hangup_cause"] == {"sip_code": 503, "reason": "over-capacity"}


def _ack_for(invite: bytes, refusal: bytes) -> bytes:
    """The hop-by-hop ACK of a negative answer to ``invite`` (same branch, the answer's To)."""
    head = invite.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    to = next(line for line in refusal.split(b"\r\n") if line.lower().startswith(b"to:"))
    keep = [line for line in head[1:] if not line.lower().startswith(
        (b"to:", b"cseq:", b"content-", b"proxy-authorization:", b"contact:"))]  # fmt: skip
    first = head[0].replace(b"INVITE", b"ACK", 1)
    return b"\r\n".join([first, *keep, to, b"CSeq: 2 ACK", b"Content-Length: 0", b"", b""])
