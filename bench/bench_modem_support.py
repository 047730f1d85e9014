"""Helpers shared by the modem benchmarks (not a benchmark itself): a simulator subprocess and
CPU/RSS readings."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bench import harness

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
START_S = 30


class SimulatorProcess:
    """The modem simulator in a child process, so its CPU is not counted as ours."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.ports = workdir / "ports.json"
        command = [
            sys.executable,
            "-m",
            "drivers.modem.simulator",
            "--json",
            str(self.ports),
            "--dir",
            str(workdir / "sim"),
            "--boot-seconds",
            "0.05",
            *args,
        ]
        self.proc = harness.spawn(command, cwd=ROOT)

        def started() -> bool:
            if self.proc.poll() is not None:
                raise harness.Incomplete(f"the modem simulator exited {self.proc.returncode}")
            return self.ports.exists()

        try:
            harness.wait_until(started, START_S, "modem simulator start", interval=0.05)
        except BaseException:
            self.stop()
            raise
        self.document: dict[str, Any] = json.loads(self.ports.read_text())

    def cpu_seconds(self) -> float:
        """User+system CPU the simulator process used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        """SIGTERM its process group and wait (bounded), then SIGKILL."""
        harness.stop(self.proc)


def rss_mib() -> float:
    """Resident set size of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def own_cpu() -> float:
    """User+system CPU seconds of this process (all threads)."""
    times = os.times()
    return times.user + times.system
