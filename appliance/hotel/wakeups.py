"""Wake-up calls kept in LMDB: what is due, and the one final answer (WA) owed to the PMS.

A wake-up is keyed by room, ``DA`` and ``TI`` exactly as the PMS sent them: the WA echoes
``TI`` verbatim, seconds included, never the system time. Every change is one fsync'd
commit, so a restart (even kill -9) loses none:

- ``set`` (WR, or ``*55hhmm`` from the room's phone) and ``clear`` (WC; empty ``DA`` and
  ``TI`` clear every call of the room), ``clear_room`` (check-out), ``move`` (room move);
- ``attempted`` counts an attempt *before* the call is placed, so a crash during a call
  makes the next attempt a retry, never a lost or a doubled wake-up; ``uncounted`` takes
  it back for a call a full media worker refused (it was never placed);
- ``finish`` removes the wake-up and, for one the PMS asked for, stores its WA in the same
  commit; ``answered`` deletes the WA once it was written to the link. Only a crash in the
  instant between that write and its deletion sends a WA twice; none is ever lost. A failed
  wake-up with a front desk to call also stores the desk's notice in that commit; it stays
  until the desk's call was placed (``notified``), so no free media worker slot or a restart
  delays it but loses none. With
  ``reports`` (HQ's ``hotel`` stream, ``appliance/hotel/reports.py``) the outcome of every
  wake-up, the guest's own included, is written for HQ in that same commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import time as clock
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import msgpack

from appliance.store import StateStore, Store

log = logging.getLogger(__name__)

WAKE_UP = "wakeup:"
ANSWER = "wake-answer:"
NOTICE = "desk-notice:"
DB = "hotel"


class WakeUpTimeError(ValueError):
    """``DA``/``TI`` do not name a time (``error_id`` ``bad-wake-up-time``)."""

    error_id = "bad-wake-up-time"


@dataclass(frozen=True)
class WakeUp:
    """One wake-up call; ``date``/``time`` as received, ``due`` in epoch seconds."""

    room: str
    date: str
    time: str
    due: float
    attempts: int = 0
    source: str = "pms"

    @property
    def key(self) -> str:
        """Room, DA and TI: what the PMS matches the WA with."""
        return f"{self.room}|{self.date}|{self.time}"


@dataclass(frozen=True)
class WakeAnswer:
    """A WA owed to the PMS."""

    room: str
    date: str
    time: str
    status: str


def due_at(date: str, time: str, zone: dt.tzinfo) -> float:
    """Epoch seconds of ``DA`` (YYMMDD) and ``TI`` (HHMM[SS]) in ``zone``."""
    if not (len(date) == 6 and len(time) in (4, 6) and (date + time).isdigit()):
        raise WakeUpTimeError(f"DA {date!r} TI {time!r} is no date and time")
    try:
        seconds = time[4:6] or "00"
        moment = dt.datetime.strptime(date + time[:4] + seconds, "%y%m%d%H%M%S").replace(
            tzinfo=zone
        )
    except ValueError:
        raise WakeUpTimeError(f"DA {date!r} TI {time!r} is no date and time") from None
    return moment.timestamp()


def next_occurrence(hhmm: str, now: dt.datetime) -> tuple[str, str]:
    """``DA`` and ``TI`` of the next ``hh:mm`` after ``now`` (a guest's ``*55hhmm``)."""
    try:
        at = now.replace(hour=int(hhmm[:2]), minute=int(hhmm[2:]), second=0, microsecond=0)
    except ValueError:
        raise WakeUpTimeError(f"{hhmm!r} is no time of day") from None
    if at <= now:
        at += dt.timedelta(days=1)
    return at.strftime("%y%m%d"), at.strftime("%H%M%S")


@dataclass(frozen=True)
class DeskNotice:
    """The front desk (``desk``, an extension) owes a call about a failed wake-up."""

    desk: str
    room: str
    date: str
    time: str
    status: str


# Writes a finished wake-up's outcome for HQ: (txn, wake-up, result, front desk, ended at).
Reports = Callable[[Any, "WakeUp", str, bool, float], None]


class WakeUpBook:
    """Wake-ups and owed answers in the ``hotel`` state of the store."""

    def __init__(
        self,
        store: Callable[[], Store],
        reports: Reports | None = None,
        now: Callable[[], float] = clock.time,
    ) -> None:
        self._store = store
        self._reports = reports
        self._now = now

    def pending(self) -> list[WakeUp]:
        """Every wake-up not finished, soonest first."""
        found = [WakeUp(**doc) for _, doc in self._state().items(WAKE_UP)]
        return sorted(found, key=lambda w: w.due)

    def for_room(self, room: str) -> list[WakeUp]:
        """The room's wake-ups, soonest first."""
        return [w for w in self.pending() if w.room == room]

    def set(self, wake_up: WakeUp) -> None:
        """Schedule (or replace) a wake-up."""
        self._state().put(WAKE_UP + wake_up.key, asdict(wake_up))

    def clear(self, room: str, date: str, time: str) -> int:
        """WC: one call, or every call of the room when ``date`` and ``time`` are empty."""
        doomed = [w for w in self.for_room(room) if not (date or time) or
                  (w.date, w.time) == (date, time)]  # fmt: skip
        return self._delete(doomed)

    def clear_room(self, room: str, source: str | None = None) -> int:
        """Every call of the room (of one ``source`` when given): check-out, ``*56``."""
        return self._delete([w for w in self.for_room(room) if source in (None, w.source)])

    def move(self, old: str, new: str) -> int:
        """A room move: the old room's pending calls now ring in the new room."""
        moving = self.for_room(old)
        store = self._store()
        db = store.db(DB)
        with store.write() as txn:
            for w in moving:
                txn.delete((WAKE_UP + w.key).encode(), db=db)
                moved = replace(w, room=new)
                txn.put((WAKE_UP + moved.key).encode(), _pack(asdict(moved)), db=db)
        return len(moving)

    def attempted(self, wake_up: WakeUp) -> WakeUp:
        """Count one more attempt, durably, before the call is placed."""
        counted = replace(wake_up, attempts=wake_up.attempts + 1)
        self.set(counted)
        return counted

    def uncounted(self, wake_up: WakeUp) -> WakeUp:
        """Take back the attempt ``attempted`` counted for a call that was never placed."""
        back = replace(wake_up, attempts=max(0, wake_up.attempts - 1))
        self.set(back)
        return back

    def postpone(self, wake_up: WakeUp, due: float) -> WakeUp:
        """The next attempt at ``due`` (a retry or a snooze)."""
        later = replace(wake_up, due=due)
        self.set(later)
        return later

    def finish(self, wake_up: WakeUp, status: str, front_desk: str = "") -> None:
        """Remove the wake-up; one the PMS asked for owes a WA, stored in the same commit.

        ``front_desk``: the extension owed a notice about it, stored in the same commit too
        (reported to HQ).
        """
        store = self._store()
        db = store.db(DB)
        with store.write() as txn:
            txn.delete((WAKE_UP + wake_up.key).encode(), db=db)
            if wake_up.source == "pms":
                answer = WakeAnswer(wake_up.room, wake_up.date, wake_up.time, status)
                txn.put((ANSWER + wake_up.key).encode(), _pack(asdict(answer)), db=db)
            if front_desk:
                notice = DeskNotice(front_desk, wake_up.room, wake_up.date, wake_up.time, status)
                txn.put((NOTICE + wake_up.key).encode(), _pack(asdict(notice)), db=db)
            if self._reports is not None:
                self._reports(txn, wake_up, status, bool(front_desk), self._now())

    def answers(self) -> list[tuple[str, WakeAnswer]]:
        """WAs not yet written to the link, with their keys."""
        return [(key, WakeAnswer(**doc)) for key, doc in self._state().items(ANSWER)]

    def answered(self, key: str) -> None:
        """The WA under ``key`` was written to the link."""
        self._state().delete(key)

    def notices(self) -> list[tuple[str, DeskNotice]]:
        """Front-desk notices whose call was not placed yet, with their keys."""
        return [(key, DeskNotice(**doc)) for key, doc in self._state().items(NOTICE)]

    def notified(self, key: str) -> None:
        """The front desk's call for the notice under ``key`` was placed."""
        self._state().delete(key)

    def _delete(self, doomed: list[WakeUp]) -> int:
        store = self._store()
        db = store.db(DB)
        with store.write() as txn:
            for w in doomed:
                txn.delete((WAKE_UP + w.key).encode(), db=db)
        return len(doomed)

    def _state(self) -> StateStore:
        return StateStore(self._store(), DB)


def _pack(doc: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed
