"""Malformed SIP, floods, scanners and password guessing: the edge keeps serving and bans
the abusing source, never the phones."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest

from drivers.sip.probe import options_request
from tests.integration.pbx.harness import (
    HERE,
    Pbx,
    Phone,
    connect_call,
    free_udp_tcp_port,
    phones,
)

AUTH_FAIL_LIMIT = 10  # pbx.auth_fail_limit's default

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
    INVITE.replace(b"From: <sip:1001@test.local>", b'From: "\xc3\x28\xff\xfe" <sip:\xe9@x>'),
    INVITE.replace(b"CSeq: 1 INVITE\r\n", b""),
    INVITE.replace(b"Call-ID: corpus-1\r\n", b""),
    INVITE.replace(b"Content-Length: 0", b"Content-Length: -5"),
    INVITE.replace(b"Content-Length: 0", b"Content-Length: 3") + b"v=0\r\no=garbage\r\n",
    INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1),
    INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: -1"),
    INVITE.replace(b"127.0.0.3:5099", b"127.0.0.3:99999"),
    INVITE.replace(b"To: <sip:1002@test.local>", b"To: <sip:1002@test.local>;tag="),
    INVITE.replace(b"To: <sip:1002@test.local>", b"To: <sip:1002@test.local>;tag=x\r\nRoute: <::>"),
    INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nno colon in this line\r\n"),
    INVITE.replace(b"INVITE sip:", b"BYE sip:").replace(b"1 INVITE", b"1 BYE"),
    INVITE[:-4] + b"\r\nX-" + b"B" * 65000 + b"\r\n\r\n",
    b"\r\n\r\n",
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
    with phones(pbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        connect_call(alice, bob)
        alice.send("hangup")
        bob.state("DISCONNECTED")
    assert pbx.daemon_pid("kamailio") == pid


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


def request(
    method: str, uri: str, source: str, port: int, to: str, from_user: str, extra: str = ""
) -> bytes:
    """An out-of-dialog request sent from ``source:port``."""
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source}:{port};branch=z9hG4bK-{secrets.token_hex(6)};rport\r\n"
        f"From: <sip:{from_user}@test.local>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{to}@test.local>\r\nCall-ID: {secrets.token_hex(8)}\r\n"
        f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContact: <sip:{from_user}@{source}:{port}>\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def answer(sock: socket.socket, datagram: bytes, port: int, timeout: float = 1.0) -> bytes | None:
    """The edge's first reply to ``datagram``, or None when it stays silent."""
    sock.settimeout(timeout)
    sock.sendto(datagram, ("127.0.0.1", port))
    try:
        return sock.recv(65535)
    except TimeoutError:
        return None


def kamailio_log(pbx: Pbx) -> str:
    return (pbx.data / "pbx" / "run" / "kamailio.log").read_text(errors="replace")


