"""The ACD core: ordering, offers, agent states, wrap-up and maximum wait."""

from __future__ import annotations

import pytest

from appliance.contact.acd import Acd, AcdError, Offer
from appliance.contact.settings import QueueSettings


def acd(**queue: object) -> Acd:
    settings = {"number": "700", "agents": ("1001", "1002"), "wrapup_s": 5.0,
                "max_wait_s": 60.0, "priority_callers": ("1009",), **queue}  # fmt: skip
    return Acd({"sales": QueueSettings.model_validate(settings)})


def logged_in(core: Acd, *agents: str) -> Acd:
    for at, number in enumerate(agents):
        core.login(number, float(at))
    return core


def test_priority_callers_wait_ahead_of_earlier_callers() -> None:
    core = acd()
    core.enter("a", "sales", "2001", 0.0)
    core.enter("b", "sales", "2002", 1.0)
    vip = core.enter("c", "sales", "1009", 2.0)
    assert vip.position == 1
    assert [w.call_id for w in core.waiting["sales"]] == ["c", "a", "b"]
    assert core.position("b") == 3


def test_the_longest_idle_agent_gets_the_first_caller() -> None:
    core = logged_in(acd(), "1002", "1001")
    core.enter("a", "sales", "2001", 5.0)
    core.enter("b", "sales", "2002", 6.0)
    assert core.offers(7.0) == [Offer("a", "sales", "1002"), Offer("b", "sales", "1001")]


def test_an_agent_is_never_offered_a_second_call_while_ringing_or_talking() -> None:
    core = logged_in(acd(agents=("1001",)), "1001")
    core.enter("a", "sales", "2001", 1.0)
    core.enter("b", "sales", "2002", 1.0)
    assert core.offers(2.0) == [Offer("a", "sales", "1001")]
    assert core.offers(3.0) == []
    core.answered("a", "1001", 4.0)
    assert core.agents["1001"].state == "on-call"
    assert core.offers(5.0) == []
    with pytest.raises(AcdError) as err:
        core.pause("1001", "lunch", 5.0)
    assert err.value.error_id == "agent-busy"


def test_no_answer_pauses_the_agent_and_the_caller_goes_to_the_next_one() -> None:
    core = logged_in(acd(), "1001", "1002")
    core.enter("a", "sales", "2001", 2.0)
    assert core.offers(2.0) == [Offer("a", "sales", "1001")]
    core.declined("a", "1001", 17.0)
    assert (core.agents["1001"].state, core.agents["1001"].reason) == ("paused", "no-answer")
    assert core.offers(17.0) == [Offer("a", "sales", "1002")]


def test_wrap_up_ends_after_the_queue_time() -> None:
    core = logged_in(acd(agents=("1001",)), "1001")
    core.enter("a", "sales", "2001", 1.0)
    core.offers(1.0)
    core.answered("a", "1001", 2.0)
    core.finished("1001", "sales", 10.0)
    core.enter("b", "sales", "2002", 11.0)
    assert core.offers(11.0) == []
    assert core.tick(14.9) == []
    assert [a.number for a in core.tick(15.0)] == ["1001"]
    assert core.offers(15.0) == [Offer("b", "sales", "1001")]


def test_a_caller_who_hangs_up_keeps_the_agent_ringing_until_its_phone_stops() -> None:
    core = logged_in(acd(agents=("1001",)), "1001")
    core.enter("a", "sales", "2001", 1.0)
    core.offers(1.0)
    core.leave("a")
    core.enter("b", "sales", "2002", 2.0)
    assert core.offers(2.0) == []
    core.released("a", "1001", 2.5)
    assert core.offers(2.5) == [Offer("b", "sales", "1001")]


def test_unregistered_and_paused_agents_get_no_offers() -> None:
    core = logged_in(acd(), "1001", "1002")
    core.registered("1001", False)
    core.pause("1002", "lunch", 3.0)
    core.enter("a", "sales", "2001", 4.0)
    assert core.offers(4.0) == []
    core.resume("1002", 5.0)
    assert core.offers(5.0) == [Offer("a", "sales", "1002")]


def test_callers_past_the_maximum_wait_expire_unless_being_offered() -> None:
    core = acd()
    core.enter("a", "sales", "2001", 0.0)
    core.enter("b", "sales", "2002", 30.0)
    assert [w.call_id for w in core.expired(60.0)] == ["a"]


def test_restored_agents_keep_their_pause_and_lose_calls_that_did_not_survive() -> None:
    core = acd()
    core.restore({"number": "1001", "state": "paused", "reason": "lunch", "since": 1.0}, 9.0)
    core.restore({"number": "1002", "state": "on-call", "call_id": "x"}, 9.0)
    core.restore({"number": "9999", "state": "available"}, 9.0)
    assert (core.agents["1001"].state, core.agents["1001"].reason) == ("paused", "lunch")
    assert core.agents["1002"].state == "available"
    assert "9999" not in core.agents


def test_unknown_agents_and_resuming_an_agent_not_paused_are_refused() -> None:
    core = logged_in(acd(), "1001")
    with pytest.raises(AcdError, match="no agent"):
        core.login("4444", 1.0)
    with pytest.raises(AcdError) as err:
        core.resume("1001", 1.0)
    assert err.value.error_id == "agent-not-paused"
