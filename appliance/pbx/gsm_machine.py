"""The GSM trunk call as a pure state machine: states, events, causes and one transition table.

Sans-I/O: ``step`` takes a call's state and an event and answers the next state and the
actions to run, in order; ``GsmTrunkService`` feeds the events in (the worker's, the
modem's, its own timers) and executes the actions (modem call control, worker legs, CDR
fields, SIM accounting). Every (state, event) pair is in ``TRANSITIONS``: a transition,
an explicit no-op (an event that may race a release), or ``InvalidTransition``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

ERROR_ID = "gsm-invalid-transition"


class GsmState(enum.StrEnum):
    """Where a call on a GSM channel is (the values are what ``status`` shows)."""

    RESERVED = "reserved"  # outbound: channel picked, waiting for the worker's INVITE
    RINGING = "ringing"  # inbound: the modem rings, the worker calls the target
    DIALLING = "dialling"  # outbound: ATD sent
    ALERTING = "alerting"  # outbound: the far end rings (180 sent)
    ACTIVE = "active"  # connected both ways
    ENDING = "ending"  # the SIP side is gone, the modem is being hung up
    RELEASED = "released"  # counted against the SIM, waiting for the SIP leg's end


class GsmEvent(enum.StrEnum):
    """What can happen to a call; ``GsmInput`` carries the event's data."""

    INVITE = "invite"  # the worker got the INVITE for the channel
    EXPIRED = "expired"  # the reservation waited ``reserve_s`` for its INVITE
    ALERTING = "alerting"  # the modem: the far end rings
    CONNECTED = "connected"  # the modem: the call is active
    ANSWERED = "answered"  # the worker: the SIP side answered an inbound call
    RELEASED = "released"  # the modem released the call (with the cause, late one resolved)
    MODEM_LOST = "modem-lost"  # the modem released the call because the driver lost it
    VOICE_LOST = "voice-lost"  # the worker lost the voice tty (or none to open)
    SIP_ENDED = "sip-ended"  # the worker's SIP leg ended (with its SIP code)
    WORKER_LOST = "worker-lost"  # the channel's GSM worker died
    HUNG_UP = "hung-up"  # the modem hang-up (or rejection) of ENDING is done
    TIME_LIMIT = "time-limit"  # the SIM's ``max_call_s`` is reached
    DIAL_FAILED = "dial-failed"  # ATD failed (with the error as cause)
    ANSWER_FAILED = "answer-failed"  # ATA failed


class HangupCause(enum.Enum):
    """Why a call ended before it was answered, as one of the outcomes SIP distinguishes."""

    BUSY = "busy"
    NO_ANSWER = "no-answer"
    REJECTED = "rejected"
    UNALLOCATED = "unallocated-number"
    CHANNEL_FAILURE = "channel-failure"


@dataclass(frozen=True)
class CauseMapping:
    """A hang-up cause in SIP (RFC 3398 §8.2.6) and Q.850 terms, and its 24.008 spellings."""

    sip_code: int
    q850: int
    retry: bool
    spellings: frozenset[str]


CAUSES: dict[HangupCause, CauseMapping] = {
    HangupCause.BUSY: CauseMapping(486, 17, False, frozenset({"busy", "17"})),
    HangupCause.NO_ANSWER: CauseMapping(480, 19, False, frozenset({"no answer", "18", "19"})),
    HangupCause.REJECTED: CauseMapping(603, 21, False, frozenset({"21", "rejected 21"})),
    HangupCause.UNALLOCATED: CauseMapping(404, 1, False, frozenset({"1", "3", "22", "28"})),
    HangupCause.CHANNEL_FAILURE: CauseMapping(503, 34, True, frozenset()),
}


def classify(cause: str | None) -> HangupCause:
    """The hang-up cause a modem's cause text (a 24.008 number or the driver's word) means."""
    text = (cause or "").strip().lower()
    return next((c for c, m in CAUSES.items() if text in m.spellings), HangupCause.CHANNEL_FAILURE)