@pytest.mark.parametrize(
    ("source", "method", "target", "from_user", "extra", "why"),
    [
        ("127.0.0.5", "OPTIONS", "100", "100", "User-Agent: Friendly-Scanner\r\n",
         "scanner user agent"),
        ("127.0.0.6", "OPTIONS", "100", "100", "User-Agent: sipcli/v1.8\r\n",
         "scanner user agent"),
        ("127.0.0.7", "INVITE", "00972599123456", "100", "", "scan of international numbers"),
        ("127.0.0.8", "REGISTER", "+442071234567", "+442071234567", "",
         "scan of international numbers"),
        ("127.0.0.12", "OPTIONS", "011972599123456", "2000", "",
         "scan of international numbers"),
    ],
)  # fmt: skip
def test_scanner_sweeps_get_no_answer_and_ban_the_source(
    pbx: Pbx, source: str, method: str, target: str, from_user: str, extra: str, why: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        port = sock.getsockname()[1]
        uri = f"sip:{target}@127.0.0.1:{pbx.sip_port}"
        sweep = request(method, uri, source, port, target, from_user, extra)
        assert answer(sock, sweep, pbx.sip_port) is None
    assert not options_answered(pbx.sip_port, source)
    assert options_answered(pbx.sip_port, "127.0.0.1")
    assert f"{why} from {source}: banned" in kamailio_log(pbx)


def test_an_extension_dialling_an_international_number_is_challenged_not_banned(
    pbx: Pbx,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.13", 0))
        port = sock.getsockname()[1]
        uri = f"sip:00442071234567@127.0.0.1:{pbx.sip_port}"
        invite = request("INVITE", uri, "127.0.0.13", port, "00442071234567", "1001")
        reply = answer(sock, invite, pbx.sip_port)
    assert reply is not None
    assert reply.startswith(b"SIP/2.0 407")
    assert options_answered(pbx.sip_port, "127.0.0.13")


def digest(reply: bytes, user: str, secret: str, uri: str) -> str:
    """An Authorization header answering the challenge in ``reply`` (RFC 2617, MD5)."""
    found = re.search(rb'realm="([^"]+)".*nonce="([^"]+)"', reply)
    assert found is not None, reply
    realm, nonce = (v.decode() for v in found.groups())
    ha1 = hashlib.md5(f"{user}:{realm}:{secret}".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return (
        f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
        f'uri="{uri}", response="{response}", algorithm=MD5\r\n'
    )


def test_repeated_failed_authentication_bans_the_source(pbx: Pbx, tmp_path: Path) -> None:
    source, uri = "127.0.0.14", f"sip:127.0.0.1:{pbx.sip_port}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        port = sock.getsockname()[1]
        challenge = answer(sock, request("REGISTER", uri, source, port, "1001", "1001"),
                           pbx.sip_port)  # fmt: skip
        assert challenge is not None
        assert challenge.startswith(b"SIP/2.0 401")
        guess = digest(challenge, "1001", "not-the-password", uri)
        replies = [
            answer(sock, request("REGISTER", uri, source, port, "1001", "1001", guess),
                   pbx.sip_port)
            for _ in range(AUTH_FAIL_LIMIT)
        ]  # fmt: skip
    assert all(r is not None and r.startswith(b"SIP/2.0 401") for r in replies[:-1])
    assert replies[-1] is None
    assert not options_answered(pbx.sip_port, source)
    assert f"repeated failed authentication from {source}: banned" in kamailio_log(pbx)
    # The source is banned, not the account: the extension's own phone still registers.
    with phones(pbx, tmp_path, ("1001", 1000)) as (alice,):
        assert alice.proc.poll() is None


def test_requests_without_credentials_are_challenged_and_never_ban_the_source(pbx: Pbx) -> None:
    """A phone's first REGISTER or INVITE carries no credentials: challenged, not counted
    as a failed authentication, however many calls it makes."""
    source, uri = "127.0.0.15", f"sip:127.0.0.1:{pbx.sip_port}"
    call = f"sip:1002@127.0.0.1:{pbx.sip_port}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        port = sock.getsockname()[1]
        replies = [
            answer(sock, request(method, target, source, port, to, "1001"), pbx.sip_port)
            for method, target, to in [("REGISTER", uri, "1001"), ("INVITE", call, "1002")]
            for _ in range(AUTH_FAIL_LIMIT // 2 + 1)
        ]
    assert [r[:12] if r else None for r in replies] == (
        [b"SIP/2.0 401 "] * (AUTH_FAIL_LIMIT // 2 + 1)
        + [b"SIP/2.0 407 "] * (AUTH_FAIL_LIMIT // 2 + 1)
    )
    assert options_answered(pbx.sip_port, source)
    assert f"from {source}: banned" not in kamailio_log(pbx)


def test_invite_flood_is_banned_while_a_phone_registers_and_calls(pbx: Pbx, tmp_path: Path) -> None:
    flood = subprocess.Popen(
        ["sipp", "-sf", str(HERE / "sipp" / "flood_invite.xml"), "-i", "127.0.0.4",
         "-p", str(free_udp_tcp_port()), "-cp", str(free_udp_tcp_port()), "-nostdin",
         "-r", "400", "-m", "1600", "-timeout", "20s", f"127.0.0.1:{pbx.sip_port}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with phones(pbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
            assert flood.poll() is None, "the flood ended before the call; raise -m"
            connect_call(alice, bob)
            alice.send("hangup")
            bob.state("DISCONNECTED")
        flood.wait(timeout=30)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait(timeout=5)
    assert not options_answered(pbx.sip_port, "127.0.0.4")
    assert "flood from 127.0.0.4: banned" in kamailio_log(pbx)


def test_forged_calls_from_another_site_count_as_failed_authentication(pbx: Pbx) -> None:
    source, uri = "127.0.0.15", f"sip:00442071234567@127.0.0.1:{pbx.sip_port}"
    forged = "X-Callmesh-Auth: v1;site=hq;ts=1;sig=" + "0" * 64 + "\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        port = sock.getsockname()[1]
        replies = [
            answer(sock, request("INVITE", uri, source, port, "00442071234567", "1001", forged),
                   pbx.sip_port)
            for _ in range(AUTH_FAIL_LIMIT)
        ]  # fmt: skip
    assert all(r is not None and r.startswith(b"SIP/2.0 403") for r in replies[:-1])
    assert replies[-1] is None
    assert not options_answered(pbx.sip_port, source)
    assert f"repeated failed authentication from {source}: banned" in kamailio_log(pbx)
