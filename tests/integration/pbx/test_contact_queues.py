"""ACD queues end to end: real pjsua2 phones through Kamailio into the media workers.

Callers dial a queue's number, hear the hold music, and are bridged by the worker to the
agent the ACD picked; the checks are on what the phones heard, on the CDRs' queue fields,
on the agents' states in the API and on the CTI event stream.
"""

from __future__ import annotations

import array
import functools
import itertools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.contact.state_log import AGENT_OUTBOX
from appliance.store import Outbox, Store
from drivers.sync.agent_states import parse_agent_state
from tests.integration.pbx.audio import loudness, power, read_channels
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
    worker_pid,
)

HOLD_HZ = 425.0
TONES = [300.0, HOLD_HZ, 450.0, 600.0, 1000.0]
EXTENSIONS = {"1001": "Alice", "1002": "Bob", "1003": "Carol", "1004": "Dave"}
CONTACT = {"queues": {
    "support": {"number": "700", "agents": ["1003"], "ring_timeout_s": 8, "wrapup_s": 1,
                "priority_callers": ["1004"]},
    "info": {"number": "702", "agents": ["1004"], "hold_prompt": "music",
             "announce_every_s": 3},
    "sales": {"number": "701", "agents": ["1002"], "ring_timeout_s": 3, "max_wait_s": 7,
              "overflow": "1003"},
}}  # fmt: skip
FRONT_DESK = {"start": "welcome", "nodes": {
    "welcome": {"type": "menu", "say": "Press 1 for support.", "options": {"1": "tag"},
                "timeout_s": 15, "retries": 0, "timeout": "bye"},
    "tag": {"type": "set", "vars": {"priority": "3", "account": "A-{caller}"}, "next": "support"},
    "support": {"type": "queue", "queue": "support", "fallback": "1002"},
    "bye": {"type": "hangup"},
}}  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    music = {"tone_hz": int(HOLD_HZ), "on_ms": 1000, "off_ms": 0}
    with contact_pbx(tmp_path_factory, "queue-pbx", CONTACT, extensions=EXTENSIONS,
                     media=media(2, prompts={"music": music}),
                     ivr={"flows": {"front": FRONT_DESK}}) as instance:  # fmt: skip
        yield instance


def heard(phone: Phone, start_s: float, end_s: float) -> float:
    """The tone (of ``TONES``) loudest in what the phone heard between two moments."""
    rate, (samples,) = read_channels(phone.record)
    window = array.array("h", samples[int(start_s * rate) : int(end_s * rate)])
    assert len(window) > rate // 2, f"{phone.number} heard only {len(samples) / rate:.1f} s"
    return max(TONES, key=lambda f: power(window, rate, f))


def recorded_past(phone: Phone, seconds: float) -> bool:
    return recorded_s(phone) > seconds


def test_a_queued_caller_hears_music_then_talks_with_the_agent_who_answers(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, ("1001", 450), ("1003", 1000)) as (alice, carol):
        agent(site, "1003", "logout")
        alice.send("call", to="700")
        alice.state("CONFIRMED")
        waiting(site, "support", 1)
        wait_for(lambda: recorded_s(alice) > 3.0, 15, lambda: "alice heard nothing")
        assert agent(site, "1003", "login")["state"] == "ringing", "offered at once"
        incoming = carol.answer()
        assert "1001" in incoming["remote"]
        on_call_at = recorded_s(alice)
        assert agent_state(site, "support", "1003")["state"] == "on-call"
        wait_for(lambda: recorded_s(alice) > on_call_at + 3.0 and recorded_s(carol) > 3.0, 15,
                 lambda: "no audio once connected")  # fmt: skip
        carol.send("hangup")
        carol.state("DISCONNECTED")
        alice.state("DISCONNECTED")
    assert heard(alice, 0.5, 2.5) == HOLD_HZ, "alice heard no hold music while waiting"
    assert heard(alice, on_call_at + 1.0, on_call_at + 2.5) == 1000.0, "alice did not hear carol"
    assert heard(carol, 1.0, 2.5) == 450.0, "carol did not hear alice"
    cdr = site.cdr_for(lambda c: c.get("variables", {}).get("queue") == "support"
                       and c["caller"]["number"] == "1001")  # fmt: skip
    assert cdr["variables"]["queue_outcome"] == "answered"
    assert cdr["variables"]["queue_agent"] == "1003"
    assert cdr["variables"]["queue_position"] == "1"
    assert float(cdr["variables"]["queue_wait_s"]) >= 3.0
    call_id = cdr["call_id"]
    names = [e["event"] for e in cti.events if e["data"].get("call_id") == call_id]
    assert names[:3] == ["call.queued", "call.offered", "call.agent-ringing"]
    assert "call.answered" in names
    assert names[-1] == "call.ended"
    assert cti.named("call.queued", call_id)[0]["data"]["caller"] == "1001"


