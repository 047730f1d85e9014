"""ACD strategies end to end: real pjsua2 phones through Kamailio into the media workers.

A ring-all queue rings every free agent's phone at once; the first to answer talks with
the caller and the other phone stops ringing, its agent free again at once. A skills
queue rings the agent whose skill level meets the caller's requirement, not the one idle
longest. A caller offered a callback presses 1 and hangs up; when the agent is free its
phone rings first, then the caller's, and the two talk; a supervisor joins that call back
as any queue call (monitor, then whisper). A caller who lets the call back ring out is
called again after the queue's retry interval and talks with the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pbx.contact_env import (
    CtiListener,
    agent,
    agent_state,
    contact_pbx,
    live,
    recorded_s,
    waiting,
)
from tests.integration.pbx.harness import (
    Pbx,
    Phone,
    media,
    phones,
    wait_for,
)
from tests.integration.pbx.test_contact_queues import heard, spoken
from tests.integration.pbx.test_contact_supervisors import (
    AGENT_HZ,
    CALLER_HZ,
    SUPERVISOR_HZ,
    deaf_to,
    hears,
    settle,
)

EXTENSIONS = {"1001": "Alice", "1003": "Carol", "1004": "Dave"}
CONTACT = {"queues": {
    "all": {"number": "710", "agents": ["1003", "1004"], "strategy": "ring-all",
            "ring_timeout_s": 20, "wrapup_s": 1},
    "billing": {"number": "711", "strategy": "skills", "skills": {"billing": 3},
                "agents": [{"extension": "1003", "skills": {"billing": 1}},
                           {"extension": "1004", "skills": {"billing": 4}}],
                "ring_timeout_s": 20, "wrapup_s": 1},
    "callme": {"number": "712", "agents": ["1003"], "callback_after_s": 2, "wrapup_s": 1},
    "retry": {"number": "713", "agents": ["1004"], "callback_after_s": 2, "wrapup_s": 1,
              "callback_ring_s": 4, "callback_retries": 1, "callback_retry_s": 6},
}, "supervisors": {"1004": {"queues": ["callme"]}}}  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with contact_pbx(
        tmp_path_factory, "strategy-pbx", CONTACT, extensions=EXTENSIONS, media=media(2)
    ) as instance:
        yield instance


def both_available(pbx: Pbx, queue: str) -> None:
    """Both agents logged in (1003 first, so it is the one idle longest) and free."""
    for number in ("1003", "1004"):
        agent(pbx, number, "logout")
        agent(pbx, number, "login")
    wait_for(lambda: {a["state"] for a in live(pbx, queue)["agents"]} == {"available"}, 10,
             lambda: str(live(pbx, queue)))  # fmt: skip


def state_of(pbx: Pbx, number: str) -> Any:
    return agent_state(pbx, "all", number)["state"]


def test_ring_all_rings_every_agent_and_the_other_stops_when_one_answers(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, ("1001", 450), ("1003", 1000), ("1004", 300)) as found:
        alice, carol, dave = found
        both_available(site, "all")
        alice.send("call", to="710")
        alice.state("CONFIRMED")
        carol.wait(lambda e: e["ev"] == "incoming", 15)
        dave.answer(timeout=15)
        ended = carol.state("DISCONNECTED", timeout=10)
        assert ended["code"] == 487, ended
        wait_for(lambda: state_of(site, "1003") == "available", 5,
                 lambda: str(live(site, "all")))  # fmt: skip
        assert state_of(site, "1004") == "on-call"
        start = recorded_s(dave)
        wait_for(lambda: recorded_s(dave) > start + 2.5, 15, lambda: "dave heard nothing")
        dave.send("hangup")
        dave.state("DISCONNECTED")
        alice.state("DISCONNECTED")
    assert heard(dave, start + 0.5, start + 2.0) == 450.0, "dave did not hear alice"
    assert not [e for e in carol.events if e["ev"] == "incoming"], "carol was rung twice"
    call_id = cti.named("call.answered")[0]["data"]["call_id"]
    offered = sorted(e["data"]["agent"] for e in cti.named("call.offered", call_id))
    assert offered == ["1003", "1004"]
    cdr = site.cdr_for(lambda c: c["call_id"] == call_id)
    assert (cdr["variables"]["queue_outcome"], cdr["variables"]["queue_agent"]) == (
        "answered", "1004")  # fmt: skip


def test_the_skills_queue_rings_the_skilled_agent_not_the_longest_idle(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, ("1001", 450), ("1003", 1000), ("1004", 300)) as found:
        alice, carol, dave = found
        both_available(site, "billing")
        alice.send("call", to="711")
        alice.state("CONFIRMED")
        waiting(site, "billing", 1)
        incoming = dave.answer(timeout=15)
        assert "1001" in incoming["remote"]
        start = recorded_s(alice)
        wait_for(lambda: recorded_s(alice) > start + 2.5, 15, lambda: "alice heard nothing")
        alice.send("hangup")
        alice.state("DISCONNECTED")
        dave.state("DISCONNECTED")
        with pytest.raises(AssertionError):
            carol.wait(lambda e: e["ev"] == "incoming", 1)
    assert heard(alice, start + 0.5, start + 2.0) == 300.0, "alice did not hear dave"
    offers = [e["data"]["agent"] for e in cti.named("call.offered")]
    assert offers == ["1004"]


def called_back(site: Pbx, cti: CtiListener, alice: Phone, carol: Phone) -> str:
    """Alice (queue ``callme``) presses 1 and hangs up; carol logs in, answers the agent
    leg, then alice answers the call back. The queued call's Call-ID."""
    agent(site, "1003", "logout")
    alice.send("call", to="712")
    alice.state("CONFIRMED")
    wait_for(lambda: bool(cti.named("call.announced")), 20, lambda: str(cti.events))
    alice.send("dtmf", digits="1")
    alice.state("DISCONNECTED", timeout=10)
    (requested,) = cti.named("call.callback-requested")
    agent(site, "1003", "login")
    carol.answer(timeout=15)
    alice.answer(timeout=15)
    return str(requested["data"]["call_id"])


