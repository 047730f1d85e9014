"""Supervisors on queue calls end to end: real pjsua2 phones through Kamailio into the
media worker that bridges caller and agent; agents' own feature codes (login, pause,
resume, logout) answered by a worker's confirmation tone; an agent's CTI actions on its
queue call (a third party added, a ringing call answered on the desk phone).

Each party sends its own tone (caller 450 Hz, agent 1000 Hz, supervisor 600 Hz); what
each phone recorded says who heard whom: in monitor nobody hears the supervisor, in
whisper only the agent does, in barge both do, and the supervisor hears both throughout.
"""

from __future__ import annotations

import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.media.supervise import BEEP_HZ
from tests.integration.pbx.audio import loudness, power, read_channels
from tests.integration.pbx.contact_env import (
    CtiListener,
    agent,
    agent_state,
    contact_pbx,
    recorded_s,
)
from tests.integration.pbx.harness import (
    Pbx,
    Phone,
    media,
    phones,
    wait_for,
)

CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ, CONFIRM_HZ = 450.0, 1000.0, 600.0, 1400.0
TONES = [CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ, float(BEEP_HZ)]
PROMPTS = {"agent-done": {"tone_hz": int(CONFIRM_HZ), "seconds": 1.5}}
EXTENSIONS = {"1001": "Alice", "1002": "Bob", "1003": "Carol", "1004": "Dave"}
CONTACT = {
    "queues": {"support": {"number": "700", "agents": ["1003"]},
               "sales": {"number": "701", "agents": ["1004"]}},
    "supervisors": {"1002": {"queues": ["support"]}, "1004": {"queues": ["sales"]}},
    "supervision": {"beep": "agent"},
    "agent_codes": {"prompt": "agent-done", "reasons": {"1": "lunch"}},
}  # fmt: skip
HEARD, NOT_HEARD = 0.05, 0.01
SPEECH_RMS = 300.0
# The caller, the agent and the supervisor, each sending its own tone.
TRIO = (("1001", int(CALLER_HZ)), ("1003", int(AGENT_HZ)), ("1002", int(SUPERVISOR_HZ)))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with contact_pbx(
        tmp_path_factory,
        "supervise-pbx",
        CONTACT,
        extensions=EXTENSIONS,
        media=media(2, prompts=PROMPTS),
    ) as instance:
        yield instance


def share(phone: Phone, start_s: float, end_s: float, freq: float) -> float:
    """How much of the tones' power the phone heard between two moments is ``freq``'s."""
    print("HEAD", phone.record.read_bytes()[:48], phone.record.stat().st_size)
    rate, (samples,) = read_channels(phone.record)
    window = array.array("h", samples[int(start_s * rate) : int(end_s * rate)])
    assert len(window) > rate // 2, f"{phone.number} heard only {len(samples) / rate:.1f} s"
    # Mean power over 100 ms blocks: a tone whose phase jumps (a frame lost or repeated in
    # a mix) cancels itself out of one Goertzel sum over seconds, never out of each block.
    step = rate // 10
    blocks = [window[i : i + step] for i in range(0, len(window) - step + 1, step)]
    powers = {f: sum(power(b, rate, f) for b in blocks) for f in TONES}
    return powers[freq] / max(1e-9, sum(powers.values()))


def hears(phone: Phone, window: tuple[float, float], freq: float, why: str) -> None:
    found = share(phone, *window, freq)
    assert found > HEARD, f"{why}: {phone.number} {window}: {freq:.0f} Hz share {found:.3f}"


def deaf_to(phone: Phone, window: tuple[float, float], freq: float, why: str) -> None:
    found = share(phone, *window, freq)
    assert found < NOT_HEARD, f"{why}: {phone.number} {window}: {freq:.0f} Hz share {found:.3f}"


def talk(pbx: Pbx, caller: Phone, carol: Phone) -> None:
    """The caller dials the queue and the agent (logged in) answers."""
    agent(pbx, "1003", "login")
    caller.send("call", to="700")
    caller.state("CONFIRMED")
    carol.answer(timeout=15)
    wait_for(lambda: agent_state(pbx, "support", "1003")["state"] == "on-call", 10,
             lambda: str(pbx.api("GET", "/contact/queues")))  # fmt: skip


