"""A media worker loads a service's handler only when a call or command for it comes: one
that served an echo call and a GSM command has not imported the IVR, room or contact
centre handlers (the real worker process, called by sipp standing in for Kamailio)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from drivers.media.protocol import (
    Event,
    GsmStats,
    GsmStatsEvent,
    Load,
    Quit,
    Ready,
    WorkerConfig,
    pack_command,
    parse_event,
)
from tests.integration.pbx.harness import free_udp_tcp_port, require_debs
from tests.procs import ROOT

HANDLERS = ("gsm", "ivr", "queues", "callbacks", "anchors", "supervisors", "links")


class Events:
    """The worker's events as they come on its stdout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd, self.buffered = proc.stdout.fileno(), b""
        self.seen: list[Event] = []

    def until(self, done: Callable[[Event], bool], timeout: float) -> Event:
        """The first event from now on for which ``done`` holds, or fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\n" in self.buffered:
                line, self.buffered = self.buffered.split(b"\n", 1)
                event = parse_event(line.decode(errors="replace"))
                if event is not None:
                    self.seen.append(event)
                    if done(event):
                        return event
            if select.select([self.fd], [], [], 0.5)[0]:
                chunk = os.read(self.fd, 65536)
                assert chunk, f"the worker exited; events: {self.seen}"
                self.buffered += chunk
        raise AssertionError(f"timed out after {timeout}s; events: {self.seen}")


def start_worker(folder: Path, port: int, proxy_port: int) -> tuple[subprocess.Popen[bytes], Path]:
    """The real worker process, SIP on ``port`` and its proxy at ``proxy_port``, with
    commands on its stdin and events on its stdout; and the path of its log."""
    config = WorkerConfig(name="t", host="127.0.0.1", port=port, proxy_host="127.0.0.1",
                          proxy_port=proxy_port, domain="test.local",
                          media_host="127.0.0.1")  # fmt: skip
    (folder / "worker.json").write_text(config.to_json())
    log = folder / "worker.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drivers.media.worker", str(folder / "worker.json")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    return proc, log


def echo_call(worker_port: int, proxy_port: int, work: Path) -> None:
    """One call to ``echo`` from the worker's Kamailio address: answered, held 1 s, hung up."""
    done = subprocess.run(
        ["sipp", "-sn", "uac", "-s", "echo", "-i", "127.0.0.1", "-p", str(proxy_port),
         "-m", "1", "-d", "1000", "-timeout", "60", "-timeout_error", "-nostdin",
         f"127.0.0.1:{worker_port}"],
        capture_output=True, timeout=90, cwd=work, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-2000:]


def test_a_worker_that_served_echo_and_gsm_loaded_only_the_gsm_handler(tmp_path: Path) -> None:
    require_debs()
    port, proxy_port = free_udp_tcp_port(), free_udp_tcp_port()
    proc, log = start_worker(tmp_path, port, proxy_port)
    assert proc.stdin is not None
    events = Events(proc)
    try:
        events.until(lambda e: isinstance(e, Ready), timeout=60)
        echo_call(port, proxy_port, tmp_path)
        events.until(lambda e: isinstance(e, Load) and e.calls == 1, timeout=30)
        events.until(lambda e: isinstance(e, Load) and e.calls == 0, timeout=30)
        after_echo = log.read_text()
        proc.stdin.write(pack_command(GsmStats()))
        proc.stdin.flush()
        events.until(lambda e: isinstance(e, GsmStatsEvent), timeout=30)
        proc.stdin.write(pack_command(Quit()))
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert not [h for h in HANDLERS if f"{h} handler loaded" in after_echo], after_echo
    loaded = [h for h in HANDLERS if f"{h} handler loaded" in log.read_text()]
    assert loaded == ["gsm"], log.read_text()
