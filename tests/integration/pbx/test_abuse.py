"""Malformed SIP and floods: the edge keeps serving and bans the flooding source."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from drivers.sip.probe import options_request
from tests.integration.pbx.harness import Pbx, Phone

INVITE = (
    b"INVITE sip:1002@test.local SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.3:5099;branch=z9hG4bK-abc\r\n"
    b"From: <sip:1001@test.local>;tag=1\r\nTo: <sip:1002@test.local>\r\n"
    b"Call-ID: corpus-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)
CORPUS = [
    INVITE[:40],
    INVITE[: len(INVITE) // 2],
    INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: banana"),
    INVITE.replace(b"Content-Length: 0", b"Content-Length: 9999"),
    INVITE.replace(b"Via: SIP/2.0/UDP 127.0.0.3:5099;branch=z9hG4bK-abc\r\n", b""),
    INVITE.replace(b"From: <sip:1001@test.local>;tag=1", b"From: <<<::>>>"),
    INVITE.replace(b"INVITE sip:", b"INVITE \x00\xff\xfe:"),
    INVITE + b"X-Pad: " + b"A" * 60000 + b"\r\n",
    b"\x00" * 512,
    bytes(range(256)) * 4,
    b"SIP/2.0 200 OK\r\n\r\n",
    b"REGISTER sip:test.local SIP/2.0\r\n" + b"Via: x\r\n" * 500 + b"\r\n",
]


def options_answered(port: int, source: str, timeout: float = 1.0) -> bool:
    """Whether Kamailio answers an OPTIONS sent from ``source``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        request = options_request("127.0.0.1", port, sock.getsockname()[1], source)
        sock.sendto(request, ("127.0.0.1", port))
        try:
            return sock.recv(65535).startswith(b"SIP/2.0 200")
        except TimeoutError:
            return False


def test_malformed_sip_corpus_leaves_the_edge_serving(pbx: Pbx, tmp_path: Path) -> None:
    pid = pbx.daemon_pid("kamailio")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.3", 0))
        for datagram in CORPUS:
            sock.sendto(datagram, ("127.0.0.1", pbx.sip_port))
    time.sleep(0.3)
    assert options_answered(pbx.sip_port, "127.0.0.1")
    assert pbx.daemon_pid("kamailio") == pid
    phone = Phone(pbx, "1001", 600, tmp_path)
    try:
        assert phone.registered() == 200
    finally:
        phone.close()


def test_register_flood_bans_the_source_and_others_keep_registering(
    pbx: Pbx, tmp_path: Path
) -> None:
    flood = (
        b"REGISTER sip:test.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-%d\r\n"
        b"From: <sip:1001@test.local>;tag=f\r\nTo: <sip:1001@test.local>\r\n"
        b"Call-ID: flood-%d\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
        b"Contact: <sip:x@127.0.0.2>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.2", 0))
        for n in range(3000):
            sock.sendto(flood % (n, n), ("127.0.0.1", pbx.sip_port))
    assert not options_answered(pbx.sip_port, "127.0.0.2")
    assert options_answered(pbx.sip_port, "127.0.0.1")
    phone = Phone(pbx, "1002", 600, tmp_path)
    try:
        assert phone.registered() == 200
    finally:
        phone.close()
