"""The media worker pool: pjsua2 processes the appliance starts, feeds and restarts.

Each worker (``drivers/media/worker.py``) holds up to ``calls_per_worker`` calls (the
pjsua2 wheel's limit is 4), listens for SIP on loopback at ``port_base + index``, takes
requests from Kamailio's loopback socket only and sends every call it places through
that socket; its RTP ports open on the SIP host, like rtpengine's. Kamailio reaches the
workers through its dispatcher (``dispatcher.list`` rendered here, OPTIONS probing every
second); the pool also tells Kamailio at once when a worker process exits or comes back,
so a dead worker is skipped before its probe times out. Calls the appliance places
(click-to-dial, conference legs) go to the live worker with the most free capacity.
Meet-me room calls go to the worker the appliance names for the room
(``appliance/pbx/rooms.py``).

A worker that exits is restarted with jittered exponential backoff; ``on_exit`` gets its
address first, so the call service can end the calls it was carrying. Each worker keeps
(and logs at INFO) how long its latest start took from spawn to ready (``start_s``) and
how long its latest replacement took from the exit being seen to the new process ready,
backoff included (``replacement_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from appliance.pbx.settings import GsmSettings, MediaSettings
from drivers.media.protocol import (
    MAX_CALLS,
    Command,
    Event,
    Load,
    Prompt,
    ProtocolError,
    Quit,
    Ready,
    WorkerConfig,
    pack_command,
    parse_event,
)
from drivers.sip.kamailio_config import LOOPBACK
from drivers.sip.supervisor import die_with_parent

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0
DISPATCHER_SET = 1
GSM_DISPATCHER_SET = 2


def _ignore_event(_worker: MediaWorker, _event: Event) -> None:
    """A worker's event before anyone subscribed to it."""


def _ignore_worker(_worker: MediaWorker) -> None:
    """A worker's exit or readiness before anyone subscribed to it."""


class MediaPoolFullError(Exception):
    """No live worker has a free call slot."""


class MediaWorker:
    """One supervised worker process and its control link."""

    def __init__(
        self,
        config: WorkerConfig,
        run_dir: Path,
    ) -> None:
        self.config = config
        self.host = config.host
        self.address = f"{config.host}:{config.port}"
        self.uri = f"sip:{self.address}"
        self._config_path = run_dir / f"media-{config.name}.json"
        self._log_path = run_dir / f"media-{config.name}.log"
        self._on_event: Callable[[MediaWorker, Event], None] = _ignore_event
        self._on_exit: Callable[[MediaWorker], None] = _ignore_worker
        self._on_ready: Callable[[MediaWorker], None] = _ignore_worker
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self.calls = 0
        self.reserved = 0
        self.restarts = 0
        self.start_s: float | None = None
        self.replacement_s: float | None = None

    def subscribe(
        self,
        on_event: Callable[[MediaWorker, Event], None],
        on_exit: Callable[[MediaWorker], None],
        on_ready: Callable[[MediaWorker], None],
    ) -> None:
        """Where this worker's events, exits and readiness go (set before ``start``)."""
        self._on_event, self._on_exit, self._on_ready = on_event, on_exit, on_ready

    @property
    def alive(self) -> bool:
        """True while the process runs and has said it is ready."""
        return self._proc is not None and self._proc.returncode is None and self._ready.is_set()

    @property
    def free(self) -> int:
        """Call slots not in use or promised to a call being placed."""
        return self.config.max_calls - self.calls - self.reserved if self.alive else 0

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called."""
        return self._stopping

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    async def start(self) -> None:
        """Start the process and wait until it reports ready (or raise RuntimeError)."""
        self._stopping = False
        self._config_path.write_text(self.config.to_json())
        await self._spawn()
        self._task = asyncio.create_task(self._supervise(), name=f"media-{self.config.name}")

    async def _spawn(self) -> None:
        self._ready.clear()
        self.calls = self.reserved = 0
        spawned = time.monotonic()
        with self._log_path.open("ab") as errors:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "drivers.media.worker", str(self._config_path),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=errors,
                preexec_fn=die_with_parent,
            )  # fmt: skip
        proc = self._proc
        reader = asyncio.create_task(self._read(proc))
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({ready, reader}, timeout=READY_TIMEOUT_S,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if not self._ready.is_set():
            ready.cancel()
            reader.cancel()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RuntimeError(
                f"media worker {self.config.name} on port {self.config.port} did not start "
                f"(exit {proc.returncode}; see {self._log_path})"
            )
        self.start_s = time.monotonic() - spawned
        log.info("media worker %s ready in %.3f s", self.config.name, self.start_s)
        self._on_ready(self)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            event = self._parse(line)
            if event is None:
                continue
            if isinstance(event, Ready):
                self._ready.set()
            elif isinstance(event, Load):
                self.calls = event.calls
                self.reserved = 0
            try:
                self._on_event(self, event)
            except Exception:
                log.exception("media event handler failed", extra={"event": event.TYPE})

    def _parse(self, line: bytes) -> Event | None:
        """The event on ``line``; None for other output and for a bad event (logged)."""
        try:
            return parse_event(line.decode(errors="replace"))
        except ProtocolError as err:
            log.warning("media worker %s sent a bad event: %s", self.config.name, err,
                        extra={"error_id": err.error_id})  # fmt: skip
            return None

    async def _supervise(self) -> None:
        delay = 0.2
        while True:
            proc = self._proc
            assert proc is not None
            started = time.monotonic()
            code = await proc.wait()
            if self.stopping:
                return
            exited = time.monotonic()
            self._ready.clear()
            log.error("media worker %s exited with %s; restarting", self.config.name, code)
            self._on_exit(self)
            if time.monotonic() - started > 10:
                delay = 0.2
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 10.0)
            try:
                await self._spawn()
                self.restarts += 1
                self.replacement_s = time.monotonic() - exited
                log.info("media worker %s replaced in %.3f s", self.config.name, self.replacement_s)
            except (RuntimeError, OSError) as err:
                log.error("media worker %s restart failed: %s", self.config.name, err)

    def send(self, command: Command) -> bool:
        """Write one command; False when the worker is not running."""
        proc = self._proc
        if proc is None or proc.returncode is not None or proc.stdin is None:
            return False
        proc.stdin.write(pack_command(command))
        return True

    async def stop(self) -> None:
        """Ask the worker to quit, then terminate it if it does not."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self.send(Quit())
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def worker_configs(
    media: MediaSettings, media_host: str, proxy_port: int, domain: str
) -> list[WorkerConfig]:
    """One WorkerConfig per worker: SIP on loopback, RTP on ``media_host``."""
    prompts = {
        name: Prompt(p.file, p.tone_hz, p.on_ms, p.off_ms, p.seconds)
        for name, p in media.prompts.items()
    }
    return [
        WorkerConfig(
            name=f"w{i}",
            host=LOOPBACK,
            port=media.port_base + i,
            proxy_host=LOOPBACK,
            proxy_port=proxy_port,
            media_host=media_host,
            domain=domain,
            max_calls=min(media.calls_per_worker, MAX_CALLS),
            prompts=prompts,
        )
        for i in range(media.workers)
    ]


