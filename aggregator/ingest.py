"""The ingest service: the zmq adapter of HQ's sync sessions (drivers/sync/hub.py).

Theory of operation: ZAP admits only configured, unrevoked site keys and names each
connection by its site id (the ZAP User-Id), so every message is attributed to the site
its key is bound to — a site cannot send as another. The hub decodes each message in
one place and admits it or answers it at once (a bad one with an ``error``, counted;
it never stops the service). Admitted messages go to the handler a feature registered
for their type at the composition root (aggregator/ingest_features.py); the server
imports no feature. Database and file work runs on one worker thread, in arrival
order, so the event loop keeps receiving while a batch commits; a batch is acknowledged
only after its commit. Work other than the grouped stream (CDRs) goes to that thread
straight from the receive loop, and only work that has replies (most recording chunks
have none) comes back to the event loop one message at a time; the others are counted
as over in bulk, one wake-up of the loop for all that ended before it ran.

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
import concurrent.futures
import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import zmq
import zmq.asyncio

from aggregator.ingest_features import GroupedStream, IngestFeatures, Periodic
from aggregator.ingest_metrics import IngestMetrics
from aggregator.refusals import Refusals
from aggregator.settings import AggregatorSettings
from aggregator.site_gate import SiteGate
from aggregator.zap import ZAP_DOMAIN, EnrolledKeys, SiteAuthenticator, SiteKeys
from drivers.sync import keys
from drivers.sync.hub import Answer, Hub
from drivers.sync.protocol import (
    MAX_WIRE,
    ErrorReply,
    Message,
    RecordBatch,
    encode,
)

log = logging.getLogger(__name__)

# Batches of at most this many records are parsed on the event loop (see ``_parse``).
INLINE_PARSE_MAX = 8


class IngestError(Exception):
    """The ingest service cannot start."""


@dataclass(frozen=True)
class _Pending:
    """A batch of the grouped stream being decoded, waiting for the next group commit."""

    identity: bytes
    site_id: str
    batch: RecordBatch
    received: float
    parsed: asyncio.Future[Any]


class IngestServer:
    """The ROUTER endpoint; a lifecycle component.

    ``features`` are the handlers, streams, pushers and periodic tasks the composition
    root registered; ``refusals`` is shared with them (one budget per site); ``enrolled``
    reads the site keys enrolled in the database, which ZAP admits besides the YAML's.
    """

    name = "ingest"

    def __init__(
        self,
        settings: AggregatorSettings,
        metrics: IngestMetrics,
        refusals: Refusals,
        features: IngestFeatures,
        enrolled: EnrolledKeys,
    ) -> None:
        self._settings = settings
        self._enrolled = enrolled
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
        self.refusals = refusals
        self._features = features
        self._hub = Hub(settings.ingest.site_pending, features.handlers, features.streams)
        self._room = asyncio.Semaphore(settings.ingest.max_pending)
        self._tasks: set[asyncio.Task[None]] = set()
        self._cdr_queue: list[_Pending] = []
        self._quiet: list[str] = []  # sites of messages over without replies, see _done_quietly
        self._quiet_lock = threading.Lock()
        self._cdr_drain: asyncio.Task[None] | None = None
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        public, secret = self._server_keys()
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
        self._loops = [asyncio.create_task(self._push_due())]
        self._loops.append(asyncio.create_task(self._site_keys.watch(self._enrolled, self._worker)))
        self._loops += [asyncio.create_task(self._every(p)) for p in self._features.periodic]
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
        for task in [*self._loops, self._task]:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        self._decoder.shutdown(wait=True)
        self._worker.shutdown(wait=True)
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
        """Admit and queue one message; False when it was answered at once (no work)."""
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
        outcome = self._hub.receive(identity, site_id, [f.buffer for f in frames[1:]])
        if isinstance(outcome, Answer):
            error = outcome.error
            self._refuse(identity, site_id, error.error_id, error.message, error.ref)
            return False
        message = outcome.message
        self.metrics.pending.inc()
        grouped = self._features.grouped
        if grouped is not None and isinstance(message, grouped.kind):
            parsed = self._parse(loop, grouped, site_id, message.records)
            self._queue_cdrs(_Pending(identity, site_id, message, received, parsed))
            return True
        work = self._worker.submit(self._dispatch, site_id, message)
        work.add_done_callback(
            functools.partial(self._dispatched, loop, identity, site_id, message.TYPE)
        )
        return True

    def _parse(
        self,
        loop: asyncio.AbstractEventLoop,
        grouped: GroupedStream[Any],
        site_id: str,
        records: list[tuple[int, bytes]],
    ) -> asyncio.Future[Any]:
        """A batch parsed on the decode thread, or here if it is small.

        A site sends its CDRs one at a time while it keeps up, and handing such a batch
        to the decode thread and back costs more than parsing it (bench/bench_day.py).
        """
        if len(records) > INLINE_PARSE_MAX:
            return loop.run_in_executor(self._decoder, grouped.parse, site_id, records)
        parsed: asyncio.Future[Any] = loop.create_future()
        try:
            parsed.set_result(grouped.parse(site_id, records))
        except Exception as err:  # noqa: BLE001 - raised again where the group is stored
            parsed.set_exception(err)
        return parsed

    def _finished(self, site_id: str) -> None:
        """On the event loop: one message's work is over; its room is free again."""
        self._hub.finished(site_id)
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
                    await self._send_all(p.identity, self._dispatch_ack(p.batch))
                else:
                    self._refuse(p.identity, p.site_id, failure, "retry later", p.batch.TYPE)
                self._finished(p.site_id)

    async def _next_group(self) -> list[_Pending]:
        """The oldest batch once decoded, with every batch after it decoded by then.

        Large batches are decoded in arrival order on one thread and small ones at once
        on arrival, so the group is the ready prefix of the queue: batches commit in
        arrival order, and the commit never waits for a batch still being decoded.
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
            self._store_group(group)
        except Exception as err:  # noqa: BLE001 - a failed group never stops the ingest loop
            if len(group) == 1:
                return [self._failure(group[0].site_id, err)]
            log.warning("group commit failed; storing batch by batch", extra={"error": str(err)})
            return [self._ingest_alone(p) for p in group]
        return [None] * len(group)

    def _ingest_alone(self, pending: _Pending) -> str | None:
        try:
            self._store_group([pending])
        except Exception as err:  # noqa: BLE001 - a batch that cannot be stored fails alone
            return self._failure(pending.site_id, err)
        return None

    def _failure(self, site_id: str, err: Exception) -> str:
        if isinstance(err, sa.exc.SQLAlchemyError):
            self.metrics.db_errors.inc()
            log.error("database error during ingest", extra={"site": site_id, "error": str(err)})
            return "db-unavailable"
        log.exception("a batch could not be stored", extra={"site": site_id})
        return "ingest-failed"

    def _store_group(self, group: list[_Pending]) -> None:
        assert self._features.grouped is not None
        self._features.grouped.store([p.parsed.result() for p in group])

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
        if replies:
            loop.call_soon_threadsafe(self._answer, identity, site_id, replies)
        else:
            self._done_quietly(loop, site_id)

    def _done_quietly(self, loop: asyncio.AbstractEventLoop, site_id: str) -> None:
        """On the worker thread: a message without replies (most recording chunks) is over.

        Their rooms are freed in bulk: one wake-up of the event loop for all that end
        before it runs, not one per chunk.
        """
        with self._quiet_lock:
            self._quiet.append(site_id)
            if len(self._quiet) > 1:
                return
        loop.call_soon_threadsafe(self._free_quiet)

    def _free_quiet(self) -> None:
        """On the event loop: free the rooms of the messages ``_done_quietly`` collected."""
        with self._quiet_lock:
            done, self._quiet = self._quiet, []
        for site_id in done:
            self._finished(site_id)

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
        """On the worker: the registered handler; a stored batch is acknowledged."""
        replies = self._features.handlers[type(message)](site_id, message)
        return [*replies, *self._dispatch_ack(message)]

    def _dispatch_ack(self, message: Message) -> list[Message]:
        ack = self._hub.ack(message)
        return [] if ack is None else [ack]

    async def _push_due(self) -> None:
        """Send connected sites the snapshots, updates and commands they are missing."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._settings.routing.push_interval_s)
            try:
                pushes = await loop.run_in_executor(self._worker, self._due, self._hub.sites())
            except sa.exc.SQLAlchemyError as err:
                self.metrics.db_errors.inc()
                log.error("database error reading snapshots", extra={"error": str(err)})
                continue
            for site_id, message in pushes:
                await self.send_to_site(site_id, message)

    def _due(self, sites: list[str]) -> list[tuple[str, Message]]:
        return [push for pusher in self._features.pushers for push in pusher(sites)]

    async def _every(self, periodic: Periodic) -> None:
        """Run a feature's periodic task on the worker thread, now and every interval."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(self._worker, periodic.run)
            except (sa.exc.SQLAlchemyError, OSError) as err:
                log.error(f"{periodic.name} failed", extra={"error": str(err)})
            await asyncio.sleep(periodic.interval_s)

    async def send_to_site(self, site_id: str, message: Message) -> bool:
        """Send a message to a connected site; False when it is not connected."""
        identity = self._hub.connection(site_id)
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