def test_a_supervisor_monitors_then_whispers_on_a_call_back(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    trio = (("1001", int(CALLER_HZ)), ("1003", int(AGENT_HZ)), ("1004", int(SUPERVISOR_HZ)))
    with phones(site, tmp_path, *trio) as (alice, carol, dave):
        call_id = called_back(site, cti, alice, carol)
        dave.send("call", to="*901003")
        dave.state("CONFIRMED", timeout=15)
        wait_for(lambda: bool(cti.named("supervisor.joined")), 10, lambda: str(cti.events))
        monitor = settle(alice, carol, dave)
        dave.send("dtmf", digits="5")
        wait_for(lambda: bool(cti.named("supervisor.mode")), 10, lambda: str(cti.events))
        whisper = settle(alice, carol, dave)
        carol.send("hangup")
        for phone in (carol, alice, dave):
            phone.state("DISCONNECTED", timeout=15)
    (joined,) = cti.named("supervisor.joined")
    assert (joined["data"]["call"], joined["data"]["queue"]) == (call_id, "callme")
    hears(dave, monitor[2], CALLER_HZ, "monitor: the supervisor hears the caller")
    hears(dave, monitor[2], AGENT_HZ, "monitor: the supervisor hears the agent")
    deaf_to(carol, monitor[1], SUPERVISOR_HZ, "monitor: the agent does not hear it")
    deaf_to(alice, monitor[0], SUPERVISOR_HZ, "monitor: the caller does not hear it")
    hears(carol, whisper[1], SUPERVISOR_HZ, "whisper: the agent hears the supervisor")
    deaf_to(alice, whisper[0], SUPERVISOR_HZ, "whisper: the caller does not")
    hears(dave, whisper[2], CALLER_HZ, "whisper: the supervisor still hears the caller")
    hears(alice, whisper[0], AGENT_HZ, "the caller and the agent still talk")


def test_a_caller_who_presses_1_is_called_back_once_the_agent_answered(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, ("1001", 450), ("1003", 1000)) as (alice, carol):
        agent(site, "1003", "logout")
        alice.send("call", to="712")
        alice.state("CONFIRMED")
        wait_for(lambda: bool(cti.named("call.announced")), 20, lambda: str(cti.events))
        alice.send("dtmf", digits="1")
        alice.state("DISCONNECTED", timeout=10)
        (requested,) = cti.named("call.callback-requested")
        call_id = requested["data"]["call_id"]
        cdr = site.cdr_for(lambda c: c["call_id"] == call_id)
        assert cdr["variables"]["queue_outcome"] == "callback"
        assert [w["caller"] for w in live(site, "callme")["waiting"]] == ["1001"]
        agent(site, "1003", "login")
        incoming = carol.answer(timeout=15)
        assert "1001" in incoming["remote"], "the agent sees whom it calls back"
        assert not [e for e in alice.events if e["ev"] == "incoming"], "agent leg first"
        called_back = alice.answer(timeout=15)
        assert "1003" in called_back["remote"]
        start_alice, start_carol = recorded_s(alice), recorded_s(carol)
        wait_for(lambda: recorded_s(alice) > start_alice + 2.5
                 and recorded_s(carol) > start_carol + 2.5, 15, lambda: "no audio")  # fmt: skip
        carol.send("hangup")
        carol.state("DISCONNECTED")
        alice.state("DISCONNECTED")
    assert heard(alice, start_alice + 0.5, start_alice + 2.0) == 1000.0, "alice heard no agent"
    assert heard(carol, start_carol + 0.5, start_carol + 2.0) == 450.0, "carol heard no caller"
    names = [e["event"] for e in cti.events if e["data"].get("call_id") == call_id]
    for name in ("call.callback-offered", "call.callback-requested", "call.offered",
                 "call.answered", "call.callback-answered", "call.ended"):  # fmt: skip
        assert name in names, names


def test_a_caller_who_lets_the_call_back_ring_out_is_called_again_and_answers(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, ("1001", 450), ("1004", 300)) as (alice, dave):
        agent(site, "1004", "logout")
        alice.send("call", to="713")
        alice.state("CONFIRMED")
        wait_for(lambda: bool(cti.named("call.announced")), 20, lambda: str(cti.events))
        alice.send("dtmf", digits="1")
        alice.state("DISCONNECTED", timeout=10)
        (requested,) = cti.named("call.callback-requested")
        call_id = requested["data"]["call_id"]
        agent(site, "1004", "login")
        dave.answer(timeout=15)
        alice.wait(lambda e: e["ev"] == "incoming", 15)
        ringing_from = recorded_s(dave)
        released = dave.state("DISCONNECTED", timeout=30)
        released_at = recorded_s(dave)
        assert alice.state("DISCONNECTED", timeout=5)["code"] == 487, "rang out: cancelled"
        assert released["code"] == 200, "the agent's leg released by the worker"
        (retry,) = cti.named("call.callback-retry", call_id)
        assert retry["data"]["tries"] == 1
        dave.answer(timeout=30)
        called_back = alice.answer(timeout=15)
        assert "1004" in called_back["remote"]
        start_alice, start_dave = recorded_s(alice), recorded_s(dave)
        wait_for(lambda: recorded_s(alice) > start_alice + 2.5
                 and recorded_s(dave) > start_dave + 2.5, 15, lambda: "no audio")  # fmt: skip
        dave.send("hangup")
        dave.state("DISCONNECTED")
        alice.state("DISCONNECTED")
    assert heard(alice, start_alice + 0.5, start_alice + 2.0) == 300.0, "alice heard no agent"
    assert heard(dave, start_dave + 0.5, start_dave + 2.0) == 450.0, "dave heard no caller"
    assert spoken(dave, ringing_from, released_at), "dave was not told the caller did not answer"
    offered = [e["at"] for e in cti.named("call.offered", call_id)]
    assert len(offered) == 2
    assert offered[1] - retry["at"] >= 6 - 0.1, "tried again only after callback_retry_s"
    assert not cti.named("call.callback-failed", call_id)

    def call_back(attempt: str) -> Callable[[dict[str, Any]], bool]:
        wanted = {"callback_of": call_id, "callback_try": attempt}
        return lambda c: wanted.items() <= (c.get("variables") or {}).items()

    first, second = site.cdr_for(call_back("1")), site.cdr_for(call_back("2"))
    assert first["variables"]["callback_status"] == "retry"
    assert second["variables"]["callback_status"] == "answered"
    assert live(site, "retry")["waiting"] == []
