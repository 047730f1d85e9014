"""The GSM call state machine: every (state, event) pair of the table, causes, invalid events."""

from __future__ import annotations

import itertools

import pytest

from appliance.pbx.gsm_machine import (
    CAUSES,
    ERROR_ID,
    TRANSITIONS,
    Act,
    Action,
    GsmEvent,
    GsmInput,
    GsmState,
    HangupCause,
    InvalidTransition,
    Transition,
    classify,
    reject_cause,
    step,
)

S, E, A = GsmState, GsmEvent, Act
OUTBOUND = (S.DIALLING, S.ALERTING)
LOST = (A.MARK_LOST, A.END_LEG, A.FINISH)

# Every (state, event) pair with its expected next state and action kinds; None: invalid.
EXPECTED: dict[tuple[GsmState, GsmEvent], tuple[GsmState, tuple[Act, ...]] | None] = {
    (S.RESERVED, E.INVITE): (S.DIALLING, (A.CANCEL_TIMER, A.RECORD_TRUNK, A.DIAL)),
    (S.RESERVED, E.EXPIRED): (S.RELEASED, (A.FORGET, A.RELEASE_SIM)),
    (S.RESERVED, E.ALERTING): (S.RESERVED, ()),
    (S.RESERVED, E.CONNECTED): (S.RESERVED, ()),
    (S.RESERVED, E.ANSWERED): (S.RESERVED, ()),
    (S.RESERVED, E.RELEASED): (S.RESERVED, ()),
    (S.RESERVED, E.MODEM_LOST): (S.RESERVED, ()),
    (S.RESERVED, E.VOICE_LOST): (S.RELEASED, LOST),
    (S.RESERVED, E.SIP_ENDED): (S.RELEASED, (A.FINISH, A.FORGET)),
    (S.RESERVED, E.WORKER_LOST): (S.RESERVED, ()),
    (S.RESERVED, E.HUNG_UP): None,
    (S.RESERVED, E.TIME_LIMIT): None,
    (S.RESERVED, E.DIAL_FAILED): None,
    (S.RESERVED, E.ANSWER_FAILED): None,
    (S.RINGING, E.INVITE): (S.RINGING, (A.REFUSE_INVITE,)),
    (S.RINGING, E.EXPIRED): None,
    (S.RINGING, E.ALERTING): (S.RINGING, ()),
    (S.RINGING, E.CONNECTED): (S.ACTIVE, (A.MARK_ANSWERED, A.ARM_TIME_LIMIT)),
    (S.RINGING, E.ANSWERED): (S.RINGING, (A.ANSWER_MODEM,)),
    (S.RINGING, E.RELEASED): (
        S.RELEASED,
        (A.KEEP_CAUSE, A.RECORD_CDR, A.END_LEG, A.FINISH),
    ),
    (S.RINGING, E.MODEM_LOST): (S.RELEASED, LOST),
    (S.RINGING, E.VOICE_LOST): (S.RELEASED, LOST),
    (S.RINGING, E.SIP_ENDED): (S.ENDING, (A.REJECT_MODEM,)),
    (S.RINGING, E.WORKER_LOST): (S.ENDING, (A.SET_CAUSE, A.REJECT_MODEM)),
    (S.RINGING, E.HUNG_UP): None,
    (S.RINGING, E.TIME_LIMIT): None,
    (S.RINGING, E.DIAL_FAILED): None,
    (S.RINGING, E.ANSWER_FAILED): (S.RELEASED, (A.END_LEG, A.FINISH)),
    (S.ACTIVE, E.INVITE): (S.ACTIVE, (A.REFUSE_INVITE,)),
    (S.ACTIVE, E.EXPIRED): (S.ACTIVE, ()),
    (S.ACTIVE, E.ALERTING): (S.ACTIVE, ()),
    (S.ACTIVE, E.CONNECTED): (S.ACTIVE, ()),
    (S.ACTIVE, E.ANSWERED): (S.ACTIVE, ()),
    (S.ACTIVE, E.RELEASED): (S.RELEASED, (A.KEEP_CAUSE, A.RECORD_CDR, A.END_LEG, A.FINISH)),
    (S.ACTIVE, E.MODEM_LOST): (S.RELEASED, LOST),
    (S.ACTIVE, E.VOICE_LOST): (S.RELEASED, LOST),
    (S.ACTIVE, E.SIP_ENDED): (S.ENDING, (A.CLEAR_MODEM,)),
    (S.ACTIVE, E.WORKER_LOST): (S.ENDING, (A.SET_CAUSE, A.CLEAR_MODEM)),
    (S.ACTIVE, E.HUNG_UP): None,
    (S.ACTIVE, E.TIME_LIMIT): (S.ACTIVE, (A.SET_CAUSE, A.HANG_UP)),
    (S.ACTIVE, E.DIAL_FAILED): None,
    (S.ACTIVE, E.ANSWER_FAILED): (S.ACTIVE, ()),
    (S.ENDING, E.VOICE_LOST): (S.ENDING, LOST),
    (S.ENDING, E.HUNG_UP): (S.RELEASED, (A.FINISH, A.FORGET)),
    (S.RELEASED, E.INVITE): (S.RELEASED, (A.REFUSE_INVITE,)),
    (S.RELEASED, E.SIP_ENDED): (S.RELEASED, (A.FORGET,)),
    (S.RELEASED, E.WORKER_LOST): (S.RELEASED, (A.FORGET,)),
    (S.RELEASED, E.HUNG_UP): None,
}
for state in OUTBOUND:
    EXPECTED |= {
        (state, E.INVITE): (state, (A.REFUSE_INVITE,)),
        (state, E.EXPIRED): (state, ()),
        (state, E.CONNECTED): (S.ACTIVE, (A.MARK_ANSWERED, A.ARM_TIME_LIMIT, A.OPEN_BRIDGE)),
        (state, E.ANSWERED): (state, ()),
        (state, E.RELEASED): (S.RELEASED, (A.KEEP_CAUSE, A.FAIL_OVER, A.FINISH)),
        (state, E.MODEM_LOST): (S.RELEASED, (A.KEEP_CAUSE, A.FAIL_OVER, A.FINISH)),
        (state, E.VOICE_LOST): (S.RELEASED, LOST),
        (state, E.SIP_ENDED): (S.ENDING, (A.CLEAR_MODEM,)),
        (state, E.WORKER_LOST): (S.ENDING, (A.SET_CAUSE, A.CLEAR_MODEM)),
        (state, E.HUNG_UP): None,
        (state, E.TIME_LIMIT): None,
        (state, E.DIAL_FAILED): (S.RELEASED, (A.SET_CAUSE, A.FAIL_OVER, A.FINISH)),
        (state, E.ANSWER_FAILED): None,
    }