def settle(*parties: Phone, seconds: float = 3.0) -> list[tuple[float, float]]:
    """Let every phone record ``seconds`` more; the window of each to check (past 1 s)."""
    marks = [recorded_s(p) for p in parties]
    wait_for(lambda: all(recorded_s(p) > m + seconds for p, m in zip(parties, marks, strict=True)),
             seconds + 15, lambda: "the phones stopped recording")  # fmt: skip
    return [(m + 1.0, m + seconds) for m in marks]


def test_whisper_barge_and_monitor_by_feature_code_and_keys(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, *TRIO) as (alice, carol, bob):
        talk(site, alice, carol)
        settle(alice, carol)
        bob.send("call", to="*911003")
        bob.state("CONFIRMED", timeout=15)
        wait_for(lambda: bool(cti.named("supervisor.joined")), 10, lambda: str(cti.events))
        beep = [(m, m + 0.6) for m in (recorded_s(alice), recorded_s(carol))]
        whisper = settle(alice, carol, bob)
        bob.send("dtmf", digits="6")
        wait_for(lambda: bool(cti.named("supervisor.mode")), 10, lambda: str(cti.events))
        barge = settle(alice, carol, bob)
        bob.send("dtmf", digits="4")
        wait_for(lambda: len(cti.named("supervisor.mode")) == 2, 10, lambda: str(cti.events))
        monitor = settle(alice, carol, bob)
        bob.send("hangup")
        bob.state("DISCONNECTED")
        after = settle(alice, carol)
        carol.send("hangup")
        carol.state("DISCONNECTED")
        alice.state("DISCONNECTED")
    hears(carol, beep[1], BEEP_HZ, "the agent heard no beep as the supervisor joined")
    deaf_to(alice, beep[0], BEEP_HZ, "the caller heard the beep meant for the agent")
    hears(carol, whisper[1], SUPERVISOR_HZ, "whisper: the agent did not hear bob")
    deaf_to(alice, whisper[0], SUPERVISOR_HZ, "whisper: the caller heard bob")
    hears(carol, barge[1], SUPERVISOR_HZ, "barge: the agent did not hear bob")
    hears(alice, barge[0], SUPERVISOR_HZ, "barge: the caller did not hear bob")
    deaf_to(carol, monitor[1], SUPERVISOR_HZ, "monitor: the agent heard bob")
    deaf_to(alice, monitor[0], SUPERVISOR_HZ, "monitor: the caller heard bob")
    for window in (whisper[2], barge[2], monitor[2]):
        hears(bob, window, CALLER_HZ, "the supervisor did not hear the caller")
        hears(bob, window, AGENT_HZ, "the supervisor did not hear the agent")
    hears(alice, after[0], AGENT_HZ, "the call did not go on without the supervisor")
    deaf_to(alice, after[0], SUPERVISOR_HZ, "the caller still hears the supervisor who left")
    joined = cti.named("supervisor.joined")[0]["data"]
    assert (joined["supervisor"], joined["agent"], joined["mode"]) == ("1002", "1003", "whisper")
    assert [e["data"]["mode"] for e in cti.named("supervisor.mode")] == ["barge", "monitor"]
    left = cti.named("supervisor.left")[0]["data"]
    assert left["modes"] == ["whisper", "barge", "monitor"]
    cdr = site.cdr_for(lambda c: c.get("variables", {}).get("supervised_agent") == "1003")
    assert cdr["caller"]["number"] == "1002"
    assert cdr["variables"]["supervision_modes"] == "whisper,barge,monitor"
    assert cdr["variables"]["supervised_queue"] == "support"
    assert cdr["variables"]["supervised_call"] == joined["call"]


