"""Shared state of one driven modem: the transport, profile, event subscribers and tasks.

The façade (:class:`drivers.modem.driver.ModemDriver`) and its parts (telephony, messaging)
all run commands and publish events through one session, on one event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from drivers.modem.calls import CallTracker
from drivers.modem.counters import ModemCounters
from drivers.modem.errors import CommandTimeout, PortClosed
from drivers.modem.profiles import GENERIC, ModemProfile
from drivers.modem.protocol import Command, Response
from drivers.modem.transport import AtTransport
from drivers.modem.voice import VoicePort

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModemStateChanged:
    """The driver's own state: starting, ready, recovering, failed, stopped."""

    state: str
    reason: str = ""


class EventStream:
    """A bounded queue of driver events for one subscriber; the oldest is dropped when full."""

    def __init__(self, limit: int = 256) -> None:
        self._items: deque[object] = deque(maxlen=limit)
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, event: object) -> None:
        """Add an event (called by the driver)."""
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(event)
        self._ready.set()

    async def get(self, within: float) -> object:
        """The next event; raises TimeoutError after ``within`` seconds."""
        async with asyncio.timeout(within):
            while not self._items:
                self._ready.clear()
                await self._ready.wait()
        return self._items.popleft()

    async def wait_for(self, predicate: Callable[[object], bool], within: float) -> object:
        """Skip events until one matches ``predicate``; TimeoutError after ``within`` seconds."""
        async with asyncio.timeout(within):
            while True:
                event = await self.get(within)
                if predicate(event):
                    return event


@functools.lru_cache(maxsize=512)
def _command(text: str, expect: tuple[str, ...], raw: bool, prompt: bool, call: bool) -> Command:
    """Commands repeat (polls, keep-alives); building each once keeps the hot path short."""
    return Command(text, expect, raw, prompt, call)


class ModemSession:
    """One modem's transport, profile, call tracker, voice port, events and background tasks."""

    def __init__(self, counters: ModemCounters) -> None:
        self.counters = counters
        self.profile: ModemProfile = GENERIC
        self.transport: AtTransport | None = None
        self.voice: VoicePort | None = None
        self.tracker = CallTracker(time.monotonic)
        self.suspect = asyncio.Event()
        self._streams: list[EventStream] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(
        self,
        text: str,
        *,
        expect: tuple[str, ...] = (),
        raw: bool = False,
        prompt: bool = False,
        call: bool = False,
        limit: float | None = None,
        payload: str | None = None,
    ) -> Response:
        """Run one AT command; a timeout also tells the supervisor to check for a wedge."""
        transport = self.transport
        if transport is None or not transport.is_open:
            raise PortClosed("the modem port is not open (recovering or stopped)")
        command = _command(text, expect, raw, prompt, call)
        try:
            return await transport.command(command, limit=limit, payload=payload)
        except CommandTimeout:
            self.suspect.set()
            raise

    async def query(self, text: str, prefix: str, *, limit: float | None = None) -> list[str]:
        """Information lines of ``text`` that start with ``prefix``."""
        response = await self.run(text, expect=(prefix,), limit=limit)
        return list(response.lines)

    def subscribe(self, limit: int = 256) -> EventStream:
        """A new event stream receiving every event from now on."""
        stream = EventStream(limit)
        self._streams.append(stream)
        return stream

    def unsubscribe(self, stream: EventStream) -> None:
        """Stop delivering events to ``stream``."""
        if stream in self._streams:
            self._streams.remove(stream)

    def emit(self, event: object) -> None:
        """Deliver ``event`` to every subscriber."""
        log.debug("event %s", event)
        for stream in self._streams:
            stream.put(event)

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run ``coro`` in the background; failures are logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._reap(done, what))

    def _reap(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s failed: %s", what, task.exception())

    async def cancel_tasks(self) -> None:
        """Cancel and await every background task."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
