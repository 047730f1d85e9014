"""Callback retries: a caller who does not answer its call back is tried again.

Theory of operation: a try starts when an agent answers a callback's agent leg. It is
counted and stored at once (``tries`` and ``next_try`` in ``contact-callbacks``), so after
a restart the callback neither loses its place nor makes that try again. The caller
answering ends the callback (deleted from LMDB). The caller not answering, being busy,
or the worker placing the call being lost ends the try: the callback takes its place
again, offered to an agent no earlier than ``callback_retry_s`` later, until
``callback_retries`` retries were made; after the last one it is failed and forgotten.
The agent is free between tries (wrap-up, then available); before its leg is released
the worker plays it ``callback_release_prompt``.

The call back to the caller is a call of its own with a CDR: it carries ``callback_of``
(the queued call's Call-ID), ``callback_queue``, ``callback_try`` (1 = the first try) and
``callback_status`` (``answered``, ``retry``: the caller did not answer and will be tried
again, ``failed``: it was the last try).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from appliance.contact.acd import Waiting
from appliance.contact.callbacks import CallbackStore, StoredCallback
from appliance.contact.settings import QueueSettings
from drivers.media.protocol import Prompt, QueueCallback

log = logging.getLogger(__name__)

RELEASE_TONE = Prompt(tone_hz=480, on_ms=250, off_ms=250, seconds=1.5)


@dataclass(frozen=True)
class TryEnded:
    """A try that the caller did not answer; ``retry_at`` None: it was the last."""

    entry: Waiting
    retry_at: float | None


class CallbackRetries:
    """The tries of callbacks under way, and their records."""

    def __init__(
        self,
        queues: Mapping[str, QueueSettings],
        annotate: Callable[[str, dict[str, str]], None],
    ) -> None:
        self._queues = queues
        self._annotate = annotate
        self.store: CallbackStore | None = None
        self._trying: dict[str, Waiting] = {}
        self._legs: dict[str, str] = {}
        self._releases: dict[str, Prompt] = {}

    def requested(self, entry: Waiting) -> None:
        """The caller pressed 1: it waits for its first try."""
        self._save(entry)

    def started(self, entry: Waiting, now: float) -> None:
        """An agent answered the callback: the try is counted and stored before it goes on."""
        entry.tries += 1
        entry.not_before = now + self._queues[entry.queue].callback_retry_s
        self._trying[entry.call_id] = entry
        self._save(entry)

    def trying(self, call_id: str, number: str) -> bool:
        """Whether a try of the callback ``call_id`` to ``number`` is under way."""
        entry = self._trying.get(call_id)
        return entry is not None and entry.caller == number

    def ringing(self, call_id: str, leg_call_id: str) -> None:
        """The caller's phone rings: its CDR says what happens if it is not answered."""
        entry = self._trying.get(call_id)
        if entry is not None and leg_call_id:
            self._legs[call_id] = leg_call_id
            self._mark(entry, leg_call_id, "failed" if self._last(entry) else "retry")

    def answered(self, call_id: str) -> None:
        """The caller answered: the callback is done."""
        entry = self._trying.pop(call_id, None)
        leg = self._legs.pop(call_id, "")
        if entry is not None and leg:
            self._mark(entry, leg, "answered")
        if self.store is not None:
            self.store.done(call_id)

    def ended(self, call_id: str, leg_call_id: str, now: float) -> TryEnded | None:
        """The call back ended unanswered (None: no try of this callback was under way)."""
        entry = self._trying.pop(call_id, None)
        if entry is None:
            return None
        leg = self._legs.pop(call_id, "")
        last = self._last(entry)
        if not leg and leg_call_id:  # busy at once: never rang
            self._mark(entry, leg_call_id, "failed" if last else "retry")
        if last:
            if self.store is not None:
                self.store.done(call_id)
            log.warning("callback %s to %s failed after %d tries", call_id, entry.caller,
                        entry.tries)  # fmt: skip
            return TryEnded(entry, None)
        entry.not_before = now + self._queues[entry.queue].callback_retry_s
        self._save(entry)
        return TryEnded(entry, entry.not_before)

    def restored(self, stored: StoredCallback) -> bool:
        """Whether a stored callback has tries left (one whose last try was under way at
        a restart is failed: that try is not made again)."""
        if stored.tries <= self._queues[stored.queue].callback_retries:
            return True
        log.warning("stored callback %s: its last try was under way at the restart, failed "
                    "(error_id callback-tries-used)", stored.call_id)  # fmt: skip
        if self.store is not None:
            self.store.done(stored.call_id)
        return False

    def command(
        self, queue: str, call_id: str, agent: str, caller: str, display: str
    ) -> QueueCallback:
        """The ``queue-callback`` of a try: ring ``agent``, then call ``caller`` back; with
        how long the caller's phone rings and what the worker plays the agent when the
        caller did not answer."""
        release = self._releases.get(queue, RELEASE_TONE)
        return QueueCallback(call_id, agent, caller, display, release=release,
                             ring_s=self._queues[queue].callback_ring_s)  # fmt: skip

    async def prepare(self, speak: Callable[[str, str], Awaitable[Path]]) -> None:
        """Render each callback queue's release message (the tone stands in until then,
        or when it cannot be rendered)."""
        for name, queue in self._queues.items():
            if queue.callback_after_s <= 0:
                continue
            try:
                path = await speak(queue.callback_release_prompt, queue.language)
            except Exception:
                log.exception("callback release message of queue %s not rendered", name)
                continue
            self._releases[name] = Prompt(file=str(path))

    def _last(self, entry: Waiting) -> bool:
        return entry.tries > self._queues[entry.queue].callback_retries

    def _mark(self, entry: Waiting, leg_call_id: str, status: str) -> None:
        self._annotate(leg_call_id, {"callback_of": entry.call_id, "callback_queue": entry.queue,
                                     "callback_try": str(entry.tries),
                                     "callback_status": status})  # fmt: skip

    def _save(self, entry: Waiting) -> None:
        if self.store is not None:
            self.store.add(StoredCallback(entry.call_id, entry.queue, entry.caller,
                                          entry.entered, entry.priority, entry.skills,
                                          entry.variables, entry.tries,
                                          entry.not_before))  # fmt: skip