def sip_failure(cause: str | None) -> tuple[int, str, bool]:
    """SIP code, reason and whether another channel may be tried, for a release before answer.

    17 user busy → 486, 18/19 no answer → 480, 21 rejected → 603, 1/3/22/28 bad number →
    404; everything else (34 no circuit, 38 network out of order, 41/42 congestion, NO
    CARRIER, NO DIALTONE, no network) is a failure of this channel → 503, which Kamailio
    retries on the next channel.
    """
    kind = classify(cause)
    mapping = CAUSES[kind]
    if kind is not HangupCause.CHANNEL_FAILURE:
        return mapping.sip_code, kind.value, mapping.retry
    text = (cause or "").strip().lower()
    return mapping.sip_code, f"gsm-{(text or 'failure').replace(' ', '-')}", mapping.retry


def reject_cause(sip_code: int) -> int:
    """The Q.850 cause that rejects a ringing inbound call whose SIP leg ended with ``sip_code``."""
    busy = CAUSES[HangupCause.BUSY]
    kind = HangupCause.BUSY if sip_code == busy.sip_code else HangupCause.REJECTED
    return CAUSES[kind].q850


@dataclass(frozen=True)
class GsmInput:
    """An event with its data: the modem's cause text, or the SIP code the leg ended with."""

    event: GsmEvent
    cause: str | None = None
    sip_code: int = 0


class Act(enum.Enum):
    """An action for the service to run; ``Action`` adds its data."""

    REFUSE_INVITE = "refuse-invite"  # gsm-end 503 "no reservation" to the worker
    CANCEL_TIMER = "cancel-timer"
    RECORD_TRUNK = "record-trunk"  # CDR: gsm info and the channel as trunk
    RECORD_CDR = "record-cdr"  # CDR: gsm info
    DIAL = "dial"  # ATD; failure comes back as DIAL_FAILED
    SEND_PROGRESS = "send-progress"  # gsm-progress (180)
    MARK_ANSWERED = "mark-answered"
    ARM_TIME_LIMIT = "arm-time-limit"
    OPEN_BRIDGE = "open-bridge"  # gsm-answer with the voice port; none comes back as VOICE_LOST
    ANSWER_MODEM = "answer-modem"  # ATA; failure comes back as ANSWER_FAILED
    HANG_UP = "hang-up"  # ATH, the call stays until the modem releases it
    CLEAR_MODEM = "clear-modem"  # ATH, then HUNG_UP
    REJECT_MODEM = "reject-modem"  # reject the ringing call with ``q850``, then HUNG_UP
    SET_CAUSE = "set-cause"  # the call's cause is ``text``
    KEEP_CAUSE = "keep-cause"  # the call's cause is ``text`` unless it has one
    MARK_LOST = "mark-lost"  # cause "modem lost", CDR interrupted with reason modem-lost
    END_LEG = "end-leg"  # gsm-end with ``code`` and ``reason``
    FAIL_OVER = "fail-over"  # next channel on the worker (gsm-move), else END_LEG
    FINISH = "finish"  # count against the SIM once, stop the timer
    RELEASE_SIM = "release-sim"
    FORGET = "forget"  # the channel is free


@dataclass(frozen=True)
class Action:
    """One action of a transition with its data."""

    act: Act
    code: int = 0
    reason: str = ""
    text: str = ""
    q850: int = 0


@dataclass(frozen=True)
class Transition:
    """The next state and the actions, in order."""

    state: GsmState
    actions: tuple[Action, ...] = ()


class InvalidTransition(ValueError):
    """An event that cannot happen in a state (a bug in whoever fed it)."""

    error_id = ERROR_ID

    def __init__(self, state: GsmState, event: GsmEvent) -> None:
        super().__init__(f"{ERROR_ID}: {event.value} cannot happen in state {state.value}")
        self.state = state
        self.event = event


