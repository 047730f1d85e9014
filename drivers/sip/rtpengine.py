"""rtpengine as a supervised child process: userspace relay, pcap recording, probed by ng ping.

Media ports open on ``host`` (the SIP address phones and peers send RTP to); the ng
control port, which can create, record and delete any call, listens on ``ng_host``
(loopback) only.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from drivers.sip.errors import ProcessError
from drivers.sip.kamailio_config import LOOPBACK
from drivers.sip.ng import NgClient
from drivers.sip.supervisor import Daemon

log = logging.getLogger(__name__)

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@dataclass(frozen=True)
class RtpengineConfig:
    """rtpengine's options; each call takes 4 ports (RTP and RTCP on two legs)."""

    host: str
    ng_port: int
    port_min: int
    port_max: int
    recording_dir: Path
    ng_host: str = LOOPBACK
    delete_delay_s: int = 1
    threads: int = 2
    media_timeout_s: int = 60
    log_level: int = 4


def rtpengine_argv(binary: str, config: RtpengineConfig, pid_file: Path) -> list[str]:
    """The command line for ``config`` (no kernel module: ``--table=-1``)."""
    return [
        binary,
        "--config-file=none",  # never the package's /etc file: its CLI/HTTP ports collide
        "--table=-1",
        "--foreground",
        "--log-stderr",
        f"--pidfile={pid_file}",
        f"--interface={config.host}",
        f"--listen-ng={config.ng_host}:{config.ng_port}",
        f"--port-min={config.port_min}",
        f"--port-max={config.port_max}",
        f"--recording-dir={config.recording_dir}",
        "--recording-method=pcap",
        "--recording-format=raw",
        f"--delete-delay={config.delete_delay_s}",
        f"--num-threads={config.threads}",
        f"--timeout={config.media_timeout_s}",
        f"--log-level={config.log_level}",
    ]


def ephemeral_overlap(
    port_min: int, port_max: int, source: Path = EPHEMERAL_RANGE
) -> tuple[int, int] | None:
    """The part of ``port_min..port_max`` inside the kernel's ephemeral port range, if any.

    Any process's outgoing socket may take a port there, and rtpengine then cannot offer it
    to a call; ``net.ipv4.ip_local_reserved_ports`` or a range below it avoids that.
    """
    try:
        low, high = (int(word) for word in source.read_text().split())
    except (OSError, ValueError):
        return None
    if port_max < low or port_min > high:
        return None
    return max(port_min, low), min(port_max, high)


class RtpengineDriver:
    """Runs rtpengine under a Daemon supervisor and talks ng to it."""

    name = "rtpengine"

    def __init__(
        self,
        run_dir: Path,
        config: RtpengineConfig,
        binary: str = "rtpengine",
    ) -> None:
        self.config = config
        self._binary = binary
        self._pid_file = run_dir / "rtpengine.pid"
        self.ng = NgClient(config.ng_host, config.ng_port, timeout=0.5)
        self.daemon = Daemon(
            "rtpengine",
            self._argv,
            run_dir / "rtpengine.log",
            self.ng.ping,
            self._pid_file,
        )

    def _argv(self) -> list[str]:
        binary = shutil.which(self._binary)
        if binary is None:
            raise ProcessError(
                f"{self._binary} not found: install the Debian package rtpengine-daemon "
                "(./run test installs it)"
            )
        self.config.recording_dir.mkdir(parents=True, exist_ok=True)
        return rtpengine_argv(binary, self.config, self._pid_file)

    async def start(self) -> None:
        """Start rtpengine; ready when it answers ``ping``."""
        shared = ephemeral_overlap(self.config.port_min, self.config.port_max)
        if shared is not None:
            log.warning(
                "RTP ports %d-%d lie in the kernel's ephemeral range (%s): other sockets may "
                "take them; reserve them (net.ipv4.ip_local_reserved_ports) or move "
                "pbx.rtp_port_min/rtp_port_max below it",
                *shared,
                EPHEMERAL_RANGE,
            )
        await self.daemon.start()

    async def stop(self) -> None:
        """Terminate rtpengine (active calls' pcaps are recovered on the next start)."""
        await self.daemon.stop()
