"""SIP OPTIONS keep-alive probe: is a SIP server answering (on loopback or a peer site)?"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any


def options_request(host: str, port: int, local_port: int, local_host: str = "127.0.0.1") -> bytes:
    """An out-of-dialog OPTIONS without a user part (RFC 3261 section 11)."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    call_id = secrets.token_hex(12)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local_host}:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 5\r\n"
        f"From: <sip:probe@{local_host}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


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
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            _Probe, local_addr=(local_host, 0), remote_addr=(host, port)
        )
    except OSError:
        return False
    try:
        local_port = transport.get_extra_info("sockname")[1]
        transport.sendto(options_request(host, port, local_port, local_host))
        with contextlib.suppress(TimeoutError):
            answer = await asyncio.wait_for(protocol.answer, wait_s)
            return answer.startswith(b"SIP/2.0 2")
        return False
    finally:
        transport.close()
