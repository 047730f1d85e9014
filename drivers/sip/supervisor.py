"""Runs one daemon (Kamailio, rtpengine) as a child process and keeps it running.

Theory of operation: the daemon runs in its own session, so a crash of its main process
can be cleaned up by killing the whole process group (Kamailio forks workers that would
otherwise keep its socket bound). The child gets SIGTERM if the appliance dies
(PR_SET_PDEATHSIG). After an unexpected exit the supervisor waits with exponential,
jittered backoff, starts it again, waits for ``ready`` and then calls ``on_restart``.
``on_exit`` runs as soon as the exit is seen, so the owner can reconcile state the
daemon lost before anything else happens. A stale daemon left by an earlier crash
is found through the pid file and killed before the first start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from drivers.sip.errors import ProcessError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
STABLE_AFTER_S = 10.0


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Have the kernel send ``sig`` to this process when its parent exits (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)


def _log_tail(path: Path, lines: int = 5, limit: int = 4096) -> str:
    """The last ``lines`` lines of a daemon's log, indented, for an error message."""
    try:
        with path.open("rb") as log_file:
            log_file.seek(max(0, log_file.seek(0, os.SEEK_END) - limit))
            tail = log_file.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n    | {line}" for line in tail)


class Daemon:
    """A supervised child process with readiness probing and restart on crash."""

    def __init__(
        self,
        name: str,
        argv: Callable[[], list[str]],
        log_path: Path,
        ready: Callable[[], Awaitable[bool]],
        pid_file: Path,
        on_exit: Callable[[], None] | None = None,
        on_restart: Callable[[], Awaitable[None]] | None = None,
        ready_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self._argv = argv
        self._log_path = log_path
        self._ready = ready
        self._pid_file = pid_file
        self._on_exit = on_exit
        self._on_restart = on_restart
        self._ready_timeout = ready_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0
        self.last_exit: int | None = None

    def subscribe(
        self,
        on_exit: Callable[[], None],
        on_restart: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Who is told when the process exits and when it is back (set before ``start``)."""
        self._on_exit, self._on_restart = on_exit, on_restart

    @property
    def pid(self) -> int | None:
        """The daemon's main process id while it runs."""
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    async def start(self) -> None:
        """Start the daemon and wait until it is ready, or raise ProcessError."""
        self._stopping = False
        _kill_stale(self._pid_file)
        await self._spawn()
        self._watch = asyncio.create_task(self._supervise(), name=f"supervise-{self.name}")

    async def stop(self) -> None:
        """Stop supervising and terminate the daemon (SIGTERM, then SIGKILL)."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self._terminate()

    async def restart(self) -> None:
        """Stop and start again (configuration changed)."""
        await self.stop()
        await self.start()

    def check(self) -> tuple[bool, str]:
        """Health: running, with the restart count."""
        if self.pid is None:
            return False, f"not running (last exit {self.last_exit}, restarts {self.restarts})"
        return True, f"pid {self.pid}, restarts {self.restarts}"

    async def _spawn(self) -> None:
        argv = self._argv()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as out:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            except OSError as err:
                raise ProcessError(f"cannot start {self.name} ({argv[0]}): {err}") from None
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.returncode is not None:
                break
            if await self._ready():
                return
            await asyncio.sleep(0.05)
        code = None if self._proc is None else self._proc.returncode
        await self._terminate()
        raise ProcessError(
            f"{self.name} did not become ready within {self._ready_timeout}s "
            f"(exit code {code}); see {self._log_path}{_log_tail(self._log_path)}"
        )

    async def _supervise(self) -> None:
        delay = 0.2
        while not self._stopping:
            assert self._proc is not None
            started = time.monotonic()
            self.last_exit = await self._proc.wait()
            _kill_group(self._proc.pid, signal.SIGKILL)
            log.error("%s exited with %s; restarting", self.name, self.last_exit)
            if self._on_exit is not None:
                self._on_exit()
            if time.monotonic() - started > STABLE_AFTER_S:
                delay = 0.2
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 10.0)
            try:
                await self._spawn()
            except ProcessError as err:
                log.error("%s", err)
                continue
            self.restarts += 1
            if self._on_restart is not None:
                await self._on_restart()

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=5)
            except TimeoutError:
                log.warning("%s ignored SIGTERM; killing", self.name)
        _kill_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout=5)
        self._pid_file.unlink(missing_ok=True)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill_stale(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if str(pid_file).encode() not in cmdline:
        return
    log.warning("killing stale daemon %d left by an earlier run", pid)
    with contextlib.suppress(ProcessLookupError):
        _kill_group(os.getpgid(pid), signal.SIGKILL)
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.02)
