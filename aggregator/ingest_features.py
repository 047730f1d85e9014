"""What HQ's features handle on the sync link, registered at the composition root.

The ingest server imports no feature. A feature adds, in ``aggregator/service.py``:

- a handler (``handle``) for a message type sites send, run on the ingest worker
  thread in arrival order; it returns the replies;
- a batch stream (``add_stream``): its batches are stored by the feature and then
  acknowledged by the session (``ack(name, seqs)``);
- the grouped stream (``group``): batches parsed on the decode thread and stored many
  per commit (CDRs);
- a pusher (``push``): messages due to connected sites (snapshots, commands);
- a periodic task (``every``): run on the worker thread (sweeps).

docs/sync.md ("Adding a stream") walks through one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from drivers.sync.protocol import Message, RecordBatch

P = TypeVar("P")

Handler = Callable[[str, Message], list[Message]]
StoreBatch = Callable[[str, list[tuple[int, bytes]]], None]
Pusher = Callable[[list[str]], list[tuple[str, Message]]]


@dataclass(frozen=True)
class GroupedStream(Generic[P]):
    """Batches of ``kind`` parsed alone (``parse(site, records)``) and stored by groups.

    ``store`` stores the parsed batches of one group in one commit and raises when it
    cannot; the server then stores them one by one, so a bad batch fails only itself.
    """

    kind: type[RecordBatch]
    name: str
    parse: Callable[[str, list[tuple[int, bytes]]], P]
    store: Callable[[list[P]], None]


@dataclass(frozen=True)
class Periodic:
    """``run`` every ``interval_s`` seconds on the ingest worker thread."""

    name: str
    interval_s: float
    run: Callable[[], object]


@dataclass
class IngestFeatures:
    """Everything the features registered; handed to the ingest server."""

    handlers: dict[type[Message], Handler] = field(default_factory=dict)
    streams: dict[type[Message], str] = field(default_factory=dict)
    grouped: GroupedStream[Any] | None = None
    pushers: list[Pusher] = field(default_factory=list)
    periodic: list[Periodic] = field(default_factory=list)

    def handle(self, kind: type[Message], handler: Handler) -> None:
        """Handle every message of ``kind`` with ``handler(site_id, message) -> replies``."""
        if kind in self.handlers:
            raise ValueError(f"{kind.TYPE} already has a handler")
        self.handlers[kind] = handler

    def add_stream(self, kind: type[RecordBatch], name: str, store: StoreBatch) -> None:
        """Store each batch of ``kind`` with ``store(site_id, records)``, then ack it."""

        def handler(site_id: str, batch: Message) -> list[Message]:
            assert isinstance(batch, kind)
            store(site_id, batch.records)
            return []

        self.handle(kind, handler)
        self.streams[kind] = name

    def group(self, stream: GroupedStream[Any]) -> None:
        """The one stream stored by group commits."""
        self.grouped = stream
        self.streams[stream.kind] = stream.name

    def push(self, pusher: Pusher) -> None:
        """Send what ``pusher(connected_sites)`` says is due, every push interval."""
        self.pushers.append(pusher)

    def every(self, name: str, interval_s: float, run: Callable[[], object]) -> None:
        """Run ``run`` every ``interval_s`` on the worker thread."""
        self.periodic.append(Periodic(name, interval_s, run))
