"""SIP OPTIONS keep-alive probe: is a SIP server answering (on loopback or a peer site)?"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any


def options_request(
    host: str,
    port: int,
    local_port: int,
    local_host: str = "127.0.0.1",
    user: str = "",
    headers: str = "",
    call_id: str = "",
) -> bytes:
    """An out-of-dialog OPTIONS (RFC 3261 section 11): to the server itself, or with
    ``user`` to one of its users; ``headers`` (CRLF-terminated lines) are appended."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    target = f"{user}@{host}:{port}" if user else f"{host}:{port}"
    return (
        f"OPTIONS sip:{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local_host}:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 5\r\n"
        f"From: <sip:probe@{local_host}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{target}>\r\n"
        f"Call-ID: {call_id or secrets.token_hex(12)}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"{headers}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def status_code(answer: bytes) -> int | None:
    """The status code of a SIP response's first line (None: not a response)."""
    parts = answer.split(b" ", 2)
    if len(parts) < 2 or parts[0] != b"SIP/2.0" or not parts[1].isdigit() or len(parts[1]) != 3:
        return None
    return int(parts[1])


class _Probe(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.answer.done():
            self.answer.set_result(data)


async def sip_options_ok(
    host: str, port: int, wait_s: float = 0.5, local_host: str = "127.0.0.1"
) -> bool:
    """Whether ``host:port`` answers an OPTIONS with a 2xx within ``wait_s`` seconds.

    An unreachable network (link down, no route) is a ``False``, not an error.
    """
    code = await sip_options_status(host, port, wait_s, local_host)
    return code is not None and 200 <= code < 300


async def sip_options_status(
    host: str,
    port: int,
    wait_s: float = 0.5,
    local_host: str = "127.0.0.1",
    user: str = "",
    headers: str | Callable[[str], str] = "",
) -> int | None:
    """The status code ``host:port`` answers an OPTIONS with (to ``user`` when given)
    within ``wait_s`` seconds; None for no answer, an unreachable network or garbage.
    ``headers`` may be a function of the request's Call-ID (a signature over it)."""
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            _Probe, local_addr=(local_host, 0), remote_addr=(host, port)
        )
    except OSError:
        return None
    try:
        local_port = transport.get_extra_info("sockname")[1]
        call_id = secrets.token_hex(12)
        extra = headers(call_id) if callable(headers) else headers
        transport.sendto(options_request(host, port, local_port, local_host, user, extra, call_id))
        with contextlib.suppress(TimeoutError):
            return status_code(await asyncio.wait_for(protocol.answer, wait_s))
        return None
    finally:
        transport.close()
