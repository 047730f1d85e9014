"""What features contribute to the sync link, registered at the composition root.

The sync client imports no feature. A feature adds, in ``appliance/service.py``:

- an outbox stream (``add_stream``): its entries go up in batches and leave on ack;
- a topic (``add_topic``): HQ's snapshots and updates of it, and its version in ``hello``;
- a command handler (``add_commands``): the command kinds it applies;
- a publisher (``add_publisher``): messages it sends when they are due (e.g. ``sim-status``);
- a status part (``add_status``): keys it adds to the periodic ``status``.

docs/sync.md ("Adding a stream") walks through one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from drivers.sync.protocol import Message, Snapshot, Update
from drivers.sync.session import BatchStream

Count = Callable[[int], None]


def _ignore(_count: int) -> None:
    """No metric for this stream."""


@dataclass(frozen=True)
class OutboxStream:
    """An outbox stream with the counters it bumps when entries are sent and acknowledged."""

    stream: BatchStream
    sent: Count = _ignore
    acked: Count = _ignore


class Topic(Protocol):
    """A topic HQ pushes as snapshots and updates (Clone pattern)."""

    @property
    def name(self) -> str:
        """The topic's name on the wire."""

    def version(self) -> int:
        """The version in force, announced in ``hello`` and ``snapshot-request``."""

    async def receive(self, message: Snapshot | Update) -> list[Message]:
        """Apply a snapshot or update of this topic; the messages to answer with."""


class Publisher(Protocol):
    """Something that sends messages of its own when they are due."""

    def reset(self) -> None:
        """A new session starts: send the current state again."""

    def due(self, now: float) -> list[Message]:
        """The messages to send at ``now`` (monotonic seconds)."""


ApplyCommand = Callable[[str, str, dict[str, Any]], Awaitable[tuple[bool, str]]]


@dataclass(frozen=True)
class CommandHandler:
    """Applies the command kinds ``handles`` accepts: ``apply(id, kind, args) -> (ok, detail)``."""

    handles: Callable[[str], bool]
    apply: ApplyCommand


@dataclass
class SyncFeatures:
    """Everything the features registered; handed to the sync client."""

    streams: list[OutboxStream] = field(default_factory=list)
    topics: list[Topic] = field(default_factory=list)
    commands: list[CommandHandler] = field(default_factory=list)
    publishers: list[Publisher] = field(default_factory=list)
    status: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    live_status: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)

    def add_stream(self, stream: OutboxStream) -> None:
        """Send an outbox up in batches; its name is announced as a capability."""
        self.streams.append(stream)
        self.capabilities.append(stream.stream.name)

    def add_topic(self, topic: Topic) -> None:
        """Receive a topic; its name is announced as a capability."""
        self.topics.append(topic)
        self.capabilities.append(topic.name)

    def add_commands(self, handler: CommandHandler, capability: str) -> None:
        """Apply HQ's commands of the kinds ``handler`` accepts."""
        self.commands.append(handler)
        self.capabilities.append(capability)

    def add_publisher(self, publisher: Publisher) -> None:
        """Send what ``publisher`` says is due, on every turn of the session."""
        self.publishers.append(publisher)

    def add_status(self, part: Callable[[], dict[str, Any]]) -> None:
        """Add ``part()``'s keys to every ``status``."""
        self.status.append(part)

    def add_live_status(self, part: Callable[[], dict[str, Any]]) -> None:
        """Add ``part()``'s keys to every ``status``, and send a status within about a
        second of them changing (calls in progress, for HQ's live activity page)."""
        self.status.append(part)
        self.live_status.append(part)

    def command_handler(self, kind: str) -> CommandHandler | None:
        """The handler of a command kind, if a feature registered one."""
        return next((c for c in self.commands if c.handles(kind)), None)

    def topic(self, name: str) -> Topic | None:
        """The registered topic called ``name``."""
        return next((t for t in self.topics if t.name == name), None)
