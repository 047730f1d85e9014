"""The ingest service: a CurveZMQ ROUTER that appliances' sync clients connect to.

Theory of operation: ZAP admits only configured, unrevoked site keys and names each
connection by its site id (the ZAP User-Id), so every message is attributed to the site
its key is bound to — a site cannot send as another. Messages are decoded in one place;
a bad one is answered with an ``error`` and counted, and never stops the service.
Database and file work runs on one worker thread, in arrival order, so the event loop
keeps receiving while a batch commits; the ack is sent only after the commit. Work
other than CDR batches goes to that thread straight from the receive loop, and only
work that has replies (most recording chunks have none) comes back to the event loop.

Exceptions::

    IngestError        the socket cannot be bound or the server key cannot be loaded
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
import zmq
import zmq.asyncio

from aggregator.directory.push import SnapshotPusher
from aggregator.fleet import store as fleet
from aggregator.fleet.push import CommandPusher
from aggregator.ingest_metrics import IngestMetrics
from aggregator.recordings import RecordingReceiver
from aggregator.settings import AggregatorSettings
from aggregator.store.cdr_rows import ParsedBatch, parse_batch
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import insert
from aggregator.store.schema import commands, sites
from aggregator.store.sms import store_sms
from aggregator.zap import ZAP_DOMAIN, SiteAuthenticator, SiteKeys
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

log = logging.getLogger(__name__)


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
        self._site_keys = SiteKeys(settings, metrics.peers_rejected)
        self._ctx: zmq.asyncio.Context | None = None
        self._auth: SiteAuthenticator | None = None
        self._sock: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ingest-db")
        # Decoding the next batch overlaps the current commit (SQLite releases the GIL).
        self._decoder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ingest-decode")
        self._peers: dict[str, bytes] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._cdr_queue: list[_Pending] = []
        self._cdr_drain: asyncio.Task[None] | None = None
        self.cdr_store: CdrStore | None = None
        self.receiver: RecordingReceiver | None = None
        self._pusher = SnapshotPusher(engine)
        self._commands = CommandPusher(engine)
        self._push: asyncio.Task[None] | None = None
        self._sweep: asyncio.Task[None] | None = None

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
        sock = self._ctx.socket(zmq.ROUTER)
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.zap_domain = ZAP_DOMAIN.encode()
        sock.linger = 0
        sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
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
        for task in (self._sweep, self._push, self._task):
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
            frames = await self._sock.recv_multipart(copy=False)
            received = time.perf_counter()
            identity = frames[0].bytes
            site_id = str(frames[1].get("User-Id")) if len(frames) > 1 else ""
            if not site_id:
                self.metrics.peers_rejected.labels(reason="no-site").inc()
                continue
            try:
                message = decode([f.buffer for f in frames[1:]])
            except ProtocolError as err:
                self._refuse(identity, site_id, err.error_id, err.message, None)
                continue
            self._peers[site_id] = identity
            if isinstance(message, CdrBatch):
                parsed = loop.run_in_executor(self._decoder, parse_batch, site_id, message.records)
                self._queue_cdrs(_Pending(identity, site_id, message, received, parsed))
                continue
            work = self._worker.submit(self._dispatch, site_id, message)
            work.add_done_callback(
                functools.partial(self._dispatched, loop, identity, site_id, message.TYPE)
            )

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
            try:
                await loop.run_in_executor(self._worker, self._ingest_group, group)
            except sa.exc.SQLAlchemyError as err:
                self.metrics.db_errors.inc()
                log.error("database error during ingest", extra={"error": str(err)})
                for p in group:
                    self._refuse(
                        p.identity, p.site_id, "db-unavailable", "retry later", "cdr-batch"
                    )
                continue
            for p in group:
                self.metrics.latency.observe(time.perf_counter() - p.received)
                await self._send(p.identity, Ack("cdr", [seq for seq, _ in p.batch.records]))

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

    def _ingest_group(self, group: list[_Pending]) -> None:
        assert self.cdr_store is not None
        parsed = [p.parsed.result() for p in group]
        results = self.cdr_store.store_many(parsed)
        for p, result in zip(group, results, strict=True):
            self.metrics.cdrs.labels(site=p.site_id).inc(result.inserted)
            self.metrics.duplicates.labels(site=p.site_id).inc(result.duplicates)
            self.metrics.rejected_records.labels(site=p.site_id).inc(result.rejected)

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
            loop.call_soon_threadsafe(
                self._refuse, identity, site_id, "db-unavailable", "retry later", what
            )
            return
        except OSError as err:
            log.error("storage error during ingest", extra={"site": site_id, "error": str(err)})
            loop.call_soon_threadsafe(
                self._refuse, identity, site_id, "storage-unavailable", "retry later", what
            )
            return
        if replies:
            loop.call_soon_threadsafe(self._reply, identity, replies)

    def _dispatch(self, site_id: str, message: Message) -> list[Message]:
        handler = _HANDLERS.get(type(message))
        if handler is None:
            return [ErrorReply("unexpected-message", f"{message.TYPE} is not sent upstream")]
        return handler(self, site_id, message)

    def _hello(self, site_id: str, hello: Message) -> list[Message]:
        assert isinstance(hello, Hello)
        if hello.site_id != site_id:
            self.metrics.protocol_errors.labels(error_id="site-mismatch").inc()
            log.warning(
                "peer claims another site", extra={"site": site_id, "claimed": hello.site_id}
            )
            return [ErrorReply("site-mismatch", f"this key belongs to site {site_id!r}", "hello")]
        now = int(time.time() * 1000)
        backlog = int(hello.backlog.get("cdr", 0))
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
        backlog = int(status.health.get("backlog", {}).get("cdr", 0))
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
        with self._engine().begin() as conn:
            result = fleet.store_status(conn, site_id, status.sims, status.switches)
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
        with self._engine().begin() as conn:
            fleet.store_refusals(conn, site_id, batch.records)
        return [Ack("compliance", [seq for seq, _ in batch.records])]

    def _sms_batch(self, site_id: str, batch: Message) -> list[Message]:
        assert isinstance(batch, SmsBatch)
        with self._engine().begin() as conn:
            store_sms(conn, site_id, batch.records)
        return [Ack("sms", [seq for seq, _ in batch.records])]

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
        log.warning(
            "refused a message", extra={"site": site_id, "error_id": error_id, "detail": message}
        )
        self._reply(identity, [ErrorReply(error_id, message, ref)])

    def _reply(self, identity: bytes, replies: list[Message]) -> None:
        task = asyncio.create_task(self._send_all(identity, replies))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_all(self, identity: bytes, replies: list[Message]) -> None:
        for reply in replies:
            await self._send(identity, reply)


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
