"""The benchmarks' shared harness: header, bounded waits, partial results, cleanup."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench import harness
from tests.procs import ROOT

pytestmark = pytest.mark.integration

SCRIPT = """
import sys
from pathlib import Path

sys.path.insert(0, {root!r})
from bench import harness

def body(args):
    harness.record("rounds done", 2)
    harness.record("rate so far", "1,234/s")
    sleeper = harness.spawn(["sh", "-c", "sleep 60 & echo $! > {grandchild}; wait"])
    Path({child!r}).write_text(str(sleeper.pid))
    harness.wait_until(lambda: Path({grandchild!r}).exists(), 10, "grandchild pid")
    if args.finish:
        harness.stop(sleeper)
        print("finished")
        return
    harness.wait_exit(sleeper, 20, "the sleeper")

parser = harness.parser("a benchmark that waits for a sleeper")
parser.add_argument("--finish", action="store_true")
harness.run(body, parser.parse_args())
"""


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "bench_sleeper.py"
    text = SCRIPT.format(
        root=str(ROOT),
        child=str(tmp_path / "child.pid"),
        grandchild=str(tmp_path / "grandchild.pid"),
    )
    path.write_text(textwrap.dedent(text))
    return path


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_run_whose_wait_runs_out_reports_why_its_figures_and_exits_1(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(_script(tmp_path)), "--timeout-scale", "0.1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "benchmark: bench_sleeper.py --timeout-scale 0.1"
    assert lines[1] == f"commit: {harness.commit()}"
    assert lines[2] == f"machine: {harness.machine()}"
    assert lines[3:] == [
        "incomplete: the sleeper did not finish within 2.0 s",
        "measured before it stopped:",
        "  rounds done: 2",
        "  rate so far: 1,234/s",
    ]
    assert _gone(int((tmp_path / "child.pid").read_text()))
    assert _gone(int((tmp_path / "grandchild.pid").read_text()))


def test_a_run_stopped_by_sigterm_reports_it_and_stops_what_it_started(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(_script(tmp_path))], stdout=subprocess.PIPE, text=True
    )
    try:
        grandchild = tmp_path / "grandchild.pid"
        deadline = time.monotonic() + 30
        while not grandchild.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "incomplete: stopped by signal SIGTERM" in out
    assert "  rounds done: 2" in out
    assert _gone(int(grandchild.read_text()))


def test_a_run_that_finishes_prints_the_header_then_its_output_and_exits_0(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, str(_script(tmp_path)), "--finish"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[1:] == [
        f"commit: {harness.commit()}",
        f"machine: {harness.machine()}",
        "finished",
    ]


def test_the_commit_is_the_short_head_with_dirty_when_tracked_files_changed() -> None:
    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    assert harness.commit() == head + ("-dirty" if dirty else "")


def test_the_machine_names_the_cores_and_the_cpu_model() -> None:
    models = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    assert harness.machine() == f"{os.cpu_count()} cores, {models[0].strip()}"
