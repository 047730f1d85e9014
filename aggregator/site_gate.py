"""The ingest transport's guard: a site past its budget loses its connections and its key.

Why at the transport: libzmq's I/O thread decrypts every CurveZMQ frame a peer sends
before HQ sees it, so dropping a flooding site's messages after ``recv`` still costs a
core for the decryption. Only closing the TCP connection stops that, and refusing the
site's key in ZAP keeps it from coming straight back.

Theory of operation: every message libzmq hands over carries the descriptor of the
connection it came in on (``ZMQ_SRCFD``). The gate remembers, per descriptor, the site
that last sent on it and its peer address (``getpeername``) then. A site is
banned for ``ban_s`` seconds when it spends its refusal budget (aggregator/refusals.py)
or sends more bytes than its byte budget (a token bucket of ``byte_burst`` bytes refilled
at ``byte_rate`` a second). A ban shuts down (``shutdown(2)``) every connection recorded
for the site whose peer address is still the recorded one — a descriptor that libzmq
closed and reused for another peer is left alone — and ZAP refuses the site's key until
the ban ends. Messages still queued from a banned site are dropped unread.

libzmq notices the shut-down connection as a disconnect and closes the descriptor
itself; nothing here closes a descriptor libzmq owns. All methods run on the event loop
(the receive loop and the ZAP handler), so the gate needs no lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import Counter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Connection:
    """What the gate knows of one connection: its site and its peer address."""

    site_id: str
    peer: object


class SiteGate:
    """Per-site byte budget and bans, enforced by cutting connections and refusing keys."""

    def __init__(
        self,
        ban_s: float,
        byte_rate: float,
        byte_burst: float,
        cuts: Counter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ban_s = ban_s
        self._rate, self._burst = byte_rate, byte_burst
        self._cuts = cuts
        self._clock = clock
        self._connections: dict[int, _Connection] = {}
        self._bytes: dict[str, tuple[float, float]] = {}
        self._banned: dict[str, float] = {}

    def banned(self, site_id: str) -> bool:
        """True while ``site_id`` is banned (ZAP refuses it; its queued messages are dropped)."""
        until = self._banned.get(site_id)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._banned[site_id]
        return False

    def admit(self, site_id: str, fd: int, size: int) -> bool:
        """Account one message of ``size`` bytes read from ``fd``; False to drop it unread."""
        if self.banned(site_id):
            return False
        # Looked up on every message (a few µs): libzmq hands a descriptor number to the
        # next connection, often of the same site, as soon as the last one closes.
        self._connections[fd] = _Connection(site_id, _peer(fd))
        now = self._clock()
        tokens, then = self._bytes.get(site_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate) - size
        self._bytes[site_id] = (tokens, now)
        if tokens < 0:
            self.ban(site_id, "byte-budget")
            return False
        return True

    def ban(self, site_id: str, reason: str) -> None:
        """Ban ``site_id`` for ``ban_s`` and shut down its recorded connections."""
        self._banned[site_id] = self._clock() + self._ban_s
        self._bytes.pop(site_id, None)
        cut = self._cut_site(site_id, reason)
        log.warning(
            "site banned; its connections cut",
            extra={
                "error_id": "site-banned",
                "site": site_id,
                "reason": reason,
                "connections": cut,
                "ban_s": self._ban_s,
            },
        )

    def cut(self, site_id: str, reason: str) -> None:
        """Shut down ``site_id``'s recorded connections without a ban (its key went away)."""
        cut = self._cut_site(site_id, reason)
        log.warning(
            "site connections cut",
            extra={"error_id": reason, "site": site_id, "connections": cut},
        )

    def _cut_site(self, site_id: str, reason: str) -> int:
        mine = [fd for fd, c in self._connections.items() if c.site_id == site_id]
        cut = sum(self._cut(fd) for fd in mine)
        self._cuts.labels(site=site_id, reason=reason).inc()
        return cut

    def _cut(self, fd: int) -> bool:
        """Shut down ``fd`` if it still reaches the recorded peer; forget it either way."""
        known = self._connections.pop(fd)
        try:
            with _borrowed(fd) as sock:
                if sock.getpeername() != known.peer:
                    return False
                sock.shutdown(socket.SHUT_RDWR)
        except OSError as err:
            log.info("connection already gone", extra={"fd": fd, "error": str(err)})
            return False
        return True


@contextlib.contextmanager
def _borrowed(fd: int) -> Iterator[socket.socket]:
    """A socket object on a duplicate of libzmq's descriptor; closing it leaves libzmq's open."""
    own = os.dup(fd)
    try:
        sock = socket.socket(fileno=own)
    except OSError:
        os.close(own)
        raise
    with sock:
        yield sock


def _peer(fd: int) -> object:
    """The peer address of ``fd``, or None when it is not a connected socket."""
    try:
        with _borrowed(fd) as sock:
            return sock.getpeername()
    except OSError:
        return None
