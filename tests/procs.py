"""Helpers for tests that run callmesh services as real processes, always bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_yaml(path: Path, data: object) -> Path:
    """Write ``data`` as YAML to ``path`` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def callmesh(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the callmesh CLI to completion and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


class Service:
    """A callmesh service process started for one test; always reaped."""

    def __init__(self, args: Sequence[str], log: Path) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli.main", *args],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def wait_healthy(self, url: str, timeout: float = 30) -> httpx.Response:
        """Poll ``url`` until it answers 200; fail with the log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(url, timeout=1)
                if response.status_code == 200:
                    return response
            time.sleep(0.05)
        raise AssertionError(f"{url} not healthy within {timeout}s:\n{self.output()}")

    def signal(self, sig: int, timeout: float = 20) -> int:
        """Send ``sig`` and wait for the exit code."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._log_file.close()


@contextlib.contextmanager
def service(args: Sequence[str], log: Path) -> Iterator[Service]:
    """Run a service for the duration of a ``with`` block."""
    svc = Service(args, log)
    try:
        yield svc
    finally:
        svc.close()


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (zombies count as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status and os.path.exists(f"/proc/{pid}")