def gsm_worker_configs(
    gsm: GsmSettings, channels: Sequence[str], media_host: str, proxy_port: int, domain: str
) -> list[WorkerConfig]:
    """GSM workers: ``channels_per_worker`` channels each, in configuration order."""
    size = gsm.channels_per_worker
    chunks = [tuple(channels[i : i + size]) for i in range(0, len(channels), size)]
    return [
        WorkerConfig(
            name=f"g{i}",
            host=LOOPBACK,
            port=gsm.port_base + i,
            proxy_host=LOOPBACK,
            proxy_port=proxy_port,
            media_host=media_host,
            domain=domain,
            max_calls=len(chunk),
            gsm_channels=chunk,
            jitter_frames=gsm.jitter_frames,
        )
        for i, chunk in enumerate(chunks)
    ]


def dispatcher_set(config: WorkerConfig) -> int:
    """The dispatcher set of a worker: GSM workers are only reached by their channels."""
    return GSM_DISPATCHER_SET if config.gsm_channels else DISPATCHER_SET


def dispatcher_list(configs: list[WorkerConfig]) -> str:
    """Kamailio's dispatcher list: media workers in set 1, GSM workers in set 2."""
    lines = [f"{dispatcher_set(c)} sip:{c.host}:{c.port} 0 0 duid={c.name}\n" for c in configs]
    return "".join(lines)


class MediaPool:
    """Starts the workers, routes commands to them, reports their health."""

    def __init__(self, configs: list[WorkerConfig], run_dir: Path) -> None:
        self.workers = [MediaWorker(c, run_dir) for c in configs]
        self._run_dir = run_dir

    def subscribe(
        self,
        on_event: Callable[[MediaWorker, Event], None],
        on_exit: Callable[[MediaWorker], None],
        on_ready: Callable[[MediaWorker], None],
    ) -> None:
        """Where every worker's events, exits and readiness go (set before ``start``)."""
        for worker in self.workers:
            worker.subscribe(on_event, on_exit, on_ready)

    def add_prompts(self, prompts: Mapping[str, Prompt]) -> None:
        """Prompts a feature slice contributes (``announce-<name>``); a configured prompt
        of the same name stays. Call before ``start``."""
        for worker in self.workers:
            merged = {**prompts, **worker.config.prompts}
            worker.config = dataclasses.replace(worker.config, prompts=merged)

    def by_address(self, address: str) -> MediaWorker | None:
        """The worker listening on ``host:port``."""
        return next((w for w in self.workers if w.address == address), None)

    async def start(self) -> None:
        """Start every worker (in parallel); if one fails, every one started is stopped."""
        self._run_dir.mkdir(parents=True, exist_ok=True)
        results = await asyncio.gather(*(w.start() for w in self.workers), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise failed[0]

    async def stop(self) -> None:
        """Stop every worker."""
        await asyncio.gather(*(w.stop() for w in self.workers))

    def pick(self, slots: int = 1) -> MediaWorker:
        """The live worker with the most free slots, at least ``slots``."""
        live = [w for w in self.workers if w.free >= slots and not w.config.gsm_channels]
        if not live:
            raise MediaPoolFullError(f"no media worker has {slots} free call slot(s)")
        return max(live, key=lambda w: w.free)

    def check(self) -> tuple[bool, str]:
        """Health: how many workers run and how many calls they hold."""
        alive = [w for w in self.workers if w.alive]
        calls = sum(w.calls for w in alive)
        detail = f"{len(alive)}/{len(self.workers)} media workers, {calls} calls"
        return len(alive) == len(self.workers), detail
