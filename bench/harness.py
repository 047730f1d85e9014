"""What every benchmark shares: the code and machine it measures, bounded waits, partial results.

A benchmark builds its parser with :func:`parser`, hands its body to :func:`run`, records each
figure with :func:`record` as soon as it is measured, and waits only through :func:`wait_until`,
:func:`wait_exit` or a timeout from :func:`limit`. Its output starts with the commit and the
machine; a run that cannot finish ends with ``incomplete: <reason>``, the figures measured so
far and exit status 1, and every process it started with :func:`spawn` is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
GIT_TIMEOUT_S = 10
STOP_GRACE_S = 20


class Incomplete(Exception):
    """The run cannot finish; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _State:
    """The run in progress: its timeout scale, figures so far and processes to stop."""

    scale = 1.0
    figures: dict[str, str] = {}
    processes: list[subprocess.Popen[Any]] = []


def commit() -> str:
    """``git rev-parse --short HEAD`` of the code measured, ``-dirty`` if the tree has changes."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        changes = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git checkout)"
    return head + ("-dirty" if changes else "")


def _git(*argv: str) -> str:
    done = subprocess.run(
        ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True
    )
    return done.stdout.strip()


def machine() -> str:
    """Cores and CPU model name (from /proc/cpuinfo)."""
    model = "unknown model"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}"


def header(argv: Sequence[str]) -> list[str]:
    """The lines every benchmark prints first."""
    return [
        f"benchmark: {Path(argv[0]).name} {' '.join(argv[1:])}".rstrip(),
        f"commit: {commit()}",
        f"machine: {machine()}",
    ]


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    built = argparse.ArgumentParser(description=description)
    built.add_argument(
        "--timeout-scale",
        type=float,
        default=1.0,
        help="multiply every wait's limit (below 1 to check how a run that cannot finish ends)",
    )
    return built


def limit(seconds: float) -> float:
    """A wait's limit: ``seconds`` (derived from the run's parameters) times --timeout-scale."""
    return seconds * _State.scale


def record(name: str, value: object) -> None:
    """Keep a measured figure, printed with the others if the run stops early."""
    _State.figures[name] = str(value)


def wait_until(ready: Callable[[], bool], seconds: float, what: str, interval: float = 0.1) -> None:
    """Poll ``ready`` until it is true; :class:`Incomplete` after ``limit(seconds)``."""
    timeout = limit(seconds)
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise Incomplete(f"{what}: not within {timeout:.1f} s")
        time.sleep(interval)


def wait_exit(
    proc: subprocess.Popen[Any], seconds: float, what: str, since: float | None = None
) -> int:
    """Wait for ``proc`` to exit; :class:`Incomplete` ``limit(seconds)`` after ``since``.

    ``since`` is a ``time.monotonic()`` reading (default: now), so a process's whole run
    can be bounded by a limit counted from its start.
    """
    timeout = limit(seconds)
    started = time.monotonic() if since is None else since
    try:
        return proc.wait(timeout=max(0.0, started + timeout - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise Incomplete(f"{what} did not finish within {timeout:.1f} s") from None


def spawn(argv: Sequence[str], log: Path | None = None, **options: Any) -> subprocess.Popen[Any]:
    """Start ``argv`` in its own process group, output to ``log``; stopped when the run ends."""
    out: Any = subprocess.DEVNULL
    if log is not None:
        out = log.open("wb")
        options.setdefault("stderr", subprocess.STDOUT)
    try:
        proc = subprocess.Popen(argv, stdout=options.pop("stdout", out), start_new_session=True,
                                **options)  # fmt: skip
    finally:
        if log is not None:
            out.close()
    _State.processes.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM ``proc``'s process group, SIGKILL it if it has not exited after ``grace`` s,
    then SIGKILL whatever it left in its group."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
    _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    """Signal the group ``pgid`` if a process is still in it (so the id is still ours: the
    kernel does not reuse a process group id while the group has members)."""
    if _group_has_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def kill_group(pgid: int) -> None:
    """SIGKILL what is left of a process group some started process made (a daemon's)."""
    _signal_group(pgid, signal.SIGKILL)


def _group_has_members(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    return True
    return False


def stop_all() -> None:
    """Stop every process :func:`spawn` started, newest first."""
    while _State.processes:
        stop(_State.processes.pop())


def _terminated(signum: int, _frame: FrameType | None) -> NoReturn:
    raise Incomplete(f"stopped by signal {signal.Signals(signum).name}")


def run(body: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> None:
    """Print the header, run ``body``; on failure print why and the partial figures, exit 1."""
    _State.scale = args.timeout_scale
    _State.figures = {}
    print("\n".join(header(sys.argv)), flush=True)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        body(args)
    except Incomplete as stopped:
        _incomplete(stopped.reason)
    except KeyboardInterrupt:
        _incomplete("interrupted")
    except Exception as error:  # noqa: BLE001 - any failure ends the run with what it measured
        _incomplete(f"{type(error).__name__}: {error} (at {_where(error)})")
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_all()


def _where(error: BaseException) -> str:
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _incomplete(reason: str) -> NoReturn:
    stop_all()
    print(f"incomplete: {reason}", flush=True)
    if _State.figures:
        print("measured before it stopped:")
        for name, value in _State.figures.items():
            print(f"  {name}: {value}")
    else:
        print("measured before it stopped: nothing")
    sys.exit(1)