@dataclass(frozen=True)
class Rule:
    """A table entry; ``None`` as next state keeps the state, ``invalid`` refuses the event."""

    state: GsmState | None
    actions: tuple[Act, ...] = ()
    invalid: bool = False


S, E, A = GsmState, GsmEvent, Act
STAY = Rule(None)
INVALID = Rule(None, invalid=True)
REFUSE = Rule(None, (A.REFUSE_INVITE,))
FAIL = Rule(S.RELEASED, (A.KEEP_CAUSE, A.FAIL_OVER, A.FINISH))
LOSE = Rule(S.RELEASED, (A.MARK_LOST, A.END_LEG, A.FINISH))
HANG_UP_ON_SIP_END = Rule(S.ENDING, (A.CLEAR_MODEM,))
WORKER_GONE = Rule(S.ENDING, (A.SET_CAUSE, A.CLEAR_MODEM))
REJECT_ON_SIP_END = Rule(S.ENDING, (A.REJECT_MODEM,))
RELEASE_ANSWERED = Rule(S.RELEASED, (A.KEEP_CAUSE, A.RECORD_CDR, A.END_LEG, A.FINISH))
CONNECT_OUT = Rule(S.ACTIVE, (A.MARK_ANSWERED, A.ARM_TIME_LIMIT, A.OPEN_BRIDGE))

_OUTBOUND: dict[GsmEvent, Rule] = {
    E.INVITE: REFUSE,
    E.EXPIRED: STAY,
    E.CONNECTED: CONNECT_OUT,
    E.ANSWERED: STAY,
    E.RELEASED: FAIL,
    E.MODEM_LOST: FAIL,
    E.VOICE_LOST: LOSE,
    E.SIP_ENDED: HANG_UP_ON_SIP_END,
    E.WORKER_LOST: WORKER_GONE,
    E.HUNG_UP: INVALID,
    E.TIME_LIMIT: INVALID,
    E.DIAL_FAILED: Rule(S.RELEASED, (A.SET_CAUSE, A.FAIL_OVER, A.FINISH)),
    E.ANSWER_FAILED: INVALID,
}

