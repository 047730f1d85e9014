"""The ingest service: a CurveZMQ ROUTER that appliances' sync clients connect to.

Theory of operation: ZAP admits only configured, unrevoked site keys and names each
connection by its site id (the ZAP User-Id), so every message is attributed to the site
its key is bound to — a site cannot send as another. Messages are decoded in one place;
a bad one is answered with an ``error`` and counted, and never stops the service.
Database and file work runs on one worker thread, in arrival order, so the event loop
keeps receiving while a batch commits; the ack is sent only after the commit. Work
other than CDR batches goes to that thread straight from the receive loop, and only
work that has replies (most recording chunks have none) comes back to the event loop.

A bad site cannot hurt the others: every record inside a batch is parsed into its typed
record (drivers/sync/records.py) and an invalid one is refused alone, counted per site
and acknowledged with its batch, so the site's outbox moves on. A group commit that
fails is retried batch by batch, so one batch can only fail itself. libzmq drops
connections that send frames over ``MAX_WIRE`` (ZMQ_MAXMSGSIZE) and queues at most
``receive_hwm`` messages per connection; HQ holds at most ``max_pending`` messages
being worked on (then it stops reading, which pushes back through libzmq) and at most
``site_pending`` per site (more are refused ``site-busy`` without any work). A site
that has spent its budget of refusals (aggregator/refusals.py) has its messages dropped
undecoded and unanswered (counted as ``site-throttled``) until the budget refills.
Dropping still leaves libzmq decrypting the flood, so that site is also banned at the
transport (aggregator/site_gate.py): its connections are cut and ZAP refuses its key for
``ban_s``; so is a site past its byte budget.

Exceptions::

    IngestError        the socket cannot be bound or the server key cannot be loaded
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
import zmq
import zmq.asyncio

from aggregator.directory.push import SnapshotPusher
from aggregator.fleet import store as fleet
from aggregator.fleet.push import CommandPusher
from aggregator.ingest_metrics import IngestMetrics
from aggregator.recordings import RecordingReceiver
from aggregator.refusals import Refusals
from aggregator.settings import AggregatorSettings
from aggregator.site_gate import SiteGate
from aggregator.store.cdr_rows import ParsedBatch, parse_batch
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import insert
from aggregator.store.schema import commands, sites
from aggregator.store.sms import store_sms
from aggregator.zap import ZAP_DOMAIN, SiteAuthenticator, SiteKeys
from drivers.sync import keys
from drivers.sync.protocol import (
    MAX_WIRE,
    Ack,
    CdrBatch,
    Command,
    CommandResult,
    ComplianceBatch,
    ErrorReply,
    Hello,
    Message,
    ProtocolError,
    RecChunk,
    RecOffer,
    SimStatus,
    SmsBatch,
    SnapshotRequest,
    SnapshotResult,
    Status,
    Welcome,
    decode,
    encode,
)
from drivers.sync.records import RecordError, parse_refused_call, parse_sim, parse_switch

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class IngestError(Exception):
    """The ingest service cannot start."""


@dataclass(frozen=True)
class _Pending:
    """A CDR batch being decoded, waiting for the next group commit."""

    identity: bytes
    site_id: str
    batch: CdrBatch
    received: float
    parsed: asyncio.Future[ParsedBatch]


class IngestServer:
    """The ROUTER endpoint; a lifecycle component."""

    name = "ingest"

    def __init__(
        self,
        settings: AggregatorSettings,
        engine: Callable[[], sa.Engine],
        metrics: IngestMetrics,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self.metrics = metrics
        budget = settings.ingest
        self._gate = SiteGate(
            budget.ban_s,
            budget.site_byte_rate_mb * 1e6,
            budget.site_byte_burst_mb * 1e6,
            metrics.sites_banned,
        )
        self._site_keys = SiteKeys(settings, metrics.peers_rejected, self._gate)
        self._ctx: zmq.asyncio.Context | None = None
        self._auth: SiteAuthenticator | None = None
        self._sock: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ingest-db")
        # Decoding the next batch overlaps the current commit (SQLite releases the GIL).
        self._decoder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ingest-decode")
        self._peers: dict[str, bytes] = {}
        self.refusals = Refusals(metrics.records_refused, budget.refusal_rate, budget.refusal_burst)
        self._room = asyncio.Semaphore(settings.ingest.max_pending)
        self._site_pending: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._cdr_queue: list[_Pending] = []
        self._cdr_drain: asyncio.Task[None] | None = None
        self.cdr_store: CdrStore | None = None
        self.receiver: RecordingReceiver | None = None
        self._pusher = SnapshotPusher(engine)
        self._commands = CommandPusher(engine)
        self._push: asyncio.Task[None] | None = None
        self._sweep: asyncio.Task[None] | None = None
        self._keys_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        public, secret = self._server_keys()
        engine = self._engine()
        self.cdr_store = CdrStore(engine)
        self.receiver = RecordingReceiver(
            engine,
            self._settings.recordings_dir(),
            self._settings.ingest.chunk_credit,
            self._settings.recordings,
            self.metrics,
        )
        self._ctx = zmq.asyncio.Context()
        self._auth = SiteAuthenticator(self._ctx, self._site_keys)
        self._auth.start()
        self._auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self._site_keys)
        self._keys_watch = asyncio.create_task(self._site_keys.watch(self._engine))
        sock = self._ctx.socket(zmq.ROUTER)
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.zap_domain = ZAP_DOMAIN.encode()
        sock.linger = 0
        sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_WIRE)
        sock.rcvhwm = self._settings.ingest.receive_hwm
        try:
            sock.bind(self._settings.ingest.bind)
        except zmq.ZMQError as err:
            sock.close()
            self._auth.stop()
            self._ctx.term()
            raise IngestError(f"cannot bind ingest {self._settings.ingest.bind}: {err}") from None
        self._sock = sock
        self._task = asyncio.create_task(self._serve())
        self._push = asyncio.create_task(self._push_snapshots())
        self._sweep = asyncio.create_task(self._sweep_recordings())
        log.info("ingest listening", extra={"address": self._settings.ingest.bind})

    def _server_keys(self) -> tuple[bytes, bytes]:
        path = self._settings.key_file()
        if self._settings.ingest.key_file is None and not path.exists():
            keys.generate(path.parent, path.name.removesuffix(".key_secret"))
            log.info("created the aggregator's CurveZMQ keypair", extra={"path": str(path)})
        try:
            return keys.load_secret(path)
        except keys.KeyFileError as err:
            raise IngestError(f"ingest server key: {err}") from None

    async def stop(self) -> None:
        for task in (self._keys_watch, self._sweep, self._push, self._task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        self._decoder.shutdown(wait=True)
        self._worker.shutdown(wait=True)
        if self.receiver is not None:
            self.receiver.close()
        if self._sock is not None:
            self._sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if self._ctx is not None:
            self._ctx.term()

    async def _serve(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            # Back-pressure: with max_pending messages in work, stop reading until one ends.
            await self._room.acquire()
            frames = await self._sock.recv_multipart(copy=False)
            if not self._take(loop, frames):
                self._room.release()

    def _take(self, loop: asyncio.AbstractEventLoop, frames: list[zmq.Frame]) -> bool:
        """Decode and queue one message; False when it was answered at once (no work)."""
        received = time.perf_counter()
        identity = frames[0].bytes
        site_id = str(frames[1].get("User-Id")) if len(frames) > 1 else ""
        if not site_id:
            self.metrics.peers_rejected.labels(reason="no-site").inc()
            return False
        if not self._gate.admit(site_id, frames[1].get(zmq.SRCFD), _size(frames)):
            self.metrics.records_refused.labels(
                site=site_id, stream="message", error_id="site-banned"
            ).inc()
            return False
        if self.refusals.throttled(site_id):
            self._gate.ban(site_id, "refusal-budget")
            # Neither decoded nor answered nor charged: a flood costs HQ a counter per message.
            self.metrics.records_refused.labels(
                site=site_id, stream="message", error_id="site-throttled"
            ).inc()
            return False
        try:
            message = decode([f.buffer for f in frames[1:]])
        except ProtocolError as err:
            self._refuse(identity, site_id, err.error_id, err.message, None)
            return False
        self._peers[site_id] = identity
        pending = self._site_pending.get(site_id, 0)
        if pending >= self._settings.ingest.site_pending:
            self._refuse(identity, site_id, "site-busy", "too much in flight", message.TYPE)
            return False
        self._site_pending[site_id] = pending + 1
        self.metrics.pending.inc()
        if isinstance(message, CdrBatch):
            parsed = loop.run_in_executor(self._decoder, self._parse, site_id, message.records)
            self._queue_cdrs(_Pending(identity, site_id, message, received, parsed))
            return True
        work = self._worker.submit(self._dispatch, site_id, message)
        work.add_done_callback(
            functools.partial(self._dispatched, loop, identity, site_id, message.TYPE)
        )
        return True

    def _finished(self, site_id: str) -> None:
        """On the event loop: one message's work is over; its room is free again."""
        self._site_pending[site_id] -= 1
        self.metrics.pending.dec()
        self._room.release()

    def _queue_cdrs(self, pending: _Pending) -> None:
        """Group commit: batches decoded while one commits share the next commit."""
        self._cdr_queue.append(pending)
        if self._cdr_drain is None or self._cdr_drain.done():
            self._cdr_drain = asyncio.create_task(self._drain_cdrs())
            self._tasks.add(self._cdr_drain)
            self._cdr_drain.add_done_callback(self._tasks.discard)

    async def _drain_cdrs(self) -> None:
        loop = asyncio.get_running_loop()
        while self._cdr_queue:
            group = await self._next_group()
            failures = await loop.run_in_executor(self._worker, self._ingest_group, group)
            for p, failure in zip(group, failures, strict=True):
                if failure is None:
                    self.metrics.latency.observe(time.perf_counter() - p.received)
                    await self._send(p.identity, Ack("cdr", [seq for seq, _ in p.batch.records]))
                else:
                    self._refuse(p.identity, p.site_id, failure, "retry later", "cdr-batch")
                self._finished(p.site_id)

    async def _next_group(self) -> list[_Pending]:
        """The oldest batch once decoded, with every batch after it decoded by then.

        Batches are decoded in arrival order on one thread, so the ready ones are a prefix
        of the queue; the commit never waits for a batch that is still being decoded.
        """
        await asyncio.wait([self._cdr_queue[0].parsed])
        queue = self._cdr_queue
        ready = next((i for i, p in enumerate(queue) if not p.parsed.done()), len(queue))
        group, self._cdr_queue = queue[:ready], queue[ready:]
        return group

    def _ingest_group(self, group: list[_Pending]) -> list[str | None]:
        """On the worker: store a group in one commit; per batch, None or why it failed.

        If the group cannot be stored, each batch is stored alone, so a batch that cannot
        be stored fails only itself, never another site's batch.
        """
        try:
            self._store_cdrs(group)
        except Exception as err:
            if len(group) == 1:
                return [self._failure(group[0].site_id, err)]
            log.warning("group commit failed; storing batch by batch", extra={"error": str(err)})
            return [self._ingest_alone(p) for p in group]
        return [None] * len(group)

    def _ingest_alone(self, pending: _Pending) -> str | None:
        try:
            self._store_cdrs([pending])
        except Exception as err:
            return self._failure(pending.site_id, err)
        return None

    def _failure(self, site_id: str, err: Exception) -> str:
        if isinstance(err, sa.exc.SQLAlchemyError):
            self.metrics.db_errors.inc()
            log.error("database error during ingest", extra={"site": site_id, "error": str(err)})
            return "db-unavailable"
        log.exception("a batch could not be stored", extra={"site": site_id})
        return "ingest-failed"

    def _store_cdrs(self, group: list[_Pending]) -> None:
        assert self.cdr_store is not None
        parsed = [p.parsed.result() for p in group]
        results = self.cdr_store.store_many(parsed)
        for batch, result in zip(parsed, results, strict=True):
            self.metrics.cdrs.labels(site=batch.site_id).inc(result.inserted)
            self.metrics.duplicates.labels(site=batch.site_id).inc(result.duplicates)
            self.metrics.rejected_records.labels(site=batch.site_id).inc(result.rejected)

    def _parse(self, site_id: str, records: list[tuple[int, bytes]]) -> ParsedBatch:
        """On the decoder thread: parse a batch and charge its refusals to the site now,
        so a site sending garbage is throttled before its next batches are decoded."""
        batch = parse_batch(site_id, records)
        for error_id, count in collections.Counter(batch.error_ids).items():
            self.refusals.refused(site_id, "cdr", error_id, "invalid CDR", count)
        return batch

    def _dispatched(
        self,
        loop: asyncio.AbstractEventLoop,
        identity: bytes,
        site_id: str,
        what: str,
        work: concurrent.futures.Future[list[Message]],
    ) -> None:
        """On the worker thread: hand the replies of ``work``, if any, to the event loop."""
        try:
            replies = work.result()
        except sa.exc.SQLAlchemyError as err:
            self.metrics.db_errors.inc()
            log.error("database error during ingest", extra={"site": site_id, "error": str(err)})
            replies = [ErrorReply("db-unavailable", "retry later", what)]
        except OSError as err:
            log.error("storage error during ingest", extra={"site": site_id, "error": str(err)})
            replies = [ErrorReply("storage-unavailable", "retry later", what)]
        except Exception:
            log.exception("a message could not be handled", extra={"site": site_id, "type": what})
            replies = [ErrorReply("ingest-failed", "the message could not be handled", what)]
        loop.call_soon_threadsafe(self._answer, identity, site_id, replies)

    def _answer(self, identity: bytes, site_id: str, replies: list[Message]) -> None:
        """On the event loop: send the replies of one message and free its room."""
        self._finished(site_id)
        for reply in replies:
            if isinstance(reply, ErrorReply):
                self.metrics.protocol_errors.labels(error_id=reply.error_id).inc()
                self.refusals.refused(site_id, "message", reply.error_id, reply.message)
        if replies:
            self._reply(identity, replies)

    def _dispatch(self, site_id: str, message: Message) -> list[Message]:
        handler = _HANDLERS.get(type(message))
        if handler is None:
            return [ErrorReply("unexpected-message", f"{message.TYPE} is not sent upstream")]
        return handler(self, site_id, message)

    def _hello(self, site_id: str, hello: Message) -> list[Message]:
        assert isinstance(hello, Hello)
        if hello.site_id != site_id:
            log.warning(
                "peer claims another site", extra={"site": site_id, "claimed": hello.site_id}
            )
            return [ErrorReply("site-mismatch", f"this key belongs to site {site_id!r}", "hello")]
        now = int(time.time() * 1000)
        backlog = _count(hello.backlog.get("cdr"))
        row = {
            "site_id": site_id,
            "first_seen_ms": now,
            "last_seen_ms": now,
            "software": hello.software[:64],
            "backlog_cdr": backlog,
        }
        stmt = insert(self._engine(), sites)
        stmt = stmt.on_conflict_do_update(
            index_elements=["site_id"],
            set_={"last_seen_ms": now, "software": row["software"], "backlog_cdr": backlog},
        )
        with self._engine().begin() as conn:
            conn.execute(stmt, row)
            fleet.ensure_dnc_row(conn, site_id)
            self._pusher.on_hello(conn, site_id, hello.snapshots)
            pending = conn.execute(
                sa.select(commands)
                .where(commands.c.site_id == site_id, commands.c.done_ms.is_(None))
                .order_by(commands.c.created_ms)
            ).all()
        self.metrics.backlog.labels(site=site_id).set(backlog)
        self._commands.on_hello(site_id, [c.command_id for c in pending])
        replies: list[Message] = [Welcome(time.time())]
        replies += [Command(c.command_id, c.kind, dict(c.args)) for c in pending]
        return replies

    def _status(self, site_id: str, status: Message) -> list[Message]:
        assert isinstance(status, Status)
        reported = status.health.get("backlog")
        backlog = _count(reported.get("cdr") if isinstance(reported, dict) else None)
        with self._engine().begin() as conn:
            conn.execute(
                sa.update(sites)
                .where(sites.c.site_id == site_id)
                .values(
                    health=status.health,
                    backlog_cdr=backlog,
                    last_seen_ms=int(time.time() * 1000),
                )
            )
            running = status.health.get("snapshots")
            if isinstance(running, dict):
                self._pusher.on_running(conn, site_id, running)
        self.metrics.backlog.labels(site=site_id).set(backlog)
        return []

    def _rec_offer(self, site_id: str, offer: Message) -> list[Message]:
        assert isinstance(offer, RecOffer)
        assert self.receiver is not None
        return [self.receiver.offer(site_id, offer)]

    def _rec_chunk(self, site_id: str, chunk: Message) -> list[Message]:
        assert isinstance(chunk, RecChunk)
        assert self.receiver is not None
        self.metrics.recording_bytes.inc(len(chunk.data))
        reply = self.receiver.chunk(site_id, chunk)
        return [] if reply is None else [reply]

    def _snapshot_request(self, site_id: str, request: Message) -> list[Message]:
        assert isinstance(request, SnapshotRequest)
        with self._engine().begin() as conn:
            return self._pusher.on_request(conn, site_id, request.topic, request.have_version)

    def _snapshot_result(self, site_id: str, result: Message) -> list[Message]:
        assert isinstance(result, SnapshotResult)
        with self._engine().begin() as conn:
            self._pusher.on_result(conn, site_id, result)
        if not result.ok:
            log.warning(
                "site refused a snapshot",
                extra={"site": site_id, "version": result.version, "reason": result.reason},
            )
        return []

    def _command_result(self, site_id: str, result: Message) -> list[Message]:
        assert isinstance(result, CommandResult)
        with self._engine().begin() as conn:
            conn.execute(
                sa.update(commands)
                .where(commands.c.command_id == result.command_id, commands.c.site_id == site_id)
                .values(done_ms=int(time.time() * 1000), ok=result.ok, detail=result.detail[:512])
            )
        return []

    def _sim_status(self, site_id: str, status: Message) -> list[Message]:
        assert isinstance(status, SimStatus)
        sims = self._valid(site_id, "sim", parse_sim, status.sims)
        switches = self._valid(site_id, "sim", parse_switch, status.switches)
        with self._engine().begin() as conn:
            result = fleet.store_status(
                conn, site_id, [s.doc for s in sims], [s.doc for s in switches]
            )
        for iccid, owner in result.refused.items():
            self.metrics.sim_records_refused.labels(
                site=site_id, reason=fleet.OWNED_ELSEWHERE
            ).inc()
            log.warning(
                "SIM record refused: another site holds this SIM; move it at HQ if it moved",
                extra={"error_id": fleet.OWNED_ELSEWHERE, "site": site_id,
                       "iccid": iccid, "owner": owner},
            )  # fmt: skip
        return []

    def _compliance_batch(self, site_id: str, batch: Message) -> list[Message]:
        assert isinstance(batch, ComplianceBatch)
        valid = self._valid(site_id, "compliance", _checked(parse_refused_call), batch.records)
        if valid:
            with self._engine().begin() as conn:
                fleet.store_refusals(conn, site_id, valid)
        return [Ack("compliance", [seq for seq, _ in batch.records])]

    def _sms_batch(self, site_id: str, batch: Message) -> list[Message]:
        assert isinstance(batch, SmsBatch)

        def refused(_seq: int, err: RecordError) -> None:
            self.refusals.refused(site_id, "sms", err.error_id, err.message)

        with self._engine().begin() as conn:
            store_sms(conn, site_id, batch.records, refused)
        return [Ack("sms", [seq for seq, _ in batch.records])]

    def _valid(
        self, site_id: str, stream: str, parse: Callable[[Any], _T], values: Iterable[Any]
    ) -> list[_T]:
        """The records among ``values`` that parse; each other one is refused alone."""
        valid = []
        for value in values:
            try:
                valid.append(parse(value))
            except RecordError as err:
                self.refusals.refused(site_id, stream, err.error_id, err.message)
        return valid

    def _due(self, peers: list[str]) -> list[tuple[str, Message]]:
        return self._pusher.due(peers) + self._commands.due(peers)

    async def _push_snapshots(self) -> None:
        """Send connected sites the snapshots, updates and commands they are missing."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._settings.routing.push_interval_s)
            try:
                pushes = await loop.run_in_executor(self._worker, self._due, list(self._peers))
            except sa.exc.SQLAlchemyError as err:
                self.metrics.db_errors.inc()
                log.error("database error reading snapshots", extra={"error": str(err)})
                continue
            for site_id, message in pushes:
                await self.send_to_site(site_id, message)

    async def _sweep_recordings(self) -> None:
        """Expire idle uploads and old recordings, on the thread that owns the uploads."""
        loop = asyncio.get_running_loop()
        assert self.receiver is not None
        while True:
            try:
                await loop.run_in_executor(self._worker, self.receiver.sweep)
            except (sa.exc.SQLAlchemyError, OSError) as err:
                log.error("recording sweep failed", extra={"error": str(err)})
            await asyncio.sleep(self._settings.recordings.sweep_interval_s)

    async def send_to_site(self, site_id: str, message: Message) -> bool:
        """Send a message to a connected site; False when it is not connected."""
        identity = self._peers.get(site_id)
        if identity is None:
            return False
        await self._send(identity, message)
        return True

    async def _send(self, identity: bytes, message: Message) -> None:
        assert self._sock is not None
        try:
            await self._sock.send_multipart([identity, *encode(message)])
        except zmq.ZMQError as err:
            log.info("reply not delivered", extra={"error": str(err)})

    def _refuse(
        self, identity: bytes, site_id: str, error_id: str, message: str, ref: str | None
    ) -> None:
        self.metrics.protocol_errors.labels(error_id=error_id).inc()
        self.refusals.refused(site_id, "message", error_id, message)
        self._reply(identity, [ErrorReply(error_id, message, ref)])

    def _reply(self, identity: bytes, replies: list[Message]) -> None:
        task = asyncio.create_task(self._send_all(identity, replies))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_all(self, identity: bytes, replies: list[Message]) -> None:
        for reply in replies:
            await self._send(identity, reply)


def _size(frames: list[zmq.Frame]) -> int:
    """The bytes of one message, routing id included."""
    return sum(f.buffer.nbytes for f in frames)


def _count(value: Any) -> int:
    """A count a site reports, or 0 when it is not a count."""
    return value if type(value) is int and 0 <= value < 2**53 else 0


def _checked(parse: Callable[[bytes], object]) -> Callable[[tuple[int, bytes]], tuple[int, bytes]]:
    """A check of one ``[seq, bytes]`` entry that keeps the entry when its record parses."""

    def check(entry: tuple[int, bytes]) -> tuple[int, bytes]:
        parse(entry[1])
        return entry

    return check


_HANDLERS: dict[type[Message], Callable[[IngestServer, str, Message], list[Message]]] = {
    Hello: IngestServer._hello,
    Status: IngestServer._status,
    RecOffer: IngestServer._rec_offer,
    RecChunk: IngestServer._rec_chunk,
    SnapshotRequest: IngestServer._snapshot_request,
    SnapshotResult: IngestServer._snapshot_result,
    CommandResult: IngestServer._command_result,
    SimStatus: IngestServer._sim_status,
    ComplianceBatch: IngestServer._compliance_batch,
    SmsBatch: IngestServer._sms_batch,
}
