"""Helpers shared by the modem benchmarks (not a benchmark itself): a simulator subprocess and
CPU/RSS readings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


class SimulatorProcess:
    """``python -m drivers.modem.sim`` in a child process, so its CPU is not counted as ours."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.ports = workdir / "ports.json"
        command = [
            sys.executable,
            "-m",
            "drivers.modem.sim",
            "--json",
            str(self.ports),
            "--dir",
            str(workdir / "sim"),
            "--boot-seconds",
            "0.05",
            *args,
        ]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self.ports.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("simulator did not start")
            time.sleep(0.05)
        self.document: dict[str, Any] = json.loads(self.ports.read_text())

    def cpu_seconds(self) -> float:
        """User+system CPU the simulator process used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        """SIGTERM and wait (bounded)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


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
