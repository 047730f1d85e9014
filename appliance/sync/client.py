"""The sync client: the zmq adapter of the sync session (drivers/sync/session.py).

Theory of operation: the session core holds the protocol state (hello, the window of
batches per stream, acks, timeouts); this adapter owns the DEALER socket, reads and
deletes outbox entries off the loop, and hands what HQ sends to the features that
registered for it at the composition root (appliance/sync/features.py): outbox
streams, topics, command handlers, publishers and status parts. Recordings go one at a
time beside the batches, on HQ's credit (see recordings.py). When the session is lost
the socket is closed and a new session starts with the next aggregator node of
``sync.endpoints`` (the site stays on a node as long as its session lives), after a
jittered delay that grows once each round through the list has failed, sending
everything still in the outboxes again from the start — the aggregator stores by
(site, record id), so a repeat is harmless. Nothing leaves an outbox without an ack,
so HQ can be down for days; the only bound is the store's size, and the client warns
loudly as it fills.

Supervision: any other exception (a full store, a malformed message, an unreadable
file) is logged with its traceback and the client starts again after a jittered,
growing delay (drivers/daemon/supervision.py), counted in
``callmesh_sync_restarts_total``; the ``sync`` health check fails with the error for
``CRASH_RECENT_FACTOR`` times ``sync.reconnect_max_s`` after each crash.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import time
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from appliance.settings import ApplianceSettings
from appliance.store import Outbox, StateStore, Store
from appliance.store.alarm import store_alarms
from appliance.sync.features import OutboxStream, SyncFeatures
from appliance.sync.metrics import SyncMetrics
from appliance.sync.recordings import RecordingUploader
from drivers.daemon.supervision import Supervisor
from drivers.daemon.version import __version__
from drivers.sync import keys
from drivers.sync.protocol import (
    Command,
    CommandResult,
    ErrorReply,
    Hello,
    Message,
    ProtocolError,
    RecCredit,
    RecDone,
    RecResume,
    Snapshot,
    SnapshotRequest,
    Status,
    Update,
    decode,
    encode,
)
from drivers.sync.records import command_detail
from drivers.sync.session import (
    Acked,
    ClientSession,
    Delivered,
    Event,
    Lost,
    Refused,
    SessionConfig,
    SessionUp,
)

log = logging.getLogger(__name__)

SILENCE_FACTOR = 3
DRAIN_LIMIT = 64  # replies handled per pump turn, so acks and credits never queue up
LIVE_CHECK_S = 1.0  # live status parts are looked at once a second, sent when they changed
CRASH_RECENT_FACTOR = 2.0
RECORDING = "recording"

StoreProvider = Callable[[], Store]


class SessionLost(Exception):
    """The current session is unusable; the client reconnects."""


class SyncClient:
    """A lifecycle component; needs the store and the registered features started first.

    ``features`` are the streams, topics, command handlers, publishers and status parts
    the composition root registered (appliance/sync/features.py); the client imports
    none of them.
    """

    name = "sync"

    def __init__(
        self,
        settings: ApplianceSettings,
        store: StoreProvider,
        metrics: SyncMetrics,
        features: SyncFeatures,
    ) -> None:
        self._settings = settings
        self._sync = settings.sync
        self._store = store
        self.metrics = metrics
        self.features = features
        self._streams: dict[str, OutboxStream] = {s.stream.name: s for s in features.streams}
        self._config = SessionConfig(
            settings.sync.hello_timeout_s,
            settings.sync.ack_timeout_s,
            SILENCE_FACTOR * settings.sync.status_interval_s,
        )
        self._session = ClientSession(self._config, [])
        self._ctx: zmq.asyncio.Context | None = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._node = 0
        self._store_ratio = 0.0
        self._last_heard = 0.0
        self._last_status = 0.0
        self._live_sent: list[dict[str, Any]] = []
        self._live_checked = 0.0
        self.uploader: RecordingUploader | None = None
        self.session_up = asyncio.Event()
        self.supervisor = Supervisor(
            "sync client", self._sync.reconnect_min_s, self._sync.reconnect_max_s,
            metrics.restarts.inc,
        )  # fmt: skip

    async def start(self) -> None:
        public, secret = self._keys()
        log.info("site public key", extra={"public_key": public.decode()})
        self._ctx = zmq.asyncio.Context()
        self._public, self._secret = public, secret
        store = self._store()
        self.uploader = RecordingUploader(
            Outbox(store, "recording"),
            StateStore(store),
            self._settings.recordings,
            self._sync.chunk_kib * 1024,
            lambda error_id: self.metrics.recordings_quarantined.labels(reason=error_id).inc(),
        )
        self._task = asyncio.create_task(self.supervisor.run(self._run))
        self._watch = asyncio.create_task(self.supervisor.run(self._watch_storage))

    def check(self) -> tuple[bool, str]:
        """Health: failing for a while after a crash, with its error; else whether HQ is up."""
        ok, detail = self.supervisor.check(CRASH_RECENT_FACTOR * self._sync.reconnect_max_s)
        link = "up" if self.session_up.is_set() else "HQ down"
        return ok, link if self.supervisor.crashed_at is None else f"{link}; {detail}"

    def recordings_check(self) -> tuple[bool, str]:
        """Health of recording uploads for /healthz: quarantined recordings are named."""
        return (True, "not started") if self.uploader is None else self.uploader.health()

    def _keys(self) -> tuple[bytes, bytes]:
        path = self._settings.key_file()
        if self._sync.key_file is None and not path.exists():
            keys.generate(path.parent, self._settings.site_id)
        return keys.load_secret(path)

    async def stop(self) -> None:
        for task in (self._task, self._watch):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._ctx is not None:
            self._ctx.term()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._connection()
            except SessionLost as err:
                self.metrics.reconnects.labels(reason=str(err).split(":")[0]).inc()
                log.warning("sync session lost", extra={"reason": str(err), "endpoint": self.node})
            finally:
                self.metrics.connected.set(0)
                self.session_up.clear()
            self._last_heard = max(self._last_heard, self._session.last_heard)
            failures = (
                0
                if self._last_heard and time.monotonic() - self._last_heard < 5
                else (failures + 1)
            )
            self._node = (self._node + 1) % len(self._sync.nodes())
            await asyncio.sleep(self._backoff(failures // len(self._sync.nodes())))

    @property
    def node(self) -> str:
        """The aggregator endpoint of the current (or next) session."""
        return self._sync.nodes()[self._node]

    def _backoff(self, failures: int) -> float:
        base = min(self._sync.reconnect_max_s, self._sync.reconnect_min_s * 2 ** min(failures, 16))
        return float(base * random.uniform(0.5, 1.5))

    async def _connection(self) -> None:
        assert self._ctx is not None
        sock = self._ctx.socket(zmq.DEALER)
        sock.curve_publickey, sock.curve_secretkey = self._public, self._secret
        sock.curve_serverkey = self._sync.server_public_key.encode()
        sock.linger = 0
        sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        sock.connect(self.node)
        self._session = ClientSession(self._config, [s.stream for s in self._streams.values()])
        for publisher in self.features.publishers:
            publisher.reset()
        assert self.uploader is not None
        self.uploader.reset()
        try:
            await self._handshake(sock)
            while True:
                await self._pump(sock)
        finally:
            sock.close(linger=0)

    async def _handshake(self, sock: zmq.asyncio.Socket) -> None:
        now = time.monotonic()
        for hello in self._session.connect(self._hello(), now):
            await self._send(sock, hello)
        while not self._session.up:
            wait_s = self._session.started + self._sync.hello_timeout_s - time.monotonic()
            message = await self._receive(sock, max(wait_s, 0.0))
            if message is not None:
                await self._handle(sock, self._session.receive(message, time.monotonic()))
            self._lost_if(self._session.check(time.monotonic()))

    def _hello(self) -> Hello:
        features = self.features
        return Hello(
            self._settings.site_id,
            f"callmesh {__version__}",
            [*features.capabilities, RECORDING],
            self._backlog(),
            {topic.name: topic.version() for topic in features.topics},
        )

    def _backlog(self) -> dict[str, int]:
        store = self._store()
        return {name: Outbox(store, name).pending() for name in [*self._streams, RECORDING]}

    async def _pump(self, sock: zmq.asyncio.Socket) -> None:
        now = time.monotonic()
        for name in self._streams:
            await self._fill_window(sock, name, now)
        for publisher in self.features.publishers:
            for message in publisher.due(now):
                await self._send(sock, message)
        assert self.uploader is not None
        if self.uploader.has_work(now):
            for message in await asyncio.to_thread(self.uploader.next_messages, now):
                await self._send(sock, message)
        if now - self._last_status > self._sync.status_interval_s or self._live_moved(now):
            self._last_status = now
            await self._send(sock, self._status())
        wait_s = 0.5 if self._session.in_flight() else 0.2
        for _ in range(DRAIN_LIMIT):
            reply = await self._receive(sock, wait_s)
            if reply is None:
                break
            await self._handle(sock, self._session.receive(reply, time.monotonic()))
            wait_s = 0.0
        now = time.monotonic()
        if self.uploader.stalled(now, self._sync.ack_timeout_s):
            raise SessionLost("recording-stalled: no upload progress")
        self._lost_if(self._session.check(now, busy=self.uploader.current is not None))

    async def _fill_window(self, sock: zmq.asyncio.Socket, name: str, now: float) -> None:
        """Batches of one outbox while its window has room, each after the last one sent."""
        outbox, stream = Outbox(self._store(), name), self._streams[name]
        while (want := self._session.want(name)) is not None:
            batch = await asyncio.to_thread(outbox.read_batch, want.after, want.limit)
            if not batch:
                return
            await self._send(sock, self._session.batch(name, batch, now))
            stream.sent(len(batch))

    async def _handle(self, sock: zmq.asyncio.Socket, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Lost):
                raise SessionLost(str(event))
            for reply in await self._on_event(event):
                await self._send(sock, reply)

    async def _on_event(self, event: Event) -> list[Message]:
        if isinstance(event, SessionUp):
            self._up()
            return [SnapshotRequest(t.name, t.version()) for t in self.features.topics]
        if isinstance(event, Acked):
            outbox = Outbox(self._store(), event.stream)
            removed = await asyncio.to_thread(outbox.ack, event.seqs)
            self._streams[event.stream].acked(removed)
            return []
        if isinstance(event, Refused):
            self._refused(event.error)
            return []
        if isinstance(event, Delivered):
            return await self._deliver(event.message)
        return []

    def _up(self) -> None:
        self.metrics.connected.set(1)
        self.session_up.set()
        log.info("sync session up", extra={"endpoint": self.node})

    def _refused(self, error: ErrorReply) -> None:
        self.metrics.protocol_errors.labels(error_id=error.error_id).inc()
        log.warning(
            "HQ refused a message",
            extra={"error_id": error.error_id, "detail": error.message, "ref": error.ref},
        )

    def _lost_if(self, lost: Lost | None) -> None:
        if lost is not None:
            raise SessionLost(str(lost))

    async def _deliver(self, message: Message) -> list[Message]:
        """Hand a message to the feature that registered for it; the replies to send."""
        assert self.uploader is not None
        if isinstance(message, RecResume | RecCredit | RecDone | ErrorReply):
            return await asyncio.to_thread(self.uploader.on_message, message, time.monotonic())
        if isinstance(message, Command):
            return [await self._command(message)]
        if isinstance(message, Snapshot | Update):
            topic = self.features.topic(message.topic)
            if topic is not None:
                return await topic.receive(message)
            if isinstance(message, Snapshot):
                StateStore(self._store()).put(
                    f"snapshot:{message.topic}", {"version": message.version, "data": message.data}
                )
        return []

    async def _command(self, command: Command) -> CommandResult:
        handler = self.features.command_handler(command.kind)
        if handler is None:
            return CommandResult(
                command.command_id, False, f"unknown command kind {command.kind!r}"
            )
        ok, detail = await handler.apply(command.command_id, command.kind, command.args)
        return CommandResult(command.command_id, ok, command_detail(detail))

    async def _watch_storage(self) -> None:
        """Warn loudly, whether or not HQ is reachable, while storage fills up."""
        while True:
            await asyncio.to_thread(self._check_storage)
            await asyncio.sleep(self._sync.status_interval_s)

    def _check_storage(self) -> None:
        usage = self._store().usage()
        self._store_ratio = usage["used_bytes"] / usage["map_size_bytes"]
        self.metrics.store_full.set(self._store_ratio)
        disk = shutil.disk_usage(self._settings.data_dir)
        disk_percent = 100 * (disk.total - disk.free) / disk.total
        if max(100 * self._store_ratio, disk_percent) >= self._sync.disk_warn_percent:
            log.warning(
                "storage is filling up while CDRs wait for HQ; nothing is dropped, but the "
                "box stops taking CDRs when it is full: restore the link to HQ, free disk "
                "space or raise store.map_size_mb",
                extra={
                    "store_used_percent": round(100 * self._store_ratio, 1),
                    "disk_used_percent": round(disk_percent, 1),
                },
            )

    def _status(self) -> Status:
        ratio = self._store_ratio
        health = {
            "backlog": self._backlog(),
            "store_used_percent": round(100 * ratio, 2),
            "alarms": store_alarms(100 * ratio, self._settings.store.alarm_percent),
            "recordings_quarantined": len(self.uploader.quarantined()) if self.uploader else 0,
        }
        live: list[dict[str, Any]] = []
        for part in self.features.status:
            values = part()
            health.update(values)
            if part in self.features.live_status:
                live.append(values)
        self._live_sent = live
        return Status(health)

    def _live_moved(self, now: float) -> bool:
        """Whether a live status part changed since the last status (looked at each second)."""
        if not self.features.live_status or now - self._live_checked < LIVE_CHECK_S:
            return False
        self._live_checked = now
        return [part() for part in self.features.live_status] != self._live_sent

    async def _send(self, sock: zmq.asyncio.Socket, message: Message) -> None:
        # Frames of 64 KiB and more (recording chunks) are handed to zmq without a copy.
        try:
            async with asyncio.timeout(5):
                await sock.send_multipart(encode(message), copy=False)
        except TimeoutError:
            raise SessionLost("send-timeout: HQ is not taking messages") from None

    async def _receive(self, sock: zmq.asyncio.Socket, wait_s: float) -> Message | None:
        if not await sock.poll(timeout=int(wait_s * 1000)):
            return None
        frames = await sock.recv_multipart()
        try:
            return decode(frames)
        except ProtocolError as err:
            self.metrics.protocol_errors.labels(error_id=err.error_id).inc()
            log.warning("bad message from HQ", extra={"error_id": err.error_id})
            return None