def test_the_api_rings_the_supervisor_who_leaves_with_the_agents_call(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, *TRIO) as (alice, carol, bob):
        talk(site, alice, carol)
        status, session = site.api("POST", "/contact/agents/1003/monitor",
                                   {"supervisor": "1002", "mode": "monitor"})  # fmt: skip
        assert status == 200, session
        assert session["state"] == "calling"
        incoming = bob.answer(timeout=15)
        assert "1003" in incoming["remote"]
        wait_for(lambda: bool(cti.named("supervisor.joined")), 10, lambda: str(cti.events))
        monitor = settle(alice, carol, bob)
        status, switched = site.api("POST", "/contact/agents/1003/monitor/mode",
                                    {"mode": "barge"})  # fmt: skip
        assert (status, switched["mode"]) == (200, "barge"), switched
        barge = settle(alice, carol, bob)
        carol.send("hangup")
        carol.state("DISCONNECTED")
        alice.state("DISCONNECTED")
        bob.state("DISCONNECTED", timeout=10)
    deaf_to(alice, monitor[0], SUPERVISOR_HZ, "monitor: the caller heard bob")
    deaf_to(carol, monitor[1], SUPERVISOR_HZ, "monitor: the agent heard bob")
    hears(bob, monitor[2], CALLER_HZ, "monitor: bob did not hear the caller")
    hears(bob, monitor[2], AGENT_HZ, "monitor: bob did not hear the agent")
    hears(alice, barge[0], SUPERVISOR_HZ, "barge: the caller did not hear bob")
    hears(carol, barge[1], SUPERVISOR_HZ, "barge: the agent did not hear bob")
    wait_for(lambda: bool(cti.named("supervisor.left")), 10, lambda: str(cti.events))
    assert cti.named("supervisor.left")[0]["data"]["modes"] == ["monitor", "barge"]
    assert site.api("GET", "/contact/supervisions")[1] == {"sessions": []}


def test_the_agent_adds_a_third_party_and_everyone_hears_everyone(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, *TRIO) as (alice, carol, bob):
        talk(site, alice, carol)
        status, answer = site.api("POST", "/contact/agents/1003/three-way", {"number": "1002"})
        assert (status, answer["origin"]) == (200, "three-way"), answer
        assert "1003" in bob.answer(timeout=15)["remote"], "the party sees the agent"
        wait_for(lambda: bool(cti.named("call.party-joined")), 10, lambda: str(cti.events))
        heard_by_alice, heard_by_carol, heard_by_bob = settle(alice, carol, bob)
        carol.send("hangup")
        for phone in (carol, alice, bob):
            phone.state("DISCONNECTED", timeout=15)
    hears(alice, heard_by_alice, AGENT_HZ, "the caller hears the agent")
    hears(alice, heard_by_alice, SUPERVISOR_HZ, "the caller hears the third party")
    hears(carol, heard_by_carol, CALLER_HZ, "the agent hears the caller")
    hears(carol, heard_by_carol, SUPERVISOR_HZ, "the agent hears the third party")
    hears(bob, heard_by_bob, CALLER_HZ, "the third party hears the caller")
    hears(bob, heard_by_bob, AGENT_HZ, "the third party hears the agent")
    wait_for(lambda: bool(cti.named("call.party-left")), 10, lambda: str(cti.events))
    assert not cti.named("supervisor.joined"), "a third party is no supervisor"