EXPECTED[(S.DIALLING, E.ALERTING)] = (S.ALERTING, (A.SEND_PROGRESS,))
EXPECTED[(S.ALERTING, E.ALERTING)] = (S.ALERTING, ())
# Once the modem is being hung up or the call is counted, late events change nothing.
for state, event in itertools.product((S.ENDING, S.RELEASED), GsmEvent):
    EXPECTED.setdefault((state, event), (state, ()))
EXPECTED[(S.ENDING, E.INVITE)] = (S.ENDING, (A.REFUSE_INVITE,))

PAIRS = list(itertools.product(GsmState, GsmEvent))


def test_the_table_and_the_expectations_cover_every_state_and_event() -> None:
    assert set(TRANSITIONS) == set(GsmState)
    assert all(set(rules) == set(GsmEvent) for rules in TRANSITIONS.values())
    assert set(EXPECTED) == set(PAIRS)


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_every_state_and_event(state: GsmState, event: GsmEvent) -> None:
    expected = EXPECTED[(state, event)]
    if expected is None:
        with pytest.raises(InvalidTransition) as raised:
            step(state, GsmInput(event))
        assert raised.value.error_id == ERROR_ID
        assert (raised.value.state, raised.value.event) == (state, event)
        assert str(raised.value).startswith(f"{ERROR_ID}: {event.value} ")
        return
    transition = step(state, GsmInput(event, cause="no carrier", sip_code=486))
    assert (transition.state, tuple(a.act for a in transition.actions)) == expected