TRANSITIONS: dict[GsmState, dict[GsmEvent, Rule]] = {
    S.RESERVED: {
        E.INVITE: Rule(S.DIALLING, (A.CANCEL_TIMER, A.RECORD_TRUNK, A.DIAL)),
        E.EXPIRED: Rule(S.RELEASED, (A.FORGET, A.RELEASE_SIM)),
        E.ALERTING: STAY,
        E.CONNECTED: STAY,
        E.ANSWERED: STAY,
        E.RELEASED: STAY,
        E.MODEM_LOST: STAY,
        E.VOICE_LOST: LOSE,
        E.SIP_ENDED: Rule(S.RELEASED, (A.FINISH, A.FORGET)),
        E.WORKER_LOST: STAY,
        E.HUNG_UP: INVALID,
        E.TIME_LIMIT: INVALID,
        E.DIAL_FAILED: INVALID,
        E.ANSWER_FAILED: INVALID,
    },
    S.RINGING: {
        E.INVITE: REFUSE,
        E.EXPIRED: INVALID,
        E.ALERTING: STAY,
        E.CONNECTED: Rule(S.ACTIVE, (A.MARK_ANSWERED, A.ARM_TIME_LIMIT)),
        E.ANSWERED: Rule(None, (A.ANSWER_MODEM,)),
        E.RELEASED: RELEASE_ANSWERED,
        E.MODEM_LOST: LOSE,
        E.VOICE_LOST: LOSE,
        E.SIP_ENDED: REJECT_ON_SIP_END,
        E.WORKER_LOST: Rule(S.ENDING, (A.SET_CAUSE, A.REJECT_MODEM)),
        E.HUNG_UP: INVALID,
        E.TIME_LIMIT: INVALID,
        E.DIAL_FAILED: INVALID,
        E.ANSWER_FAILED: Rule(S.RELEASED, (A.END_LEG, A.FINISH)),
    },
    S.DIALLING: {**_OUTBOUND, E.ALERTING: Rule(S.ALERTING, (A.SEND_PROGRESS,))},
    S.ALERTING: {**_OUTBOUND, E.ALERTING: STAY},
    S.ACTIVE: {
        E.INVITE: REFUSE,
        E.EXPIRED: STAY,
        E.ALERTING: STAY,
        E.CONNECTED: STAY,
        E.ANSWERED: STAY,
        E.RELEASED: RELEASE_ANSWERED,
        E.MODEM_LOST: LOSE,
        E.VOICE_LOST: LOSE,
        E.SIP_ENDED: HANG_UP_ON_SIP_END,
        E.WORKER_LOST: WORKER_GONE,
        E.HUNG_UP: INVALID,
        E.TIME_LIMIT: Rule(None, (A.SET_CAUSE, A.HANG_UP)),
        E.DIAL_FAILED: INVALID,
        E.ANSWER_FAILED: STAY,
    },
    S.ENDING: {
        E.INVITE: REFUSE,
        E.EXPIRED: STAY,
        E.ALERTING: STAY,
        E.CONNECTED: STAY,
        E.ANSWERED: STAY,
        E.RELEASED: STAY,
        E.MODEM_LOST: STAY,
        E.VOICE_LOST: Rule(None, (A.MARK_LOST, A.END_LEG, A.FINISH)),
        E.SIP_ENDED: STAY,
        E.WORKER_LOST: STAY,
        E.HUNG_UP: Rule(S.RELEASED, (A.FINISH, A.FORGET)),
        E.TIME_LIMIT: STAY,
        E.DIAL_FAILED: STAY,
        E.ANSWER_FAILED: STAY,
    },
    S.RELEASED: {
        E.INVITE: REFUSE,
        E.EXPIRED: STAY,
        E.ALERTING: STAY,
        E.CONNECTED: STAY,
        E.ANSWERED: STAY,
        E.RELEASED: STAY,
        E.MODEM_LOST: STAY,
        E.VOICE_LOST: STAY,
        E.SIP_ENDED: Rule(None, (A.FORGET,)),
        E.WORKER_LOST: Rule(None, (A.FORGET,)),
        E.HUNG_UP: INVALID,
        E.TIME_LIMIT: STAY,
        E.DIAL_FAILED: STAY,
        E.ANSWER_FAILED: STAY,
    },
}

# A release without a cause from these states may get its cause just after (BUSY, NO ANSWER).
WAITS_FOR_LATE_CAUSE = frozenset({S.DIALLING, S.ALERTING})

_CAUSE_TEXT = {
    E.WORKER_LOST: "media-worker-restart",
    E.TIME_LIMIT: "time-limit",
}
_LEG_END = {
    E.RELEASED: (200, "gsm released"),
    E.ANSWER_FAILED: (503, "answer failed"),
    E.MODEM_LOST: (503, "modem-lost"),
    E.VOICE_LOST: (503, "modem-lost"),
}


def step(state: GsmState, event: GsmInput) -> Transition:
    """The transition of ``event`` in ``state``; ``InvalidTransition`` for an impossible one."""
    rule = TRANSITIONS[state][event.event]
    if rule.invalid:
        raise InvalidTransition(state, event.event)
    actions = tuple(_action(act, event) for act in rule.actions)
    return Transition(rule.state or state, actions)


def _action(act: Act, event: GsmInput) -> Action:
    if act is Act.SET_CAUSE or act is Act.KEEP_CAUSE:
        return Action(act, text=_CAUSE_TEXT.get(event.event, event.cause or ""))
    if act is Act.FAIL_OVER:
        code, reason, retry = sip_failure(event.cause)
        return Action(act if retry else Act.END_LEG, code=code, reason=reason)
    if act is Act.END_LEG:
        code, reason = _LEG_END[event.event]
        return Action(act, code=code, reason=reason)
    if act is Act.REJECT_MODEM:
        return Action(act, q850=reject_cause(event.sip_code))
    return Action(act)