def test_the_api_answers_a_ringing_caller_on_the_agents_desk_phone(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, *TRIO[:2]) as (alice, carol):
        status, answer = site.api("POST", "/contact/agents/1003/answer")
        assert (status, answer["detail"]["error_id"]) == (409, "agent-not-ringing")
        agent(site, "1003", "login")
        alice.send("call", to="700")
        alice.state("CONFIRMED")
        assert not carol.wait(lambda e: e["ev"] == "incoming", 15)["auto_answer"]
        status, answer = site.api("POST", "/contact/agents/1003/answer")
        assert (status, answer["action"]) == (200, "answer"), answer
        assert carol.wait(lambda e: e["ev"] == "incoming", 10)["auto_answer"]
        carol.state("CONFIRMED")
        wait_for(lambda: agent_state(site, "support", "1003")["state"] == "on-call", 10,
                 lambda: str(site.api("GET", "/contact/queues")))  # fmt: skip
        heard_by_alice, heard_by_carol = settle(alice, carol)
        carol.send("hangup")
        alice.state("DISCONNECTED", timeout=15)
    hears(alice, heard_by_alice, AGENT_HZ, "the caller hears the agent")
    hears(carol, heard_by_carol, CALLER_HZ, "the agent hears the caller")
    states = [e["data"]["state"] for e in cti.named("agent.state") if e["data"]["agent"] == "1003"]
    assert "paused" not in states, f"the replaced ring counted as a refusal: {states}"
    (asked,) = cti.named("call.desk-answer")
    assert cti.named("call.answered")[0]["data"]["call_id"] == asked["data"]["call_id"]


def refused(phone: Phone, to: str) -> dict[str, Any]:
    phone.send("call", to=to)
    return phone.state("DISCONNECTED", timeout=15)


