"""The CTI event stream: every queue, call and agent event, fanned out to subscribers.

Each subscriber (an SSE connection of the local API) gets its own bounded queue; one that
falls ``MAX_BACKLOG`` events behind is cut off (its stream ends) rather than letting a
slow client grow memory or delay the others. In-process ``listeners`` (the agent pages'
screen pops) are called with each event as it is published.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_BACKLOG = 1000


@dataclass(frozen=True)
class CtiEvent:
    """One event: ``event`` names it (``call.queued``, ``agent.state``, ...)."""

    seq: int
    event: str
    at: float
    data: dict[str, Any] = field(default_factory=dict)

    def sse(self) -> str:
        """The event as one Server-Sent Events message."""
        return f"id: {self.seq}\nevent: {self.event}\ndata: {json.dumps(asdict(self))}\n\n"


class CtiStream:
    """Publishes events to every current subscriber."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self._subscribers: set[asyncio.Queue[CtiEvent | None]] = set()
        self.listeners: list[Callable[[CtiEvent], None]] = []

    @property
    def subscribers(self) -> int:
        """How many streams are open."""
        return len(self._subscribers)

    def publish(self, event: str, **data: Any) -> CtiEvent:
        """Send ``event`` to every subscriber; a subscriber too far behind is dropped."""
        item = CtiEvent(next(self._seq), event, time.time(), data)
        for listener in self.listeners:
            try:
                listener(item)
            except Exception:
                log.exception("CTI listener failed on %s", event)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                log.warning("CTI subscriber %d events behind: stream closed", MAX_BACKLOG)
                self._subscribers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)
        return item

    async def follow(self, keepalive_s: float = 15.0) -> AsyncIterator[str]:
        """SSE text for one subscriber until it is dropped; comments keep idle links open."""
        queue: asyncio.Queue[CtiEvent | None] = asyncio.Queue(MAX_BACKLOG)
        self._subscribers.add(queue)
        try:
            yield ": subscribed\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if item is None:
                    return
                yield item.sse()
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        """End every stream."""
        for queue in list(self._subscribers):
            self._subscribers.discard(queue)
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
