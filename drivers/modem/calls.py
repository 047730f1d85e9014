"""Call state tracking, without I/O: vendor call updates in, call events out.

Theory of operation. Modems report calls in different ways (``^ORIG``/``^CEND``, ``+QIND:
"ccinfo"``, ``^DSCI``, ``+CLCC`` auto-reports, or only ``RING`` plus polling). The profile
turns each report into a :class:`CallUpdate`; this tracker keeps one record per call and emits a
:class:`CallEvent` whenever the state of a call changes. A call we started or heard ringing
before the modem named its index is kept under a provisional key and adopted by the first
indexed update that matches its direction. :meth:`CallTracker.reconcile` compares the tracker
with an ``AT+CLCC`` listing: calls the modem no longer lists are released as zombies, which
covers a ``NO CARRIER`` that never came. Modems that report a release without a cause
(Quectel ccinfo, SIMCom CLCC) send the final result (``BUSY``, ``NO ANSWER``, ``NO
CARRIER``) right after it: arriving within ``LATE_CAUSE_S`` with no call left, that result
repeats the RELEASED event with its cause (``late_cause`` set), so a consumer can wait
briefly for the reason of a failed call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from drivers.modem.grammar import Clcc
from drivers.modem.urcs import CLCC_STATES, CallState, CallUpdate

LATE_CAUSE_S = 1.0


@dataclass(frozen=True)
class CallEvent:
    """A call changed state; ``duration`` (connected seconds) is set on release."""

    idx: int | None
    state: CallState
    incoming: bool
    number: str
    cause: str | None = None
    duration: float | None = None
    late_cause: bool = False


@dataclass(frozen=True)
class _Call:
    idx: int | None
    state: CallState
    incoming: bool
    number: str
    created: float
    answered: float | None = None
    announced: bool = False


class CallTracker:
    """One record per call; every method returns the events it caused."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._calls: dict[int, _Call] = {}
        self._provisional = -1
        self._local_cause: str | None = None
        self._causeless: tuple[CallEvent, float] | None = None

    @property
    def active(self) -> list[CallEvent]:
        """Snapshot of the calls not yet released."""
        return [_event(call) for call in self._calls.values()]

    def dialed(self, number: str) -> list[CallEvent]:
        """We sent ATD and got OK."""
        return self._put(
            self._new_key(), _Call(None, CallState.DIALING, False, number, self._now())
        )

    def ring(self) -> list[CallEvent]:
        """RING: make sure an incoming call exists; it is announced once its number is known."""
        if self._find_incoming() is None:
            call = _Call(None, CallState.INCOMING, True, "", self._now())
            self._calls[self._new_key()] = call
        return []

    def caller_id(self, number: str) -> list[CallEvent]:
        """+CLIP gives the caller's number and announces the incoming call."""
        self.ring()
        key = self._find_incoming()
        assert key is not None
        return self._put(key, replace(self._calls[key], number=number))

    def apply(self, update: CallUpdate) -> list[CallEvent]:
        """Apply one vendor call report."""
        if update.idx is None:
            return self._apply_unindexed(update) if update.state is CallState.RELEASED else []
        key = self._key_for(update)
        if key is None:
            if update.state is CallState.RELEASED:
                return []
            key = update.idx
            incoming = bool(update.incoming)
            self._calls[key] = _Call(update.idx, update.state, incoming, "", self._now())
        call = self._calls[key]
        changed = replace(
            call,
            idx=update.idx,
            state=update.state,
            number=update.number or call.number,
            incoming=call.incoming if update.incoming is None else update.incoming,
        )
        return self._put(key, changed, update.cause, update.duration)

    def releasing(self, cause: str) -> None:
        """We are ending the calls; releases the modem reports without a cause get ``cause``."""
        self._local_cause = cause

    def release_all(self, cause: str) -> list[CallEvent]:
        """Release every call (a bare NO CARRIER, a local hang-up, a lost modem)."""
        events: list[CallEvent] = []
        for key in list(self._calls):
            events += self._release(key, cause, None)
        return events

    def reconcile(self, listing: Iterable[Clcc], grace: float) -> list[CallEvent]:
        """Bring the tracker in line with ``AT+CLCC``; calls missing from it are zombies."""
        events: list[CallEvent] = []
        seen: set[int] = set()
        for record in listing:
            state = CLCC_STATES.get(record.stat)
            if not record.is_voice or state is None:
                continue
            seen.add(record.idx)
            events += self.apply(CallUpdate(record.idx, state, record.incoming, record.number))
        for key, call in list(self._calls.items()):
            missing = call.idx is None or call.idx not in seen
            if missing and self._now() - call.created > grace:
                events += self._release(key, "zombie", None)
        return events

    def index_of(self, state: CallState | None = None) -> int | None:
        """The modem index of the first call (in ``state`` when given)."""
        for call in self._calls.values():
            if call.idx is not None and (state is None or call.state is state):
                return call.idx
        return None

    def has_state(self, state: CallState) -> bool:
        """True when some call is in ``state``."""
        return any(call.state is state for call in self._calls.values())

    def _apply_unindexed(self, update: CallUpdate) -> list[CallEvent]:
        events: list[CallEvent] = []
        for key in list(self._calls):
            events += self._release(key, update.cause, update.duration)
        late, self._causeless = self._causeless, None
        if not events and late is not None and update.cause:
            event, at = late
            if self._now() - at <= LATE_CAUSE_S:
                events.append(replace(event, cause=update.cause, late_cause=True))
        return events

    def _key_for(self, update: CallUpdate) -> int | None:
        for key, call in self._calls.items():
            if call.idx == update.idx:
                return key
        for key, call in self._calls.items():
            same_direction = update.incoming is None or update.incoming == call.incoming
            if call.idx is None and same_direction:
                return key
        return None

    def _find_incoming(self) -> int | None:
        for key, call in self._calls.items():
            if call.incoming and call.state in (CallState.INCOMING, CallState.WAITING):
                return key
        return None

    def _put(
        self, key: int, call: _Call, cause: str | None = None, duration: float | None = None
    ) -> list[CallEvent]:
        if call.state is CallState.RELEASED:
            self._calls[key] = call
            return self._release(key, cause, duration)
        old = self._calls.get(key)
        if call.state is CallState.ACTIVE and call.answered is None:
            call = replace(call, answered=self._now())
        unchanged = old is not None and old.announced and old.state is call.state
        if unchanged and old is not None and old.number == call.number:
            return []
        self._calls[key] = replace(call, announced=True)
        return [_event(call)]

    def _release(self, key: int, cause: str | None, duration: float | None) -> list[CallEvent]:
        call = self._calls.pop(key, None)
        if call is None:
            return []
        if duration is None:
            duration = self._now() - call.answered if call.answered is not None else 0.0
        cause = cause or self._local_cause
        if not self._calls:
            self._local_cause = None
        event = CallEvent(call.idx, CallState.RELEASED, call.incoming, call.number, cause, duration)
        self._causeless = (event, self._now()) if cause is None else None
        return [event]

    def _new_key(self) -> int:
        self._provisional -= 1
        return self._provisional

    def _now(self) -> float:
        return self._clock()


def _event(call: _Call) -> CallEvent:
    return CallEvent(call.idx, call.state, call.incoming, call.number)
