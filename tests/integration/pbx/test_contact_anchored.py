"""Supervision and three-way on agents' calls no media worker held: real pjsua2 phones.

An agent's direct extension call goes phone, Kamailio, phone; the API's monitor and
three-way first move it onto a media worker (INVITEs with Replaces to both phones), then
join as on a queue call. Each party sends its own tone (the other party 450 Hz, the agent
1000 Hz, the supervisor or third party 600 Hz); what each phone recorded says who heard
whom after the move.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pbx.contact_env import CtiListener, contact_pbx
from tests.integration.pbx.harness import (
    Pbx,
    Phone,
    connect_call,
    free_udp_tcp_port,
    media,
    phones,
    wait_for,
)
from tests.integration.pbx.test_contact_supervisors import (
    AGENT_HZ,
    CALLER_HZ,
    SUPERVISOR_HZ,
    TRIO,
    deaf_to,
    hears,
    settle,
)

EXTENSIONS = {"1001": "Alice", "1002": "Bob", "1003": "Carol"}
CONTACT = {
    "queues": {"support": {"number": "700", "agents": ["1003"]}},
    "supervisors": {"1002": {"queues": ["support"]}},
    "supervision": {"beep": "none"},
}  # fmt: skip
OWNED, OUTSIDE = "+4930555000", "0301234567"


@pytest.fixture(scope="module")
def trunk_port() -> int:
    """Where the carrier's far end (a pjsua2 phone) listens."""
    return free_udp_tcp_port()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, trunk_port: int) -> Iterator[Pbx]:
    dialplan = {
        "owned_numbers": [OWNED],
        "trunks": [{"name": "carrier", "host": "127.0.0.1", "port": trunk_port}],
        "outbound": [{"name": "national", "pattern": "0Z.", "trunk": "carrier", "strip": 1,
                      "prepend": "+49", "caller_id": OWNED}],
    }  # fmt: skip
    with contact_pbx(
        tmp_path_factory,
        "anchor-pbx",
        CONTACT,
        extensions=EXTENSIONS,
        media=media(2),
        dialplan=dialplan,
    ) as instance:
        yield instance


def direct(site: Pbx, carol: Phone, alice: Phone) -> dict[str, Any]:
    """The agent dials the other party directly; the open call once answered."""
    connect_call(carol, alice)
    return answered(site, "1001")


def answered(site: Pbx, callee: str) -> dict[str, Any]:
    """The open call to ``callee`` once Kamailio reported it answered."""

    def answered() -> dict[str, Any] | None:
        calls = site.api("GET", "/calls")[1]["calls"]
        return next((c for c in calls if c["callee"]["number"] == callee and c["answer"]), None)

    wait_for(lambda: answered() is not None, 10, lambda: str(site.api("GET", "/calls")))
    call = answered()
    assert call is not None
    return call


def moved(alice: Phone, carol: Phone) -> None:
    """Both phones took the worker's INVITE with Replaces in place of their call."""
    alice.wait(lambda e: e["ev"] == "replaced", 15)
    carol.wait(lambda e: e["ev"] == "replaced", 15)


