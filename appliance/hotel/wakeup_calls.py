"""Places wake-up calls through the media workers and reports each one to the PMS once.

Theory of operation. Every second the service writes the WAs owed (while the PMS link can
carry them) and places the wake-ups that are due: the message of the guest's language
(``hotel.wake_up.messages`` by ``GL``) is spoken by espeak-ng, an attempt is counted in
LMDB, and a media worker calls the room's extension (From ``wake-up``) as an IVR call the
service drives itself. Once answered the message plays (twice at most): ``1`` confirms
(WA ``OK``), ``2`` snoozes (the call comes again after ``snooze_s``). Busy (486/600/603)
is ``BY``; no answer, a hang-up without a digit or no report within ``attempt_timeout_s``
is ``NR``. Either is retried after ``retry_interval_s`` up to ``retries`` times; after the
last the WA carries it, the failure is logged (``wake-up-failed``) and the front desk's
extension, when configured, is owed a call with a spoken notice: stored with the WA, placed
at the next tick a worker has a free slot (before the wake-ups due), and forgotten once the
worker placed it, so it is delivered once even when every slot was busy or the appliance
restarted meanwhile. A wake-up found due more than
``late_limit_s`` ago (the appliance was off) is not placed; it is reported ``NR``.

Many calls due at once (a tour group's 06:30) are placed as fast as the media workers have
free call slots: each call placed reserves a slot of its worker until the worker reports
its load, a tick stops placing once no worker has a free slot (the rest wait, soonest
first), and the next tick runs as soon as a worker reports a lighter load rather than a
second later. A call a worker refused because it was full (``worker-full``) was never
placed: it is not counted as an attempt and goes out again at the next tick.

Only intermediate results stay inside the PBX: the PMS gets exactly one WA per wake-up,
with ``TI`` as it sent it (``appliance/hotel/wakeups.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.hotel.rooms import RoomBook
from appliance.hotel.settings import WakeUpSettings
from appliance.hotel.wakeups import (
    DeskNotice,
    WakeUp,
    WakeUpBook,
    WakeUpTimeError,
    due_at,
    next_occurrence,
)
from appliance.pbx.media import MediaPoolFullError
from drivers.fias.grammar import Record, RecordGC, RecordGO, RecordWA, RecordWC, RecordWR
from drivers.media.protocol import (
    Command,
    Event,
    Hangup,
    IvrEvent,
    IvrHangup,
    IvrPlay,
    LegEvent,
    Load,
    Originate,
    Prompt,
)
from drivers.media.tts import TtsError

log = logging.getLogger(__name__)

FLOW = "wakeup"
# The From user of wake-up calls; the rooms' decider lets them ring a room with DND set.
CALLER = "wake-up"
BUSY_CODES = frozenset({486, 600, 603})
# A worker's refusal of a call it had no slot for (``drivers/media/worker.py``).
WORKER_FULL = "worker-full"
PLAYS = 2
_TICK_S = 1.0
_NO_PROMPT_S = 5.0


class Worker(Protocol):
    """What a wake-up call needs of a media worker."""

    reserved: int  # slots promised to calls being placed, until the worker reports its load

    def send(self, command: Command) -> bool: ...


class Workers(Protocol):
    """The media pool: a worker with a free call slot (raises when none)."""

    def pick(self, slots: int = 1) -> Any: ...


class Speaker(Protocol):
    """Text to speech (``drivers.media.tts.EspeakTts``)."""

    async def render(self, text: str, voice: str) -> Path: ...


class Link(Protocol):
    """What the service needs of the PMS link (``PmsLinkService``)."""

    def send_now(self, record: Record) -> bool: ...


@dataclass
class Attempt:
    """A wake-up call (or a front-desk notice, ``notice`` its key) a worker is placing."""

    tag: str
    worker: Worker
    prompt: Path
    deadline: float
    wake_up: WakeUp | None = None
    notice: str = ""
    call_id: str = ""
    plays: int = 0
    result: str = ""


class WakeUpCallService:
    """Due wake-ups become calls; their outcomes become one WA each."""

    name = "hotel-wake-ups"

    def __init__(
        self,
        settings: WakeUpSettings,
        book: WakeUpBook,
        rooms: RoomBook,
        link: Link,
        workers: Callable[[], Workers],
        speaker: Speaker,
        clock: Callable[[], float],
        timezone: str,
    ) -> None:
        self._settings = settings
        self._zone = zoneinfo.ZoneInfo(timezone)
        self.book = book
        self._rooms = rooms
        self._link = link
        self._workers = workers
        self._speaker = speaker
        self._clock = clock
        self._attempts: dict[str, Attempt] = {}
        self._not_before: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        # Set when due calls wait for a free slot; a worker's load report then ticks at once.
        self._short_of_slots = False
        self._wake = asyncio.Event()
        # The PBX's event stream (webhook): a failed wake-up is announced on it.
        self.alert: Callable[[str, dict[str, Any]], None] | None = None

    async def start(self) -> None:
        """Run the scheduler."""
        self._task = asyncio.create_task(self._run(), name="hotel-wake-ups")

    async def stop(self) -> None:
        """Stop placing calls; pending wake-ups stay in the store."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for attempt in list(self._attempts.values()):
            attempt.worker.send(Hangup(attempt.tag))

    def on_record(self, record: Record) -> None:
        """WR/WC from the PMS; a check-out clears the room's calls, a move takes them along.

        The rooms have already applied the record (``PmsLinkService``).
        """
        room = record.room
        if room is None:
            return
        if isinstance(record, RecordWR):
            self._requested(room, record.date or "", record.time or "")
        elif isinstance(record, RecordWC):
            self.book.clear(room, record.date or "", record.time or "")
        elif isinstance(record, RecordGO) and not self._rooms.room(room).occupied:
            self.book.clear_room(room)
        elif isinstance(record, RecordGC) and record.old_room not in (None, room):
            old = record.old_room or ""
            if not self._rooms.room(old).occupied:
                self.book.move(old, room)

    def phone_wake_up(self, room: str, hhmm: str) -> bool:
        """``*55hhmm`` from the room's phone: a call at the next ``hh:mm``; False if no time."""
        try:
            date, time = next_occurrence(hhmm, dt.datetime.now(self._zone))
        except WakeUpTimeError:
            return False
        self.book.set(WakeUp(room, date, time, due_at(date, time, self._zone), source="phone"))
        log.info("room %s set a wake-up call for %s %s from its phone", room, date, time)
        return True

    def phone_clear(self, room: str) -> bool:
        """The clear code from the room's phone: its calls set from the phone are cleared."""
        return self.book.clear_room(room, source="phone") > 0

    def _requested(self, room: str, date: str, time: str) -> None:
        try:
            due = due_at(date, time, self._zone)
        except WakeUpTimeError as err:
            log.warning("WR for room %s: %s", room, err, extra={"error_id": err.error_id})
            self.book.finish(WakeUp(room, date, time, 0.0), "UR")
            return
        self.book.set(WakeUp(room, date, time, due))
        log.info("wake-up for room %s set by the PMS: %s %s", room, date, time)

    def on_media_event(self, worker: Any, event: Event) -> bool:
        """A worker's ``leg``/``ivr`` event; True when it belongs to a wake-up call.

        A ``load`` report (left to others) wakes the scheduler when calls wait for a slot.
        """
        if isinstance(event, Load) and self._short_of_slots:
            self._wake.set()
            return False
        if isinstance(event, LegEvent):
            attempt = self._attempts.get(event.id)
            if attempt is not None and event.state == "ended":
                if event.reason == WORKER_FULL:
                    self._not_placed(attempt)
                else:
                    self._ended(attempt, event.code)
            return attempt is not None
        if not isinstance(event, IvrEvent):
            return False
        attempt = self._ivr_attempt(event)
        if attempt is not None:
            self._ivr(attempt, event)
        return attempt is not None

    async def tick(self) -> None:
        """Write owed WAs, place owed notices and due calls, end calls past their deadline."""
        self._send_answers()
        was_short, self._short_of_slots = self._short_of_slots, False
        now = self._clock()
        for attempt in [a for a in self._attempts.values() if now >= a.deadline]:
            attempt.worker.send(Hangup(attempt.tag))
            self._ended(attempt, 408)
        if not await self._place_notices(now) or not await self._place_due(now):
            self._short_of_slots = True
            if not was_short:
                log.info("wake-up calls due wait for a free media worker slot")

    async def _place_due(self, now: float) -> bool:
        """Place the wake-ups due; False when no media worker has a free slot."""
        placing = {a.wake_up.key for a in self._attempts.values() if a.wake_up}
        for wake_up in self.book.pending():
            if wake_up.due > now:
                break
            waiting = wake_up.key in placing or self._not_before.get(wake_up.key, 0) > now
            if not waiting and not await self._place(wake_up, now):
                return False
        return True

    async def _place_notices(self, now: float) -> bool:
        """Call the front desk about failed wake-ups; False when no worker has a free slot."""
        placing = {a.notice for a in self._attempts.values() if a.notice}
        for key, notice in self.book.notices():
            if key in placing or self._not_before.get(key, 0) > now:
                continue
            prompt = await self._prompt("EA", _notice_text(notice))
            if prompt is None:
                self._not_before[key] = now + _NO_PROMPT_S
                continue
            worker = self._worker()
            if worker is None:
                return False
            self._call(worker, notice.desk, prompt, None, key)
            log.info("front desk %s called about the failed wake-up of room %s", notice.desk,
                     notice.room)  # fmt: skip
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("wake-up scheduler tick failed", extra={"error_id": "wake-up-tick"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _TICK_S)
            self._wake.clear()

    def _send_answers(self) -> None:
        for key, answer in self.book.answers():
            record = RecordWA.make({"RN": answer.room, "DA": answer.date, "TI": answer.time,
                                    "AS": answer.status})  # fmt: skip
            if not self._link.send_now(record):
                return
            self.book.answered(key)
            log.info("wake-up for room %s at %s %s reported %s", answer.room, answer.date,
                     answer.time, answer.status)  # fmt: skip

    async def _place(self, wake_up: WakeUp, now: float) -> bool:
        """Place (or settle) one due wake-up; False when no media worker has a free slot."""
        extension = self._rooms.extensions.get(wake_up.room)
        if extension is None:
            log.warning("wake-up for room %s, which has no phone", wake_up.room)
            self.book.finish(wake_up, "UR")
            return True
        if wake_up.attempts == 0 and now - wake_up.due > self._settings.late_limit_s:
            log.warning("wake-up for room %s was due %d s ago; not placed", wake_up.room,
                        now - wake_up.due, extra={"error_id": "wake-up-failed"})  # fmt: skip
            self.book.finish(wake_up, "NR")
            return True
        prompt = await self._prompt(self._language(wake_up.room), None)
        if prompt is None:
            self._not_before[wake_up.key] = now + _NO_PROMPT_S
            return True
        worker = self._worker()
        if worker is None:
            return False
        counted = self.book.attempted(wake_up)
        self._call(worker, extension, prompt, counted)
        return True

    def _call(
        self, worker: Any, extension: str, prompt: Path, wake_up: WakeUp | None, notice: str = ""
    ) -> None:
        tag = f"wakeup-{uuid.uuid4().hex[:16]}"
        deadline = self._clock() + self._settings.attempt_timeout_s
        self._attempts[tag] = Attempt(tag, worker, prompt, deadline, wake_up, notice)
        display = "Wake-up call" if wake_up else "Wake-up call failed"
        worker.send(Originate(id=tag, to=extension, from_user=CALLER, display=display,
                              ivr=FLOW))  # fmt: skip
        worker.reserved += 1
        if wake_up is not None:
            log.info("wake-up call %d to room %s (%s)", wake_up.attempts, wake_up.room, extension)

    def _worker(self) -> Any:
        try:
            return self._workers().pick(1)
        except MediaPoolFullError:
            return None

    async def _prompt(self, language: str, text: str | None) -> Path | None:
        messages, voices = self._settings.messages, self._settings.voices
        spoken = text or messages.get(language) or messages["EA"]
        try:
            return await self._speaker.render(spoken, voices.get(language, voices.get("EA", "en")))
        except TtsError as err:
            log.error("wake-up message not spoken: %s", err, extra={"error_id": err.error_id})
            return None

    def _language(self, room: str) -> str:
        guests = self._rooms.room(room).guests
        return guests[0].language if guests else ""

    def _ivr_attempt(self, event: IvrEvent) -> Attempt | None:
        if event.state == "start":
            attempt = self._attempts.get(event.tag or "")
            if attempt is not None:
                attempt.call_id = event.id
            return attempt
        call_id = event.id
        return next((a for a in self._attempts.values() if a.call_id == call_id), None)

    def _ivr(self, attempt: Attempt, event: IvrEvent) -> None:
        state = event.state
        if state == "start" or (state == "played" and attempt.plays < PLAYS):
            attempt.plays += 1
            prompt = Prompt(file=str(attempt.prompt))
            attempt.worker.send(IvrPlay(attempt.call_id, prompt))
        elif state == "played" or (state == "digit" and attempt.wake_up is not None):
            attempt.result = {"1": "OK", "2": "snooze"}.get(event.digit, attempt.result)
            if state == "played" or attempt.result:
                attempt.worker.send(IvrHangup(attempt.call_id))

    def _not_placed(self, attempt: Attempt) -> None:
        """The worker refused the call for want of a slot: it goes out again, uncounted."""
        self._attempts.pop(attempt.tag, None)
        if attempt.wake_up is not None:
            self.book.uncounted(attempt.wake_up)
            log.info("wake-up call to room %s found its worker full; placed again",
                     attempt.wake_up.room)  # fmt: skip

    def _ended(self, attempt: Attempt, code: int) -> None:
        self._attempts.pop(attempt.tag, None)
        if attempt.notice:
            self.book.notified(attempt.notice)
        wake_up = attempt.wake_up
        if wake_up is None:
            return
        now = self._clock()
        if attempt.result == "OK":
            self.book.finish(wake_up, "OK")
            log.info("wake-up for room %s confirmed", wake_up.room)
        elif attempt.result == "snooze":
            self.book.postpone(wake_up, now + self._settings.snooze_s)
        elif wake_up.attempts <= self._settings.retries:
            self.book.postpone(wake_up, now + self._settings.retry_interval_s)
        else:
            self._failed(wake_up, "BY" if code in BUSY_CODES else "NR")

    def _failed(self, wake_up: WakeUp, status: str) -> None:
        desk = self._settings.front_desk or ""
        self.book.finish(wake_up, status, front_desk=desk)
        log.warning("wake-up for room %s failed after %d calls: %s", wake_up.room,
                    wake_up.attempts, status, extra={"error_id": "wake-up-failed"})  # fmt: skip
        if self.alert is not None:
            failed = {"room": wake_up.room, "date": wake_up.date, "time": wake_up.time,
                      "status": status, "attempts": wake_up.attempts}  # fmt: skip
            self.alert("hotel.wake-up-failed", failed)
        if desk:
            self._wake.set()


def _notice_text(notice: DeskNotice) -> str:
    return f"The wake-up call for room {' '.join(notice.room)} was not answered."
