"""How fast rtpengine answers its control protocol while a benchmark loads it.

A thread sends an ng ``ping`` every ``interval_s`` from its own UDP socket and times the
``pong``; a ping unanswered within ``timeout_s`` counts as lost. Kamailio's rtpengine
module gives up on a request after ``rtpengine_tout_ms`` (times ``rtpengine_retr``), so
the round trips above that are the ones that fail calls.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field

from drivers.sip.errors import NgError
from drivers.sip.ng import decode_reply, encode_command


@dataclass
class NgRoundTrips:
    """Round trips (ms) of the pings answered, and how many were not."""

    answered_ms: list[float] = field(default_factory=list)
    lost: int = 0

    def percentile(self, share: float) -> float:
        """The round trip below which ``share`` of the answered pings fell (0 with none)."""
        ordered = sorted(self.answered_ms)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def over(self, limit_ms: float) -> int:
        """Pings answered later than ``limit_ms`` plus the lost ones."""
        return sum(1 for ms in self.answered_ms if ms > limit_ms) + self.lost

    def text(self) -> str:
        """One line: count, median, p99, max, and the slow ones."""
        top = max(self.answered_ms, default=0.0)
        return (f"ng ping: {len(self.answered_ms)} answered, {self.lost} lost; median "
                f"{self.percentile(0.5):.1f} ms, p99 {self.percentile(0.99):.1f} ms, max "
                f"{top:.0f} ms; over 100 ms {self.over(100)}, over 500 ms {self.over(500)}, "
                f"over 1 s {self.over(1000)}")  # fmt: skip


class NgProbe:
    """Pings rtpengine's ng port from a thread until stopped; ``trips`` holds the result."""

    def __init__(self, port: int, interval_s: float = 0.1, timeout_s: float = 3.0) -> None:
        self.trips = NgRoundTrips()
        self._address = ("127.0.0.1", port)
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ng-probe", daemon=True)

    def __enter__(self) -> NgProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self._timeout_s + 1)

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(self._address)
            while not self._stop.is_set():
                started = time.monotonic()
                answered = self._ping(sock)
                if answered is None:
                    self.trips.lost += 1
                else:
                    self.trips.answered_ms.append(answered * 1000)
                self._stop.wait(max(0.0, self._interval_s - (time.monotonic() - started)))

    def _ping(self, sock: socket.socket) -> float | None:
        """Seconds until the pong carrying this ping's cookie, None if none came in time."""
        cookie = secrets.token_hex(8)
        started = time.monotonic()
        sock.send(encode_command(cookie, "ping"))
        while (left := self._timeout_s - (time.monotonic() - started)) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65535)
            except TimeoutError:
                return None
            except OSError:  # rtpengine not listening (yet): ICMP port unreachable
                return None
            with contextlib.suppress(NgError):
                if decode_reply(data)[0] == cookie:
                    return time.monotonic() - started
        return None