def test_monitor_then_whisper_on_an_agents_direct_call(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, *TRIO) as (alice, carol, bob):
        call = direct(site, carol, alice)
        status, session = site.api("POST", "/contact/agents/1003/monitor",
                                   {"supervisor": "1002", "mode": "monitor"})  # fmt: skip
        assert (status, session["state"]) == (200, "anchoring"), session
        moved(alice, carol)
        assert "1003" in bob.answer(timeout=20)["remote"]
        wait_for(lambda: bool(cti.named("supervisor.joined")), 10, lambda: str(cti.events))
        monitor = settle(alice, carol, bob)
        status, switched = site.api("POST", "/contact/agents/1003/monitor/mode",
                                    {"mode": "whisper"})  # fmt: skip
        assert (status, switched["mode"]) == (200, "whisper"), switched
        whisper = settle(alice, carol, bob)
        carol.send("hangup")
        for phone in (carol, alice, bob):
            phone.state("DISCONNECTED", timeout=15)
    hears(alice, monitor[0], AGENT_HZ, "the call did not go on after the move")
    hears(carol, monitor[1], CALLER_HZ, "the agent does not hear the other party")
    deaf_to(alice, monitor[0], SUPERVISOR_HZ, "monitor: the other party heard bob")
    deaf_to(carol, monitor[1], SUPERVISOR_HZ, "monitor: the agent heard bob")
    hears(bob, monitor[2], CALLER_HZ, "monitor: bob did not hear the other party")
    hears(bob, monitor[2], AGENT_HZ, "monitor: bob did not hear the agent")
    hears(carol, whisper[1], SUPERVISOR_HZ, "whisper: the agent did not hear bob")
    deaf_to(alice, whisper[0], SUPERVISOR_HZ, "whisper: the other party heard bob")
    joined = cti.named("supervisor.joined")[0]["data"]
    assert (joined["agent"], joined["queue"], joined["mode"]) == ("1003", "support", "monitor")
    original = site.cdr_for(lambda c: c["call_id"] == call["call_id"])
    assert original["disposition"] == "answered"
    assert original["hangup_cause"]["reason"] == "replaced"
    legs = [c for c in site.cdrs() if c["conversation_id"] == call["conversation_id"]]
    assert {c["callee"]["number"] for c in legs} == {"1001", "1003"}, legs
    assert len(legs) == 3, legs
    assert [c.get("variables", {}).get("replaces") for c in legs].count(call["call_id"]) == 2


def test_three_way_on_an_agents_direct_call(site: Pbx, cti: CtiListener, tmp_path: Path) -> None:
    with phones(site, tmp_path, *TRIO) as (alice, carol, bob):
        direct(site, carol, alice)
        status, answer = site.api("POST", "/contact/agents/1003/three-way", {"number": "1002"})
        assert (status, answer["state"]) == (200, "anchoring"), answer
        moved(alice, carol)
        assert "1003" in bob.answer(timeout=20)["remote"], "the party sees the agent"
        wait_for(lambda: bool(cti.named("call.party-joined")), 10, lambda: str(cti.events))
        heard_by_alice, heard_by_carol, heard_by_bob = settle(alice, carol, bob)
        alice.send("hangup")
        for phone in (alice, carol, bob):
            phone.state("DISCONNECTED", timeout=15)
    hears(alice, heard_by_alice, AGENT_HZ, "the other party hears the agent")
    hears(alice, heard_by_alice, SUPERVISOR_HZ, "the other party hears the third party")
    hears(carol, heard_by_carol, CALLER_HZ, "the agent hears the other party")
    hears(carol, heard_by_carol, SUPERVISOR_HZ, "the agent hears the third party")
    hears(bob, heard_by_bob, CALLER_HZ, "the third party hears the other party")
    hears(bob, heard_by_bob, AGENT_HZ, "the third party hears the agent")
    wait_for(lambda: bool(cti.named("call.party-left")), 10, lambda: str(cti.events))


def test_monitor_on_an_agents_outbound_call_through_the_trunk(
    site: Pbx, cti: CtiListener, tmp_path: Path, trunk_port: int
) -> None:
    with phones(site, tmp_path, TRIO[1], TRIO[2]) as (carol, bob):
        far = Phone(site, "carrier", int(CALLER_HZ), tmp_path, sip_port=trunk_port)
        try:
            far.wait(lambda e: e["ev"] == "ready")
            carol.send("call", to=OUTSIDE)
            far.answer(timeout=15)
            carol.state("CONFIRMED")
            call = answered(site, OUTSIDE)
            status, session = site.api("POST", "/contact/agents/1003/monitor",
                                       {"supervisor": "1002", "mode": "monitor"})  # fmt: skip
            assert (status, session["state"]) == (200, "anchoring"), session
            moved(far, carol)
            bob.answer(timeout=20)
            wait_for(lambda: bool(cti.named("supervisor.joined")), 10, lambda: str(cti.events))
            heard_by_far, heard_by_carol, heard_by_bob = settle(far, carol, bob)
            carol.send("hangup")
            for phone in (carol, far, bob):
                phone.state("DISCONNECTED", timeout=15)
        finally:
            far.close()
    hears(far, heard_by_far, AGENT_HZ, "the far end does not hear the agent after the move")
    hears(carol, heard_by_carol, CALLER_HZ, "the agent does not hear the far end")
    deaf_to(far, heard_by_far, SUPERVISOR_HZ, "monitor: the far end heard bob")
    deaf_to(carol, heard_by_carol, SUPERVISOR_HZ, "monitor: the agent heard bob")
    hears(bob, heard_by_bob, CALLER_HZ, "monitor: bob did not hear the far end")
    hears(bob, heard_by_bob, AGENT_HZ, "monitor: bob did not hear the agent")
    legs = [c for c in site.cdrs() if c["conversation_id"] == call["conversation_id"]]
    assert [c["trunk"] for c in legs].count("carrier") == 2, legs


