"""The ACD's agent choice per queue strategy, penalties, skills relaxed over waiting time,
and the expected wait; on a fake clock (plain seconds)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from appliance.contact.acd import Acd, Offer, wait_words
from appliance.contact.choice import parse_skills, required
from appliance.contact.settings import ContactSettings, QueueSettings

FOUR = ("1001", "1002", "1003", "1004")


def acd(strategy: str, agents: Any = FOUR, **queue: Any) -> Acd:
    settings = {"number": "700", "agents": agents, "strategy": strategy, "wrapup_s": 0.0,
                **queue}  # fmt: skip
    return Acd({"q": QueueSettings.model_validate(settings)}, day=lambda now: str(int(now // 1000)))


def logged_in(core: Acd, *agents: str) -> Acd:
    for at, number in enumerate(agents):
        core.login(number, float(at))
    return core


def talk(core: Acd, call_id: str, agent: str, at: float, seconds: float = 10.0) -> None:
    """One call of ``call_id`` offered to and answered by ``agent``, then ended."""
    core.answered(call_id, agent, at)
    core.finished(agent, "q", at + seconds)
    core.tick(at + seconds)


def test_ring_all_rings_every_free_agent_and_each_is_offered_one_call_at_a_time() -> None:
    core = logged_in(acd("ring-all"), "1001", "1002", "1003")
    core.enter("a", "q", "2001", 10.0)
    core.enter("b", "q", "2002", 11.0)
    assert core.offers(12.0) == [Offer("a", "q", n) for n in ("1001", "1002", "1003")]
    assert core.offers(13.0) == []
    core.answered("a", "1002", 14.0)
    assert core.offers(14.0) == [], "the others ring until their phones stop"
    core.released("a", "1001", 14.1)
    core.released("a", "1003", 14.1)
    states = {n: a.state for n, a in core.agents.items() if n != "1004"}
    assert states == {"1001": "available", "1002": "on-call", "1003": "available"}
    assert core.offers(14.2) == [Offer("b", "q", "1001"), Offer("b", "q", "1003")]


def test_ring_all_caller_is_offered_again_only_when_no_agent_rings_for_it() -> None:
    core = logged_in(acd("ring-all", agents=("1001", "1002")), "1001", "1002")
    core.enter("a", "q", "2001", 10.0)
    core.offers(10.0)
    core.declined("a", "1001", 25.0)
    assert core.offers(25.0) == [], "1002 still rings for it"
    core.declined("a", "1002", 25.0)
    assert core.agents["1002"].reason == "no-answer"
    core.resume("1001", 26.0)
    assert core.offers(26.0) == [Offer("a", "q", "1001")]


def test_longest_idle_picks_the_agent_available_longest() -> None:
    core = logged_in(acd("longest-idle"), "1003", "1001", "1002")
    core.enter("a", "q", "2001", 10.0)
    assert core.offers(10.0) == [Offer("a", "q", "1003")]


def test_round_robin_continues_after_the_last_agent_offered_across_calls() -> None:
    core = logged_in(acd("round-robin"), "1004", "1003", "1002", "1001")
    got = []
    for i in range(6):
        call = f"c{i}"
        core.enter(call, "q", "2001", 100.0 * i)
        (offer,) = core.offers(100.0 * i)
        got.append(offer.agent)
        talk(core, call, offer.agent, 100.0 * i + 1)
    assert got == ["1001", "1002", "1003", "1004", "1001", "1002"]


def test_round_robin_skips_busy_agents_and_resumes_from_its_memory() -> None:
    core = logged_in(acd("round-robin"), *FOUR)
    core.last_offered["q"] = "1002"
    core.pause("1003", "lunch", 5.0)
    core.enter("a", "q", "2001", 10.0)
    core.enter("b", "q", "2002", 10.0)
    assert [o.agent for o in core.offers(10.0)] == ["1004", "1001"]
    assert core.last_offered["q"] == "1001"


def test_fewest_calls_picks_the_agent_with_fewest_answered_calls_today() -> None:
    core = logged_in(acd("fewest-calls", agents=("1001", "1002")), "1002", "1001")
    core.agents["1002"].calls_today, core.agents["1002"].calls_day = 1, "0"
    core.enter("a", "q", "2001", 100.0)
    assert core.offers(100.0) == [Offer("a", "q", "1001")], "not 1002, idle longer"
    talk(core, "a", "1001", 101.0)
    talk_more = core.enter("b", "q", "2002", 200.0)
    core.offers(200.0)
    talk(core, talk_more.call_id, "1002", 201.0)
    assert (core.agents["1001"].calls_today, core.agents["1002"].calls_today) == (1, 2)
    core.enter("c", "q", "2003", 300.0)
    assert core.offers(300.0) == [Offer("c", "q", "1001")]


def test_fewest_calls_counts_only_today() -> None:
    core = logged_in(acd("fewest-calls", agents=("1001", "1002")), "1002", "1001")
    core.agents["1001"].calls_today, core.agents["1001"].calls_day = 9, "0"
    core.enter("a", "q", "2001", 1500.0)
    assert core.offers(1500.0) == [Offer("a", "q", "1002")], "1002 idle longer, both 0 today"


def test_lower_penalty_agents_are_offered_first_in_every_strategy() -> None:
    agents = [{"extension": "1001", "penalty": 2}, {"extension": "1002", "penalty": 1},
              {"extension": "1003", "penalty": 1}]  # fmt: skip
    core = logged_in(acd("ring-all", agents=agents), "1001", "1002", "1003")
    core.enter("a", "q", "2001", 10.0)
    core.enter("b", "q", "2002", 10.0)
    assert core.offers(10.0) == [Offer("a", "q", "1002"), Offer("a", "q", "1003"),
                                 Offer("b", "q", "1001")]  # fmt: skip


SKILLED = [{"extension": "1001", "skills": {"billing": 2}},
           {"extension": "1002", "skills": {"billing": 5, "english": 3}},
           {"extension": "1003", "skills": {"english": 5}}]  # fmt: skip


def test_skills_offer_the_best_qualified_agent_not_the_longest_idle() -> None:
    core = logged_in(acd("skills", agents=SKILLED, skills={"billing": 2}), "1001", "1003",
                     "1002")  # fmt: skip
    core.enter("a", "q", "2001", 10.0)
    assert core.offers(10.0) == [Offer("a", "q", "1002")]


def test_a_caller_no_free_agent_fits_waits_while_the_next_caller_is_served() -> None:
    core = logged_in(acd("skills", agents=SKILLED), "1001", "1003")
    core.enter("a", "q", "2001", 10.0, skills={"billing": 4})
    core.enter("b", "q", "2002", 11.0, skills={"english": 4})
    assert core.offers(12.0) == [Offer("b", "q", "1003")]


def test_the_skill_requirement_drops_one_level_every_relax_interval() -> None:
    core = logged_in(acd("skills", agents=SKILLED, skills={"billing": 4}, skill_relax_s=20),
                     "1001", "1003")  # fmt: skip
    core.enter("a", "q", "2001", 100.0)
    assert core.offers(100.0) == []
    assert core.offers(139.9) == [], "after 20 s billing 3: still nobody"
    assert core.offers(140.0) == [Offer("a", "q", "1001")], "after 40 s billing 2"


def test_a_requirement_relaxed_to_nothing_lets_any_agent_answer() -> None:
    assert required({"billing": 2, "english": 5}, 45.0, 20.0) == {"english": 3}
    assert required({"billing": 2}, 10_000.0, 20.0) == {}
    assert required({"billing": 2}, 10_000.0, 0.0) == {"billing": 2}, "0: never relaxed"


def test_flow_skill_variables_parse_or_are_refused() -> None:
    assert parse_skills("billing:4, english:3") == {"billing": 4, "english": 3}
    for bad in ("billing", "billing:x", "Billing:3", "billing:11", "billing:0"):
        with pytest.raises(ValueError, match="skill"):
            parse_skills(bad)


def test_expected_wait_is_position_times_average_handle_time_over_staffed_agents() -> None:
    core = logged_in(acd("longest-idle", agents=("1001", "1002"), handle_time_s=120),
                     "1001", "1002")  # fmt: skip
    core.pause("1002", "lunch", 3.0)
    core.enter("a", "q", "2001", 10.0)
    core.enter("b", "q", "2002", 11.0)
    assert core.expected_wait("b") == 240.0, "no calls yet: handle_time_s, one agent"
    core.resume("1002", 12.0)
    assert core.expected_wait("b") == 120.0
    core.offers(20.0)
    talk(core, "a", "1002", 30.0, seconds=30.0)
    talk(core, "b", "1001", 30.0, seconds=90.0)
    core.enter("c", "q", "2003", 200.0)
    assert core.expected_wait("c") == 30.0, "average of 30 s and 90 s over two agents"
    assert core.expected_wait("nobody") == 0.0


@pytest.mark.parametrize(("seconds", "words"), [
    (0.0, "less than a minute"), (59.9, "less than a minute"), (60.0, "1 minute"),
    (100.0, "2 minutes"), (269.0, "4 minutes"),
])  # fmt: skip
def test_the_expected_wait_is_spoken_in_whole_minutes(seconds: float, words: str) -> None:
    assert wait_words(seconds) == words


@pytest.mark.parametrize(("queue", "key"), [
    ({"strategy": "fastest"}, "queues.q.strategy"),
    ({"skills": {"billing": 2}}, "skills: needs strategy 'skills'"),
    ({"strategy": "skills", "skills": {"billing": 11}}, "queues.q.skills"),
    ({"agents": [{"extension": "1001", "skills": {"BAD": 1}}]}, "queues.q.agents.0.skills"),
    ({"agents": [{"extension": "1001", "penalty": -1}]}, "queues.q.agents.0.penalty"),
    ({"agents": ["1001", {"extension": "1001"}]}, "agents: 1001 listed twice"),
    ({"announcement": "Wait {minutes}."}, "unknown placeholders {minutes}"),
])  # fmt: skip
def test_bad_strategies_skills_and_agents_are_refused_with_the_key(queue: Any, key: str) -> None:
    doc = {"number": "700", "agents": ["1001"], **queue}
    with pytest.raises(ValidationError) as err:
        ContactSettings.model_validate({"queues": {"q": doc}})
    assert key in str(err.value)


def test_plain_extensions_and_skilled_agents_mix() -> None:
    queue = QueueSettings.model_validate({"number": "700", "agents": ["1001", SKILLED[1]]})
    assert queue.numbers == ("1001", "1002")
    assert (queue.agents[0].skills, queue.agents[1].skills["billing"]) == ({}, 5)


def test_an_agent_in_two_ring_all_queues_is_offered_one_call_at_a_time() -> None:
    queue = {"agents": ["1001", "1002"], "strategy": "ring-all"}
    core = Acd({name: QueueSettings.model_validate({"number": number, **queue})
                for name, number in (("a", "700"), ("b", "701"))})  # fmt: skip
    logged_in(core, "1001", "1002")
    core.enter("x", "a", "2001", 10.0)
    core.enter("y", "b", "2002", 10.0)
    assert core.offers(10.0) == [Offer("x", "a", "1001"), Offer("x", "a", "1002")]
    core.answered("x", "1001", 11.0)
    core.released("x", "1002", 11.0)
    assert core.offers(11.0) == [Offer("y", "b", "1002")]
    assert core.offers(12.0) == []