def spoken(site: Pbx, phone: Phone, to: str, error_id: str) -> None:
    """The phone dials ``to``, a worker answers, speaks refusal ``error_id`` and hangs up.

    What the phone heard meanwhile must hold speech (its loudest 100 ms well above the
    silence of a call nobody speaks on); the call's CDR names the refusal."""
    mark = recorded_s(phone)
    phone.send("call", to=to)
    phone.state("CONFIRMED", timeout=15)
    phone.state("DISCONNECTED", timeout=20)
    wait_for(lambda: recorded_s(phone) > mark + 1.5, 15, lambda: "the phone stopped recording")
    # The WAV header gets its sizes only when the phone closes: read the PCM after it.
    pcm = phone.record.read_bytes()[44:]
    heard = array.array("h", pcm[int(mark * 16000) : len(pcm) // 2 * 2])
    step = 800
    blocks = (array.array("h", heard[i : i + step]) for i in range(0, len(heard) - step, step))
    assert max(map(loudness, blocks), default=0.0) > SPEECH_RMS, f"{phone.number} heard nothing"
    route = f"supervise-refused:{error_id}"
    site.cdr_for(lambda c: (c["caller"]["number"], c["route"]) == (phone.number, route))


def test_supervision_outside_a_supervisors_rights_is_refused_aloud(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    wait_for(lambda: site.api("POST", "/contact/agents/1003/logout")[0] == 200, 15,
             lambda: str(site.api("GET", "/contact/queues")))  # fmt: skip
    with phones(site, tmp_path, *TRIO, ("1004", 300)) as (alice, carol, bob, dave):
        spoken(site, bob, "*901003", "agent-logged-out")
        agent(site, "1003", "login")
        spoken(site, bob, "*901003", "agent-not-on-call")
        status, answer = site.api("POST", "/contact/agents/1003/monitor", {"supervisor": "1002"})
        assert (status, answer["detail"]["error_id"]) == (409, "agent-not-on-call")
        talk(site, alice, carol)
        spoken(site, dave, "*901003", "queue-not-permitted")  # 1004 supervises sales only
        spoken(site, alice, "*921003", "not-a-supervisor")
        spoken(site, bob, "*901077", "agent-not-found")
        status, answer = site.api("POST", "/contact/agents/1003/monitor", {"supervisor": "1001"})
        assert (status, answer["detail"]["error_id"]) == (403, "not-a-supervisor")
        status, answer = site.api("POST", "/contact/agents/1009/monitor", {"supervisor": "1002"})
        assert (status, answer["detail"]["error_id"]) == (404, "agent-not-found")
        status, answer = site.api("POST", "/contact/agents/1003/monitor",
                                  {"supervisor": "1002", "mode": "spy"})  # fmt: skip
        assert status == 422
        carol.send("hangup")
        carol.state("DISCONNECTED")
    ids = [e["data"]["error_id"] for e in cti.named("supervisor.refused")]
    assert ids == ["agent-logged-out", "agent-not-on-call", "agent-not-on-call",
                   "queue-not-permitted", "not-a-supervisor", "agent-not-found",
                   "not-a-supervisor", "agent-not-found"]  # fmt: skip
    assert "queue-not-permitted" in site.output()


def by_code(phone: Phone, code: str) -> None:
    """The phone dials an agent code, hears the confirmation and is hung up on."""
    phone.send("call", to=code)
    phone.state("CONFIRMED", timeout=15)
    phone.state("DISCONNECTED", timeout=15)


def test_an_agent_logs_in_pauses_resumes_and_logs_out_by_feature_code(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, ("1004", 300), ("1001", int(CALLER_HZ))) as (dave, alice):
        by_code(dave, "*71")
        assert agent_state(site, "sales", "1004")["state"] == "available"
        by_code(dave, "*731")
        paused = agent_state(site, "sales", "1004")
        assert (paused["state"], paused["reason"]) == ("paused", "lunch")
        by_code(dave, "*74")
        assert agent_state(site, "sales", "1004")["state"] == "available"
        by_code(dave, "*72")
        assert agent_state(site, "sales", "1004")["state"] == "logged-out"
        assert refused(alice, "*71")["code"] == 404, "1001 is no agent"
        assert refused(dave, "*74")["code"] == 409, "not paused"
    rate, (samples,) = read_channels(dave.record)
    assert len(samples) > 4 * rate, f"1004 heard only {len(samples) / rate:.1f} s"
    powers = {f: power(samples, rate, f) for f in (CONFIRM_HZ, *TONES)}
    assert max(powers, key=lambda f: powers[f]) == CONFIRM_HZ, f"no confirmation: {powers}"
    # registration changes publish the agent's state too: only the changes count here
    states = [(e["data"]["state"], e["data"]["reason"]) for e in cti.named("agent.state")
              if e["data"]["agent"] == "1004"]  # fmt: skip
    changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    expected = [("available", None), ("paused", "lunch"), ("available", None),
                ("logged-out", None)]  # fmt: skip
    assert changes[-4:] == expected, states


def test_a_supervisor_monitors_a_dynamic_members_queue_call(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    status, answer = site.api("POST", "/contact/queues/support/members/1004")
    assert status == 200, answer
    try:
        wait_for(lambda: site.api("POST", "/contact/agents/1003/logout")[0] == 200, 15,
                 lambda: str(site.api("GET", "/contact/queues")))  # fmt: skip
        trio = (TRIO[0], ("1004", int(AGENT_HZ)), TRIO[2])
        with phones(site, tmp_path, *trio) as (alice, dave, bob):
            agent(site, "1004", "login")
            alice.send("call", to="700")
            alice.state("CONFIRMED")
            dave.answer(timeout=15)
            wait_for(lambda: agent_state(site, "support", "1004")["state"] == "on-call", 10,
                     lambda: str(site.api("GET", "/contact/queues")))  # fmt: skip
            bob.send("call", to="*901004")
            bob.state("CONFIRMED", timeout=15)
            wait_for(lambda: bool(cti.named("supervisor.joined")), 10, lambda: str(cti.events))
            heard_by_alice, heard_by_dave, heard_by_bob = settle(alice, dave, bob)
            dave.send("hangup")
            for phone in (dave, alice, bob):
                phone.state("DISCONNECTED", timeout=15)
    finally:
        wait_for(lambda: site.api("DELETE", "/contact/queues/support/members/1004")[0] == 200,
                 15, lambda: str(site.api("GET", "/contact/queues")))  # fmt: skip
    hears(bob, heard_by_bob, CALLER_HZ, "the supervisor hears the caller")
    hears(bob, heard_by_bob, AGENT_HZ, "the supervisor hears the dynamic member")
    deaf_to(alice, heard_by_alice, SUPERVISOR_HZ, "monitor: the caller does not hear it")
    deaf_to(dave, heard_by_dave, SUPERVISOR_HZ, "monitor: the agent does not hear it")
    assert cti.named("supervisor.joined")[0]["data"]["agent"] == "1004"