def test_whisper_by_feature_code_on_an_agents_direct_call(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    with phones(site, tmp_path, *TRIO) as (alice, carol, bob):
        direct(site, carol, alice)
        bob.send("call", to="*911003")
        bob.state("CONFIRMED", timeout=15)
        moved(alice, carol)
        wait_for(lambda: bool(cti.named("supervisor.joined")), 15, lambda: str(cti.events))
        whisper = settle(alice, carol, bob)
        bob.send("hangup")
        bob.state("DISCONNECTED")
        after = settle(alice, carol)
        carol.send("hangup")
        for phone in (carol, alice):
            phone.state("DISCONNECTED", timeout=15)
    hears(carol, whisper[1], SUPERVISOR_HZ, "whisper: the agent did not hear bob")
    deaf_to(alice, whisper[0], SUPERVISOR_HZ, "whisper: the other party heard bob")
    hears(bob, whisper[2], CALLER_HZ, "whisper: bob did not hear the other party")
    hears(bob, whisper[2], AGENT_HZ, "whisper: bob did not hear the agent")
    hears(alice, after[0], AGENT_HZ, "the call did not go on without the supervisor")
    joined = cti.named("supervisor.joined")[0]["data"]
    assert (joined["origin"], joined["queue"]) == ("feature-code", "support")


def test_monitor_on_a_dynamic_members_direct_call(
    site: Pbx, cti: CtiListener, tmp_path: Path
) -> None:
    status, member = site.api("POST", "/contact/queues/support/members/1001")
    assert (status, member["agent"]) == (200, "1001"), member
    try:
        with phones(site, tmp_path, *TRIO) as (alice, carol, bob):
            direct(site, carol, alice)
            status, session = site.api("POST", "/contact/agents/1001/monitor",
                                       {"supervisor": "1002", "mode": "monitor"})  # fmt: skip
            assert (status, session.get("state"), session.get("queue")) == (
                200,
                "anchoring",
                "support",
            ), session
            moved(alice, carol)
            assert "1001" in bob.answer(timeout=20)["remote"], "the supervisor sees the agent"
            wait_for(lambda: any(e["data"]["agent"] == "1001"
                                 for e in cti.named("supervisor.joined")),
                     10, lambda: str(cti.events))  # fmt: skip
            heard_by_alice, heard_by_carol, heard_by_bob = settle(alice, carol, bob)
            alice.send("hangup")
            for phone in (alice, carol, bob):
                phone.state("DISCONNECTED", timeout=15)
    finally:
        wait_for(lambda: site.api("DELETE", "/contact/queues/support/members/1001")[0] == 200,
                 15, lambda: "1001 could not leave the queue")  # fmt: skip
    hears(alice, heard_by_alice, AGENT_HZ, "the agent does not hear the other party")
    hears(carol, heard_by_carol, CALLER_HZ, "the other party does not hear the agent")
    hears(bob, heard_by_bob, CALLER_HZ, "monitor: bob did not hear the dynamic member")
    hears(bob, heard_by_bob, AGENT_HZ, "monitor: bob did not hear the other party")
    deaf_to(alice, heard_by_alice, SUPERVISOR_HZ, "monitor: the agent heard bob")
    deaf_to(carol, heard_by_carol, SUPERVISOR_HZ, "monitor: the other party heard bob")
