"""HQ's side of the sync sessions, sans-I/O: frames from sites in, work or answers out.

Theory of operation: every message arrives with the site its connection's key belongs
to (ZAP), so the hub never trusts a site id inside a message. ``receive`` decodes it
and either admits it as ``Work`` for the handler its type is registered to, or answers
at once: an ``error`` for frames that are no valid message (``bad-msgpack``, ...), for a
type no feature handles (``unexpected-message``: what HQ itself sends) and for a site
that already has ``site_pending`` messages being worked on (``site-busy``, retry
later). The caller reports each admitted message's end with ``finished``. A message of
a registered batch stream is acknowledged with ``ack`` once it is durably stored. The
hub remembers each site's latest connection, so pushes reach the site wherever it
reconnected from.

The hub holds no socket or thread; the caller (aggregator/ingest.py) owns both::

    hub = Hub(site_pending, handled_types, {SmsBatch: "sms", ...})
    outcome = hub.receive(identity, site_id, frames)    # Work or Answer
    ... handle outcome.message, then hub.ack(message) for a batch, hub.finished(site)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from drivers.sync.protocol import (
    Ack,
    ErrorReply,
    Frame,
    Message,
    ProtocolError,
    RecordBatch,
    decode,
)


@dataclass(frozen=True)
class Work:
    """An admitted message of ``site_id`` for its handler."""

    identity: bytes
    site_id: str
    message: Message


@dataclass(frozen=True)
class Answer:
    """A message refused at once; ``error`` goes back to the connection."""

    identity: bytes
    site_id: str
    error: ErrorReply


Outcome = Work | Answer


class Hub:
    """Admission, attribution and acknowledgement for every site's session."""

    def __init__(
        self,
        site_pending: int,
        handled: Iterable[type[Message]],
        streams: Mapping[type[Message], str],
    ) -> None:
        self._site_pending = site_pending
        self._handled = frozenset(handled) | frozenset(streams)
        self._streams = dict(streams)
        self._pending: dict[str, int] = {}
        self._peers: dict[str, bytes] = {}

    def receive(self, identity: bytes, site_id: str, frames: Sequence[Frame]) -> Outcome:
        """One message of ``site_id`` (its key's site) from connection ``identity``."""
        try:
            message = decode(frames)
        except ProtocolError as err:
            return Answer(identity, site_id, ErrorReply(err.error_id, err.message))
        self._peers[site_id] = identity
        if type(message) not in self._handled:
            refusal = ErrorReply("unexpected-message", f"{message.TYPE} is not sent upstream")
            return Answer(identity, site_id, refusal)
        pending = self._pending.get(site_id, 0)
        if pending >= self._site_pending:
            refusal = ErrorReply("site-busy", "too much in flight", message.TYPE)
            return Answer(identity, site_id, refusal)
        self._pending[site_id] = pending + 1
        return Work(identity, site_id, message)

    def finished(self, site_id: str) -> None:
        """An admitted message of ``site_id`` has been handled."""
        self._pending[site_id] -= 1

    def ack(self, message: Message) -> Ack | None:
        """The acknowledgement of a stored batch of a registered stream; None for others."""
        stream = self._streams.get(type(message))
        if stream is None or not isinstance(message, RecordBatch):
            return None
        return Ack(stream, [seq for seq, _ in message.records])

    def connection(self, site_id: str) -> bytes | None:
        """The connection a site last sent from, or None if it never did."""
        return self._peers.get(site_id)

    def sites(self) -> list[str]:
        """Every site that sent a valid message since HQ started."""
        return list(self._peers)
