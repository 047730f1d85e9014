"""A REGISTER with digest authentication (RFC 3261 section 10, RFC 2617): does the SIP edge
accept this extension's credentials?

The messages are built and parsed by plain functions; ``register`` is the thin UDP adapter.
The binding it creates expires after ``expires`` seconds (a short one: it is a probe).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

AUTH_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]+))')


@dataclass(frozen=True)
class Account:
    """Who registers, where: extension, password, SIP domain and the edge's address."""

    user: str
    password: str
    domain: str
    host: str
    port: int


def status_code(message: bytes) -> int:
    """The status code of a SIP response; 0 for anything else."""
    match = re.match(rb"SIP/2\.0 (\d{3}) ", message)
    return int(match.group(1)) if match else 0


def header(message: bytes, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive)."""
    for line in message.decode(errors="replace").split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name.lower():
            return value.strip()
    return None


def challenge(message: bytes) -> dict[str, str]:
    """The digest parameters of a 401 ``WWW-Authenticate`` (or 407 ``Proxy-Authenticate``)."""
    value = header(message, "WWW-Authenticate") or header(message, "Proxy-Authenticate") or ""
    return {m[0].lower(): m[1] or m[2] for m in AUTH_PARAM.findall(value)}


def authorization(account: Account, method: str, uri: str, params: dict[str, str]) -> str:
    """The ``Authorization`` value answering ``params`` (MD5, with qop=auth when offered)."""
    realm, nonce = params.get("realm", account.domain), params.get("nonce", "")
    ha1 = _md5(f"{account.user}:{realm}:{account.password}")
    ha2 = _md5(f"{method}:{uri}")
    value = f'Digest username="{account.user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    if "auth" in params.get("qop", "").split(","):
        cnonce = secrets.token_hex(8)
        response = _md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        value += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    if "opaque" in params:
        value += f', opaque="{params["opaque"]}"'
    return f'{value}, response="{response}", algorithm=MD5'


def register_request(
    account: Account, local: tuple[str, int], call_id: str, cseq: int, expires: int, auth: str
) -> bytes:
    """A REGISTER binding ``account`` to ``local``, with ``auth`` when answering a challenge."""
    host, port = local
    lines = [
        f"REGISTER sip:{account.domain} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{account.user}@{account.domain}>;tag={call_id[:8]}",
        f"To: <sip:{account.user}@{account.domain}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{account.user}@{host}:{port}>",
        f"Expires: {expires}",
        "User-Agent: callmesh-doctor",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.queue.full():
            self.queue.put_nowait(data)


async def register(account: Account, wait_s: float = 3.0, expires: int = 30) -> int:
    """The final status code of REGISTER (after answering one digest challenge); 0 on silence."""
    loop = asyncio.get_running_loop()
    transport, replies = await loop.create_datagram_endpoint(
        _Replies, local_addr=("127.0.0.1", 0), remote_addr=(account.host, account.port)
    )
    try:
        local = transport.get_extra_info("sockname")[:2]
        call_id = secrets.token_hex(12)
        auth = ""
        for cseq in (1, 2):
            transport.sendto(register_request(account, local, call_id, cseq, expires, auth))
            code, answer = await _final(replies.queue, wait_s)
            if code not in (401, 407) or auth:
                return code
            auth = authorization(account, "REGISTER", f"sip:{account.domain}", challenge(answer))
        return code
    finally:
        transport.close()


async def _final(queue: asyncio.Queue[bytes], wait_s: float) -> tuple[int, bytes]:
    """The first final (>= 200) response within ``wait_s``; code 0 when none came."""
    try:
        async with asyncio.timeout(wait_s):
            while True:
                message = await queue.get()
                if status_code(message) >= 200:
                    return status_code(message), message
    except TimeoutError:
        return 0, b""
