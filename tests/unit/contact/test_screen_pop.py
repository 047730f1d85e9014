"""Screen pops from CTI events: which call an agent's page shows, and when it stops."""

from __future__ import annotations

import logging

import pytest

from appliance.contact.acd import Agent
from appliance.contact.cti import CtiEvent, CtiStream
from appliance.contact.screen_pop import ScreenPops


def event(name: str, at: float, **data: object) -> CtiEvent:
    return CtiEvent(1, name, at, dict(data))


def queued(pops: ScreenPops, call_id: str, at: float = 100.0) -> None:
    pops.on_event(
        event(
            "call.queued",
            at,
            call_id=call_id,
            queue="support",
            caller="1001",
            priority=1,
            variables={"account": "A-1"},
        )
    )


def test_a_ringing_agent_sees_the_caller_and_the_wait_so_far() -> None:
    pops = ScreenPops()
    queued(pops, "c1")
    pops.on_event(event("call.offered", 101.0, call_id="c1", agent="1003"))
    pop = pops.current(Agent("1003", state="ringing", call_id="c1"), now=112.0)
    assert pop is not None
    assert (pop.call.caller, pop.call.queue, pop.call.priority) == ("1001", "support", 1)
    assert (pop.wait_s, pop.talk_s, pop.call.variables) == (12.0, None, {"account": "A-1"})


def test_once_answered_the_wait_is_fixed_and_the_talk_time_runs() -> None:
    pops = ScreenPops()
    queued(pops, "c1")
    pops.on_event(event("call.answered", 130.0, call_id="c1", agent="1003", wait_s=30.0))
    pop = pops.current(Agent("1003", state="on-call", call_id="c1"), now=145.0)
    assert pop is not None
    assert (pop.wait_s, pop.talk_s) == (30.0, 15.0)


def test_nothing_shows_for_an_agent_that_moved_on_or_a_call_that_ended() -> None:
    pops = ScreenPops()
    queued(pops, "c1")
    pops.on_event(event("call.offered", 101.0, call_id="c1", agent="1003"))
    assert pops.current(Agent("1003", state="paused", call_id="c1"), now=110.0) is None
    assert pops.current(Agent("1004", state="ringing", call_id="c1"), now=110.0) is None
    pops.on_event(event("call.abandoned", 111.0, call_id="c1"))
    assert pops.current(Agent("1003", state="ringing", call_id="c1"), now=112.0) is None


def test_the_tracker_keeps_at_most_its_cap_of_calls() -> None:
    pops = ScreenPops(max_calls=2)
    for call_id in ("c1", "c2", "c3"):
        queued(pops, call_id)
        pops.on_event(event("call.offered", 101.0, call_id=call_id, agent="1003"))
    assert pops.current(Agent("1003", state="ringing", call_id="c1"), now=110.0) is None
    assert pops.current(Agent("1003", state="ringing", call_id="c3"), now=110.0) is not None


def test_a_failing_listener_is_logged_and_the_event_still_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = CtiStream()
    seen: list[str] = []

    def broken(item: CtiEvent) -> None:
        raise KeyError(item.event)

    stream.listeners += [broken, lambda item: seen.append(item.event)]
    with caplog.at_level(logging.ERROR):
        stream.publish("call.queued", call_id="c1")
    assert seen == ["call.queued"]
    assert "CTI listener failed on call.queued" in caplog.text
