"""A CurveZMQ handshake with HQ's ingest endpoint, and nothing more.

It proves what the sync link needs: the endpoint is reachable, HQ holds the server key the
site trusts and accepts the site's key (its ZAP handler refuses unknown keys). No message is
sent, so HQ's session with the running sync client is left alone.
"""

from __future__ import annotations

import time

import zmq
import zmq.asyncio
from zmq.utils.monitor import recv_monitor_message

ACCEPTED = zmq.EVENT_HANDSHAKE_SUCCEEDED
REFUSED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
)


class HandshakeFailed(Exception):
    """HQ refused the keys (``refused``) or did not complete a handshake in time (``timeout``)."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


async def curve_handshake(
    endpoint: str, public: bytes, secret: bytes, server_key: bytes, wait_s: float = 5.0
) -> float:
    """Seconds from connect to a completed CurveZMQ handshake with ``endpoint``."""
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public, secret, server_key
    monitor = sock.get_monitor_socket()
    started = time.monotonic()
    try:
        sock.connect(endpoint)
        deadline = started + wait_s
        while (left := deadline - time.monotonic()) > 0:
            if not await monitor.poll(int(left * 1000)):
                break
            event = (await recv_monitor_message(monitor))["event"]
            if event == ACCEPTED:
                return time.monotonic() - started
            if event in REFUSED:
                raise HandshakeFailed("refused", f"{endpoint} refused this site's key")
        raise HandshakeFailed("timeout", f"no handshake with {endpoint} within {wait_s:.0f} s")
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        ctx.term()
