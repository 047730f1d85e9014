"""The sync client: a CurveZMQ DEALER that drains the CDR and recording outboxes.

Theory of operation: a session starts with ``hello`` and waits (bounded) for
``welcome``. It then keeps up to ``window`` CDR batches in flight, each read from the
outbox after the last one sent; an ``ack`` deletes exactly the acknowledged entries.
Recordings go one at a time beside the CDRs (see recordings.py). If an ack does not come
within ``ack_timeout_s``, or nothing at all is heard for a while, the session is
declared lost: the socket is closed and a new session starts after a jittered,
growing delay, sending everything still in the outbox again from the start — the
aggregator stores by (site, CDR id), so a repeat is harmless. Nothing leaves the outbox
without an ack, so HQ can be down for days; the only bound is the store's size, and
the client warns loudly as it fills.

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
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from appliance.compliance.service import OUTBOX as COMPLIANCE
from appliance.compliance.service import TOPIC as DNC
from appliance.compliance.service import ComplianceService
from appliance.gateway.sms_store import OUTBOX as SMS
from appliance.routing.service import TOPIC as ROUTING
from appliance.routing.service import ApplyResult, RoutingService
from appliance.settings import ApplianceSettings
from appliance.sim import SimService
from appliance.sim.commands import handles as sim_command
from appliance.store import Outbox, StateStore, Store
from appliance.store.alarm import store_alarms
from appliance.sync.metrics import SyncMetrics
from appliance.sync.recordings import RecordingUploader
from drivers.daemon.supervision import Supervisor
from drivers.daemon.version import __version__
from drivers.sync import keys
from drivers.sync.protocol import (
    Ack,
    CdrBatch,
    Command,
    CommandResult,
    ComplianceBatch,
    ErrorReply,
    Hello,
    Message,
    ProtocolError,
    RecCredit,
    RecDone,
    RecResume,
    SimStatus,
    SmsBatch,
    Snapshot,
    SnapshotRequest,
    SnapshotResult,
    Status,
    Update,
    Welcome,
    decode,
    encode,
)
from drivers.sync.records import command_detail

log = logging.getLogger(__name__)

SILENCE_FACTOR = 3
DRAIN_LIMIT = 64  # replies handled per pump turn, so acks and credits never queue up
SIM_STATUS_MIN_S = 1.0  # busy gateways change every second; HQ needs no more than that
CALLS_CHECK_S = 1.0  # calls in progress are looked at once a second, sent when they changed
CRASH_RECENT_FACTOR = 2.0

StoreProvider = Callable[[], Store]


class SessionLost(Exception):
    """The current session is unusable; the client reconnects."""


class SyncClient:
    """A lifecycle component; needs the store and ``routing`` started before it starts.

    Routing snapshots and updates are handed to ``routing``, the same instance the PBX
    looks routes up in; ``routing_health`` adds peer health and failover counts to
    ``status``, ``calls_active`` the calls in progress (a changed count is sent within
    about a second, for HQ's live activity page). On a SIM gateway, ``sim`` gets HQ's
    SIM commands and its status goes up as ``sim-status`` and its SMS from the ``sms``
    outbox; ``compliance`` gets the company do-not-call list (topic ``dnc``) and its
    refusals go up from the ``compliance`` outbox. Those two outboxes go one batch at a
    time each, kept until acknowledged.
    """

    name = "sync"

    def __init__(
        self,
        settings: ApplianceSettings,
        store: StoreProvider,
        metrics: SyncMetrics,
        routing: RoutingService,
        sim: SimService | None = None,
        compliance: ComplianceService | None = None,
        routing_health: Callable[[], dict[str, Any]] | None = None,
        calls_active: Callable[[], int] | None = None,
    ) -> None:
        self._settings = settings
        self._sync = settings.sync
        self._store = store
        self.metrics = metrics
        self._ctx: zmq.asyncio.Context | None = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._store_ratio = 0.0
        self._inflight: OrderedDict[int, tuple[list[int], float]] = OrderedDict()
        self._cursor = 0
        self._last_heard = 0.0
        self._last_status = 0.0
        self.uploader: RecordingUploader | None = None
        self.session_up = asyncio.Event()
        self.routing = routing
        self.sim = sim
        self.compliance = compliance
        self.routing_health = routing_health
        self.calls_active = calls_active
        self._calls_sent = 0
        self._calls_checked = 0.0
        self._sim_sent = (-1, 0.0)
        self._batch_inflight: dict[str, tuple[list[int], float]] = {}
        self.supervisor = Supervisor(
            "sync client", self._sync.reconnect_min_s, self._sync.reconnect_max_s,
            metrics.restarts.inc,
        )  # fmt: skip
        metrics.routing_version.set_function(lambda: self.routing.version)

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
                await self._session()
            except SessionLost as err:
                self.metrics.reconnects.labels(reason=str(err).split(":")[0]).inc()
                log.warning("sync session lost", extra={"reason": str(err)})
            finally:
                self.metrics.connected.set(0)
                self.session_up.clear()
            failures = (
                0
                if self._last_heard and time.monotonic() - self._last_heard < 5
                else (failures + 1)
            )
            await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        base = min(self._sync.reconnect_max_s, self._sync.reconnect_min_s * 2 ** min(failures, 16))
        return float(base * random.uniform(0.5, 1.5))

    async def _session(self) -> None:
        assert self._ctx is not None
        sock = self._ctx.socket(zmq.DEALER)
        sock.curve_publickey, sock.curve_secretkey = self._public, self._secret
        sock.curve_serverkey = self._sync.server_public_key.encode()
        sock.linger = 0
        sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        sock.connect(self._sync.endpoint)
        self._inflight.clear()
        self._cursor = 0
        self._sim_sent = (-1, 0.0)
        self._batch_inflight.clear()
        assert self.uploader is not None
        self.uploader.reset()
        try:
            await self._handshake(sock)
            while True:
                await self._pump(sock)
        finally:
            sock.close(linger=0)

    async def _handshake(self, sock: zmq.asyncio.Socket) -> None:
        await self._send(sock, self._hello())
        deadline = time.monotonic() + self._sync.hello_timeout_s
        while time.monotonic() < deadline:
            message = await self._receive(sock, deadline - time.monotonic())
            if isinstance(message, Welcome):
                self._last_heard = time.monotonic()
                self.metrics.connected.set(1)
                self.session_up.set()
                log.info("sync session up", extra={"endpoint": self._sync.endpoint})
                await self._send(sock, SnapshotRequest(ROUTING, self.routing.version))
                if self.compliance is not None:
                    await self._send(sock, SnapshotRequest(DNC, self.compliance.company_version))
                return
            if isinstance(message, ErrorReply):
                raise SessionLost(f"refused: {message.error_id}: {message.message}")
        raise SessionLost("no-welcome: HQ did not answer hello in time")

    def _hello(self) -> Hello:
        capabilities, versions = ["cdr", "recording", ROUTING], {ROUTING: self.routing.version}
        if self.sim is not None:
            capabilities += ["sim", SMS]
        if self.compliance is not None:
            capabilities.append(COMPLIANCE)
            versions[DNC] = self.compliance.company_version
        return Hello(
            self._settings.site_id,
            f"callmesh {__version__}",
            capabilities,
            self._backlog(),
            versions,
        )

    def _backlog(self) -> dict[str, int]:
        store = self._store()
        return {name: Outbox(store, name).pending() for name in ("cdr", "recording")}

    async def _pump(self, sock: zmq.asyncio.Socket) -> None:
        now = time.monotonic()
        await self._fill_window(sock, now)
        await self._send_batches(sock, now)
        await self._send_sim_status(sock, now)
        assert self.uploader is not None
        for message in await asyncio.to_thread(self.uploader.next_messages, now):
            await self._send(sock, message)
        if now - self._last_status > self._sync.status_interval_s or self._calls_moved(now):
            self._last_status = now
            await self._send(sock, self._status())
        wait_s = 0.5 if self._inflight else 0.2
        for _ in range(DRAIN_LIMIT):
            reply = await self._receive(sock, wait_s)
            if reply is None:
                break
            self._last_heard = time.monotonic()
            await self._dispatch(sock, reply)
            wait_s = 0.0
        self._check_timeouts()

    async def _fill_window(self, sock: zmq.asyncio.Socket, now: float) -> None:
        cdr = Outbox(self._store(), "cdr")
        while len(self._inflight) < self._sync.window:
            batch = await asyncio.to_thread(cdr.read_batch, self._cursor, self._sync.batch_size)
            if not batch:
                return
            seqs = [seq for seq, _ in batch]
            await self._send(sock, CdrBatch(batch))
            self._inflight[seqs[0]] = (seqs, now)
            self._cursor = seqs[-1]
            self.metrics.sent.inc(len(seqs))

    async def _send_batches(self, sock: zmq.asyncio.Socket, now: float) -> None:
        """Refused calls and SMS: one batch per outbox at a time, until acknowledged."""
        streams: list[tuple[str, type[ComplianceBatch | SmsBatch]]] = []
        if self.compliance is not None:
            streams.append((COMPLIANCE, ComplianceBatch))
        if self.sim is not None:
            streams.append((SMS, SmsBatch))
        for stream, kind in streams:
            if stream in self._batch_inflight:
                continue
            batch = await asyncio.to_thread(Outbox(self._store(), stream).read_batch, 0, 500)
            if batch:
                await self._send(sock, kind(batch))
                self._batch_inflight[stream] = ([seq for seq, _ in batch], now)

    async def _send_sim_status(self, sock: zmq.asyncio.Socket, now: float) -> None:
        """The SIMs' state when it changed (at most each second), and every status interval."""
        if self.sim is None:
            return
        revision, sent_at = self._sim_sent
        due = now - sent_at > self._settings.sim.status_interval_s
        if (revision == self.sim.revision and not due) or now - sent_at < SIM_STATUS_MIN_S:
            return
        self._sim_sent = (self.sim.revision, now)
        await self._send(sock, SimStatus(self.sim.records(), list(self.sim.switches)))

    async def _command(self, sock: zmq.asyncio.Socket, command: Command) -> None:
        if self.sim is not None and sim_command(command.kind):
            ok, detail = await self.sim.apply_command(
                command.command_id, command.kind, command.args
            )
        else:
            ok, detail = False, f"unknown command kind {command.kind!r}"
        await self._send(sock, CommandResult(command.command_id, ok, command_detail(detail)))

    async def _dnc_message(self, sock: zmq.asyncio.Socket, message: Snapshot | Update) -> None:
        """The company list comes whole; an update asks for the full list instead."""
        assert self.compliance is not None
        running = self.compliance.company_version
        if isinstance(message, Update):
            await self._send(sock, SnapshotRequest(DNC, running))
            return
        if message.version in (0, running):
            return
        ok, reason = await asyncio.to_thread(
            self.compliance.apply_company_dnc, message.version, message.data
        )
        running = self.compliance.company_version
        await self._send(sock, SnapshotResult(DNC, message.version, ok, running, reason))

    async def _dispatch(self, sock: zmq.asyncio.Socket, message: Message) -> None:
        assert self.uploader is not None
        if isinstance(message, Ack):
            await self._acked(message)
        elif isinstance(message, RecResume | RecCredit | RecDone):
            replies = await asyncio.to_thread(self.uploader.on_message, message, time.monotonic())
            for reply in replies:
                await self._send(sock, reply)
        elif isinstance(message, ErrorReply):
            self.metrics.protocol_errors.labels(error_id=message.error_id).inc()
            log.warning(
                "HQ refused a message",
                extra={"error_id": message.error_id, "detail": message.message, "ref": message.ref},
            )
            self.uploader.on_message(message, time.monotonic())
            if message.ref == "cdr-batch" or message.error_id == "db-unavailable":
                raise SessionLost(f"hq-error: {message.error_id}")
        elif isinstance(message, Command):
            await self._command(sock, message)
        elif isinstance(message, Snapshot | Update) and message.topic == ROUTING:
            await self._routing_message(sock, message)
        elif isinstance(message, Snapshot | Update) and message.topic == DNC and self.compliance:
            await self._dnc_message(sock, message)
        elif isinstance(message, Snapshot):
            StateStore(self._store()).put(
                f"snapshot:{message.topic}", {"version": message.version, "data": message.data}
            )

    async def _routing_message(self, sock: zmq.asyncio.Socket, message: Snapshot | Update) -> None:
        """Apply off the loop (a big table takes a while to build); report the outcome."""
        result: ApplyResult
        if isinstance(message, Snapshot):
            result = await asyncio.to_thread(
                self.routing.apply_snapshot, message.version, message.data
            )
        else:
            result = await asyncio.to_thread(
                self.routing.apply_update, message.version, message.base_version, message.changes
            )
        self.metrics.routing_messages.labels(message=message.TYPE, outcome=result.outcome).inc()
        if result.outcome == "resync":
            await self._send(sock, SnapshotRequest(ROUTING, result.running))
        elif result.outcome in ("applied", "refused"):
            ok = not result.refused
            await self._send(
                sock, SnapshotResult(ROUTING, result.version, ok, result.running, result.reason)
            )

    async def _acked(self, ack: Ack) -> None:
        if ack.stream in (COMPLIANCE, SMS) and ack.seqs:
            await asyncio.to_thread(Outbox(self._store(), ack.stream).ack, ack.seqs)
            self._batch_inflight.pop(ack.stream, None)
        if ack.stream != "cdr" or not ack.seqs:
            return
        removed = await asyncio.to_thread(Outbox(self._store(), "cdr").ack, ack.seqs)
        self.metrics.acked.inc(removed)
        self._inflight.pop(ack.seqs[0], None)

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        if self._inflight:
            oldest = next(iter(self._inflight.values()))[1]
            if now - oldest > self._sync.ack_timeout_s:
                raise SessionLost(f"ack-timeout: no ack for {self._sync.ack_timeout_s:.0f}s")
        for stream, (_, sent_at) in self._batch_inflight.items():
            if now - sent_at > self._sync.ack_timeout_s:
                raise SessionLost(f"ack-timeout: no ack for {stream} records")
        assert self.uploader is not None
        if self.uploader.stalled(now, self._sync.ack_timeout_s):
            raise SessionLost("recording-stalled: no upload progress")
        silence = SILENCE_FACTOR * self._sync.status_interval_s
        if now - self._last_heard > silence and (self._inflight or self.uploader.current):
            raise SessionLost("silence: nothing heard from HQ")

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

    def _calls_moved(self, now: float) -> bool:
        """Whether calls in progress changed since the last status (looked at once a second)."""
        if self.calls_active is None or now - self._calls_checked < CALLS_CHECK_S:
            return False
        self._calls_checked = now
        return self.calls_active() != self._calls_sent

    def _status(self) -> Status:
        ratio = self._store_ratio
        health = {
            "backlog": self._backlog(),
            "store_used_percent": round(100 * ratio, 2),
            "alarms": store_alarms(100 * ratio, self._settings.store.alarm_percent),
            "snapshots": {ROUTING: self.routing.version},
            "routing_refused": self.routing.refused,
            "recordings_quarantined": len(self.uploader.quarantined()) if self.uploader else 0,
        }
        if self.routing_health is not None:
            health.update(self.routing_health())
        if self.calls_active is not None:
            self._calls_sent = health["calls_active"] = self.calls_active()
        return Status(health)

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