def spoken(phone: Phone, start_s: float, end_s: float) -> bool:
    """Speech, not the steady hold tone: loud 100 ms frames with quiet gaps between."""
    rate, (samples,) = read_channels(phone.record)
    window = samples[int(start_s * rate) : int(end_s * rate)]
    step = rate // 10
    frames = [loudness(window[i : i + step]) for i in range(0, len(window) - step, step)]
    return len([f for f in frames if f > 300]) >= 5 and min(frames) < 0.3 * max(frames)


def test_a_waiting_caller_hears_the_music_and_its_position_spoken(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, ("1001", 450)) as (alice,):
        alice.send("call", to="702")
        alice.state("CONFIRMED")
        wait_for(lambda: recorded_s(alice) > 7.0, 20, lambda: "alice heard nothing")
        alice.send("hangup")
        alice.state("DISCONNECTED")
    assert not spoken(alice, 0.3, 2.7), "the music is a steady tone"
    assert heard(alice, 0.5, 2.5) == HOLD_HZ
    assert spoken(alice, 3.0, 6.0), "no position announcement"
    (announced,) = cti.named("call.announced")[:1]
    assert announced["data"]["text"] == "You are number 1 in the queue."
    cdr = site.cdr_for(lambda c: c["call_id"] == announced["data"]["call_id"])
    assert cdr["variables"]["queue_outcome"] == "abandoned"