def test_a_release_before_answer_ends_the_leg_with_the_causes_sip_code() -> None:
    busy = step(S.ALERTING, GsmInput(E.RELEASED, cause="17"))
    assert busy == Transition(
        S.RELEASED,
        (
            Action(A.KEEP_CAUSE, text="17"),
            Action(A.END_LEG, code=486, reason="busy"),
            Action(A.FINISH),
        ),
    )


def test_a_channel_failure_before_answer_fails_over_with_a_503() -> None:
    failed = step(S.DIALLING, GsmInput(E.RELEASED, cause="NO CARRIER"))
    assert failed.actions[1] == Action(A.FAIL_OVER, code=503, reason="gsm-no-carrier")
    lost = step(S.DIALLING, GsmInput(E.MODEM_LOST, cause="modem lost"))
    assert lost.actions[1] == Action(A.FAIL_OVER, code=503, reason="gsm-modem-lost")
    dial = step(S.DIALLING, GsmInput(E.DIAL_FAILED, cause="no network"))
    assert dial.actions[:2] == (
        Action(A.SET_CAUSE, text="no network"),
        Action(A.FAIL_OVER, code=503, reason="gsm-no-network"),
    )


def test_legs_ended_by_the_modem_carry_their_codes() -> None:
    released = step(S.ACTIVE, GsmInput(E.RELEASED, cause=None))
    assert Action(A.END_LEG, code=200, reason="gsm released") in released.actions
    lost = step(S.ACTIVE, GsmInput(E.VOICE_LOST))
    assert Action(A.END_LEG, code=503, reason="modem-lost") in lost.actions
    failed = step(S.RINGING, GsmInput(E.ANSWER_FAILED))
    assert Action(A.END_LEG, code=503, reason="answer failed") in failed.actions


def test_timers_and_dead_workers_name_their_cause() -> None:
    limit = step(S.ACTIVE, GsmInput(E.TIME_LIMIT))
    assert limit.actions[0] == Action(A.SET_CAUSE, text="time-limit")
    gone = step(S.ACTIVE, GsmInput(E.WORKER_LOST))
    assert gone.actions[0] == Action(A.SET_CAUSE, text="media-worker-restart")


@pytest.mark.parametrize(("sip_code", "q850"), [(486, 17), (480, 21), (0, 21), (603, 21)])
def test_a_ringing_call_is_rejected_busy_only_when_the_phone_was_busy(
    sip_code: int, q850: int
) -> None:
    ended = step(S.RINGING, GsmInput(E.SIP_ENDED, sip_code=sip_code))
    assert ended.actions == (Action(A.REJECT_MODEM, q850=q850),)
    assert reject_cause(sip_code) == q850


@pytest.mark.parametrize(
    ("cause", "kind"),
    [
        ("BUSY", HangupCause.BUSY),
        (" 17 ", HangupCause.BUSY),
        ("no answer", HangupCause.NO_ANSWER),
        ("18", HangupCause.NO_ANSWER),
        ("rejected 21", HangupCause.REJECTED),
        ("28", HangupCause.UNALLOCATED),
        ("34", HangupCause.CHANNEL_FAILURE),
        ("", HangupCause.CHANNEL_FAILURE),
        (None, HangupCause.CHANNEL_FAILURE),
    ],
)
def test_causes_are_classified(cause: str | None, kind: HangupCause) -> None:
    assert classify(cause) is kind


def test_only_channel_failures_may_try_another_channel() -> None:
    assert [c for c, m in CAUSES.items() if m.retry] == [HangupCause.CHANNEL_FAILURE]
    assert set(CAUSES) == set(HangupCause)
