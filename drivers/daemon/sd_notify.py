"""systemd's readiness and watchdog protocol (sd_notify(3)), without libsystemd.

Under ``Type=notify`` systemd hands the service a datagram socket in ``NOTIFY_SOCKET``
(a path, or an abstract name written with a leading ``@``) and, with ``WatchdogSec=``,
the ping period in ``WATCHDOG_USEC``. The service sends ``READY=1`` once it serves,
``WATCHDOG=1`` at least every half period from the loop that owns its state (a stuck
loop then stops the pings and systemd restarts the service), and ``STOPPING=1`` on
shutdown. Outside systemd the variables are absent and every call does nothing.

The variables are removed from the environment once read, so Kamailio, rtpengine and
the media workers started later do not talk to the service's socket.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


@dataclass(frozen=True)
class NotifyTarget:
    """Where and how often to notify: the socket address and the watchdog period."""

    address: str | None
    watchdog_s: float | None

    @classmethod
    def from_environment(cls, env: Mapping[str, str], pid: int) -> NotifyTarget:
        """Read NOTIFY_SOCKET and WATCHDOG_USEC; the watchdog only for WATCHDOG_PID's process."""
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and address.startswith("@"):
            address = "\0" + address[1:]
        return cls(address=address, watchdog_s=_watchdog_period(env, pid))


def _watchdog_period(env: Mapping[str, str], pid: int) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (owner and owner != str(pid)):
        return None
    return int(usec) / 1_000_000


class SystemdNotifier:
    """Sends sd_notify messages to systemd; does nothing when not started by systemd."""

    def __init__(self, target: NotifyTarget) -> None:
        self.target = target

    @classmethod
    def from_environment(cls, env: MutableMapping[str, str] | None = None) -> SystemdNotifier:
        """Take the notify variables out of ``env`` (default: this process's environment)."""
        env = os.environ if env is None else env
        target = NotifyTarget.from_environment(env, os.getpid())
        for name in _VARIABLES:
            env.pop(name, None)
        return cls(target)

    @property
    def ping_interval_s(self) -> float | None:
        """How often to send WATCHDOG=1 (half the period systemd waits), or None."""
        if self.target.address is None or self.target.watchdog_s is None:
            return None
        return self.target.watchdog_s / 2

    def ready(self) -> None:
        """Tell systemd the service is up (ends ``systemctl start`` for Type=notify)."""
        self._send("READY=1")

    def watchdog(self) -> None:
        """Tell systemd the service's loop is alive."""
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        """Tell systemd the service is shutting down."""
        self._send("STOPPING=1")

    def _send(self, message: str) -> None:
        if self.target.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(1.0)
                sock.sendto(message.encode(), self.target.address)
        except OSError:
            log.exception("sd_notify %s failed", message)