def test_a_priority_caller_overtakes_and_the_agent_is_never_offered_two_calls(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    specs = (("1001", 450), ("1002", 600), ("1004", 300), ("1003", 1000))
    with phones(site, tmp_path, *specs) as (alice, bob, dave, carol):
        wait_for(lambda: agent_state(site, "support", "1003")["state"] == "available", 10,
                 lambda: str(live(site, "support")))  # fmt: skip
        agent(site, "1003", "pause", reason="briefing")
        for position, caller in enumerate((alice, bob, dave), start=1):
            caller.send("call", to="700")
            caller.state("CONFIRMED")
            waiting(site, "support", position)
        order = [w["caller"] for w in live(site, "support")["waiting"]]
        assert order == ["1004", "1001", "1002"]
        agent(site, "1003", "resume")
        answered = []
        for number in ("1004", "1001", "1002"):
            incoming = carol.answer(timeout=15)
            answered.append(number)
            assert number in incoming["remote"], (answered, incoming)
            assert not [e for e in carol.events if e["ev"] == "incoming"], "a second offer"
            assert all(w["offered_to"] is None for w in live(site, "support")["waiting"])
            start = recorded_s(carol)
            wait_for(functools.partial(recorded_past, carol, start + 2.0), 10, lambda: "no audio")
            if number == "1004":
                dave_heard_at = start
            carol.send("hangup")
            carol.state("DISCONNECTED")
        for phone in (alice, bob, dave):
            phone.state("DISCONNECTED")
    assert heard(carol, dave_heard_at + 0.5, dave_heard_at + 1.8) == 300.0
    offers = [e["data"]["agent"] for e in cti.named("call.offered")]
    assert offers == ["1003", "1003", "1003"]
    states = [e["data"]["state"] for e in cti.named("agent.state") if e["data"]["agent"] == "1003"]
    rings = [i for i, s in enumerate(states) if s == "ringing"]
    assert len(rings) == 3
    for first, second in itertools.pairwise(rings):
        assert "available" in states[first:second], states


def test_an_unanswered_agent_is_paused_and_the_caller_overflows_after_the_maximum_wait(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, ("1001", 450), ("1002", 600), ("1003", 1000)) as phones_:
        alice, bob, carol = phones_
        agent(site, "1002", "login")
        alice.send("call", to="701")
        alice.state("CONFIRMED")
        bob.wait(lambda e: e["ev"] == "incoming", 10)
        wait_for(lambda: agent_state(site, "sales", "1002")["state"] == "paused", 10,
                 lambda: str(live(site, "sales")))  # fmt: skip
        assert agent_state(site, "sales", "1002")["reason"] == "no-answer"
        alice.wait(lambda e: e["ev"] == "transferring", 15)
        carol.answer(timeout=15)
        carol.send("hangup")
        carol.state("DISCONNECTED")
    cdr = site.cdr_for(lambda c: c.get("variables", {}).get("queue") == "sales")
    assert cdr["variables"]["queue_outcome"] == "overflowed"
    assert float(cdr["variables"]["queue_wait_s"]) >= 7.0
    assert cti.named("call.overflowed", cdr["call_id"])


def test_an_ivr_queue_node_puts_the_caller_in_the_acd_queue(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, ("1001", 450), ("1003", 1000)) as (alice, carol):
        agent(site, "1003", "logout")
        agent(site, "1003", "login")
        alice.send("call", to="ivr-front")
        alice.state("CONFIRMED")
        alice.send("dtmf", digits="1")
        alice.wait(lambda e: e["ev"] == "transferring", 15)
        carol.answer(timeout=15)
        start = recorded_s(carol)
        wait_for(lambda: recorded_s(carol) > start + 2.0, 10, lambda: "no audio")
        carol.send("hangup")
        carol.state("DISCONNECTED")
    assert heard(carol, start + 0.5, start + 1.8) == 450.0
    (queued,) = cti.named("call.queued")
    assert queued["data"]["priority"] == 3
    assert queued["data"]["variables"]["account"] == "A-1001"
    cdr = site.cdr_for(lambda c: c["call_id"] == queued["data"]["call_id"])
    assert cdr["route"] == "queue:support"
    assert cdr["variables"]["queue_outcome"] == "answered"
    assert cdr["variables"]["queue_agent"] == "1003"


def test_a_killed_worker_leaves_interrupted_cdrs_with_queue_fields(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, ("1001", 450)) as (alice,):
        agent(site, "1003", "pause", reason="meeting")
        alice.send("call", to="700")
        alice.state("CONFIRMED")
        waiting(site, "support", 1)
        call_id = live(site, "support")["waiting"][0]["call_id"]
        call = next(c for c in site.api("GET", "/calls")[1]["calls"] if c["call_id"] == call_id)
        os.kill(worker_pid(site, call["media_peer"]), signal.SIGKILL)
        alice.state("DISCONNECTED", timeout=10)
    cdr = site.cdr_for(lambda c: c["call_id"] == call_id)
    assert cdr["disposition"] == "interrupted"
    assert cdr["variables"]["queue"] == "support"
    assert cdr["variables"]["queue_outcome"] == "interrupted"
    assert live(site, "support")["waiting"] == []
    assert cti.named("call.interrupted", call_id)


def test_an_agent_whose_phone_unregistered_is_offered_calls_once_it_is_back(
    site: Pbx, tmp_path: Path
) -> None:
    wait_for(lambda: not agent_state(site, "support", "1003")["registered"], 10,
             lambda: str(live(site, "support")))  # fmt: skip
    agent(site, "1003", "logout")
    agent(site, "1003", "login")
    with phones(site, tmp_path, ("1001", 450)) as (alice,):
        alice.send("call", to="700")
        alice.state("CONFIRMED")
        waiting(site, "support", 1)
        with pytest.raises(AssertionError):
            wait_for(lambda: live(site, "support")["waiting"][0]["offered_to"] is not None, 3,
                     lambda: "not offered")  # fmt: skip
        with phones(site, tmp_path, ("1003", 1000)) as (carol,):
            carol.answer(timeout=10)
            carol.send("hangup")
            carol.state("DISCONNECTED")
        alice.state("DISCONNECTED")


def api_up(pbx: Pbx) -> bool:
    try:
        return pbx.api("GET", "/contact/queues")[0] == 200
    except OSError:
        return False


def test_agent_states_survive_a_restart(site: Pbx) -> None:
    agent(site, "1003", "pause", reason="lunch")
    agent(site, "1002", "logout")
    agent(site, "1002", "login")
    site.stop()
    before = agent_log(site)
    site.start()
    wait_for(lambda: api_up(site), 20, site.output)
    carol = agent_state(site, "support", "1003")
    assert (carol["state"], carol["reason"]) == ("paused", "lunch")
    bob = agent_state(site, "sales", "1002")
    assert (bob["state"], bob["reason"]) == ("available", None)
    # The state log for HQ holds each change in order, and each agent as restored.
    assert [e for e in before if e[0] == "1003"][-1] == ("1003", "paused", "lunch")
    assert [e for e in before if e[0] == "1002"][-2:] == [("1002", "logged-out", ""),
                                                          ("1002", "available", "")]  # fmt: skip
    site.stop()
    restored = agent_log(site)[len(before) :]
    site.start()
    wait_for(lambda: api_up(site), 20, site.output)
    assert ("1003", "paused", "lunch") in restored
    assert ("1002", "available", "") in restored


def agent_log(pbx: Pbx) -> list[tuple[str, str, str]]:
    """The appliance's agent state log (its ``agent-state`` outbox), read while it is down."""
    store = Store.open(pbx.data / "store")
    try:
        entries = Outbox(store, AGENT_OUTBOX).read_batch(limit=100_000)
    finally:
        store.close()
    changes = [parse_agent_state(raw) for _, raw in entries]
    return [(c.agent, c.state, c.reason) for c in changes]
