"""A queue agent at another site: two sites in network namespaces, real Kamailio,
rtpengine, media worker and pjsua2 phones.

branch-a holds queue ``support`` (700) whose only agent is 2001, an extension of
branch-b. branch-a learns 2001's registration by asking branch-b (signed OPTIONS) and
rings it over the inter-site route; branch-b forwards its agent codes to branch-a; a
supervisor at branch-a joins its calls. An outside caller reaches queue ``callme`` (701,
the same agent) through branch-a's carrier and IVR flow and is called back by the agent.
The tests run in file order and share the sites.
"""

from __future__ import annotations

import array
import contextlib
import datetime
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.pbx.audio import power, read_channels
from tests.integration.pbx.harness import Phone, media, require_debs
from tests.integration.routing.sites import (
    TOKEN,
    TRUNK_PORT,
    Company,
    Site,
    get_json,
    inside,
    routing_version,
    wait_until,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

HOLD_HZ = 425.0
CONFIRM_HZ = 1400.0
SUPERVISOR_HZ = 600.0
TONES = [HOLD_HZ, 450.0, 1000.0, CONFIRM_HZ, SUPERVISOR_HZ]
HEARD, NOT_HEARD = 0.05, 0.01
PROMPTS = {"agent-done": {"tone_hz": int(CONFIRM_HZ), "seconds": 1.5}}
CONTACT = {
    "remote_poll_s": 1,
    "agent_codes": {"prompt": "agent-done"},
    "supervisors": {"1002": {"queues": ["support"]}},
    "queues": {"support": {"number": "700", "agents": [{"extension": "2001", "remote": True}],
                           "ring_timeout_s": 5, "wrapup_s": 1},
               "callme": {"number": "701", "agents": [{"extension": "2001", "remote": True}],
                          "ring_timeout_s": 10, "wrapup_s": 1, "callback_after_s": 2,
                          "callback_prompt": "Press 1."}},
}  # fmt: skip
# branch-a's carrier: its far end is a pjsua2 phone at branch-a's address, port TRUNK_PORT.
OWNED, OUTSIDE = "+4930555000", "0301234567"
DIALPLAN = {
    "owned_numbers": [OWNED],
    "inbound": [{"did": OWNED, "target": "ivr:front"}],
    "outbound": [{"name": "national", "pattern": "0Z.", "trunk": "carrier", "strip": 1,
                  "prepend": "+49", "caller_id": OWNED}],
}  # fmt: skip
FRONT = {"start": "callme",
         "nodes": {"callme": {"type": "queue", "queue": "callme", "fallback": "1001"}}}  # fmt: skip


def directory() -> dict[str, Any]:
    return {
        "plan": {"flat": True, "site_prefix": ""},
        "sites": [
            {"id": "branch-a", "name": "Branch A", "sip_address": "10.77.0.1",
             "ranges": [{"first": "1001", "last": "1009"}]},
            {"id": "branch-b", "name": "Branch B", "sip_address": "10.77.0.2",
             "ranges": [{"first": "2001", "last": "2009"}]},
        ],
        "trunks": [],
        "rules": [],
    }  # fmt: skip


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Company]:
    require_debs()
    root = tmp_path_factory.mktemp("remote-agents")
    sites = [
        Site("branch-a", 1, "", root / "branch-a", {"1001": "Alice", "1002": "Sue"}, "carrier"),
        Site("branch-b", 2, "", root / "branch-b", {"2001": "Bob", "2002": "Carol"}),
    ]
    world = Company(root, sites)
    for site in sites:
        site.ns = f"{world.prefix}-{site.id}"
    try:
        world.build_network()
        doc = directory()
        world.write_configs(doc)
        _with_queue(sites[0])
        _with_forwarded_codes(sites[1])
        world.start_hq()
        world.put_directory(doc)
        for site in sites:
            world.start_site(site)
        for site in sites:
            wait_until(lambda s=site: routing_version(s) > 0, 20, site.output)  # type: ignore[misc]
        yield world
    finally:
        world.close()


def _with_queue(site: Site) -> None:
    """The contact centre, a media worker, the carrier's routes and an IVR flow that
    hands the carrier's callers to queue ``callme`` in the site's configuration."""
    path = site.root / "appliance.yaml"
    config = yaml.safe_load(path.read_text())
    config["pbx"]["media"] = media(1, prompts=PROMPTS)
    config["pbx"]["dialplan"].update(DIALPLAN)
    config["pbx"]["ivr"] = {"flows": {"front": FRONT}}
    config["contact"] = CONTACT
    path.write_text(yaml.safe_dump(config))


def _with_forwarded_codes(site: Site) -> None:
    """Agent codes whose extensions are agents of branch-a's queues (no queue here)."""
    path = site.root / "appliance.yaml"
    config = yaml.safe_load(path.read_text())
    config["contact"] = {"agent_codes": {"queue_site": "branch-a", "reasons": {"5": "lunch"}}}
    path.write_text(yaml.safe_dump(config))


def phone(site: Site, number: str, tone: int, root: Path) -> Phone:
    p = Phone(site, number, tone, root, secret=f"secret-{number}-pw", domain=site.domain,
              host=site.ip, netns=site.ns)  # fmt: skip
    assert p.registered() == 200, "".join(p.log)
    return p


def api(site: Site, method: str, path: str) -> Any:
    with inside(site.ns):
        response = httpx.request(method, f"{site.url}/api/v1{path}", timeout=5,
                                 headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


def support(site: Site) -> dict[str, Any]:
    queues = get_json(site.ns, f"{site.url}/api/v1/contact/queues")["queues"]
    found: dict[str, Any] = next(q for q in queues if q["name"] == "support")
    return found


def remote_agent(site: Site) -> dict[str, Any]:
    found: dict[str, Any] = support(site)["agents"][0]
    return found


def recorded_s(p: Phone) -> float:
    return max(0, p.record.stat().st_size - 44) / 16000 if p.record.exists() else 0.0


def heard(p: Phone, start_s: float, end_s: float) -> float:
    """The tone (of ``TONES``) loudest in what the phone heard between two moments."""
    rate, (samples,) = read_channels(p.record)
    window = array.array("h", samples[int(start_s * rate) : int(end_s * rate)])
    assert len(window) > rate // 2, f"{p.number} heard only {len(samples) / rate:.1f} s"
    return max(TONES, key=lambda f: power(window, rate, f))


def test_an_agent_registered_at_another_site_answers_a_queue_call_with_audio_both_ways(
    company: Company, tmp_path: Path
) -> None:
    a, b = company.sites["branch-a"], company.sites["branch-b"]
    bob = phone(b, "2001", 1000, tmp_path)
    alice = phone(a, "1001", 450, tmp_path)
    try:
        wait_until(lambda: remote_agent(a)["registered"] is True, 15, a.output)
        assert api(a, "POST", "/contact/agents/2001/login")["state"] == "available"
        alice.send("call", to="700")
        alice.state("CONFIRMED")
        incoming = bob.wait(lambda e: e["ev"] == "incoming", 15)
        assert "1001" in incoming["remote"]
        assert remote_agent(a)["state"] == "ringing"
        bob.send("answer")
        bob.state("CONFIRMED")
        on_call_at = recorded_s(alice)
        wait_until(lambda: remote_agent(a)["state"] == "on-call", 5, a.output)
        wait_until(lambda: recorded_s(alice) > on_call_at + 3 and recorded_s(bob) > 3, 15,
                   lambda: "no audio once connected")  # fmt: skip
        bob.send("hangup")
        bob.state("DISCONNECTED")
        alice.state("DISCONNECTED")
    finally:
        alice.close()
        bob.close()
    assert heard(alice, on_call_at + 1.0, on_call_at + 2.5) == 1000.0, "alice did not hear bob"
    assert heard(bob, 1.0, 2.5) == 450.0, "bob did not hear alice"
    cdr = a.cdr(lambda c: (c.get("variables") or {}).get("queue") == "support")
    assert (cdr["variables"]["queue_outcome"], cdr["variables"]["queue_agent"]) == (
        "answered", "2001",
    )  # fmt: skip
    leg = a.cdr(lambda c: c["callee"]["number"] == "2001")
    assert (leg["route"], leg["peer_site"], leg["disposition"]) == (
        "site:branch-b", "branch-b", "answered",
    )  # fmt: skip
    received = b.cdr(lambda c: c["callee"]["extension"] == "2001")
    assert (received["peer_site"], received["disposition"]) == ("branch-a", "answered")
    wait_until(lambda: remote_agent(a)["state"] == "available", 10, a.output)
    wait_until(lambda: hq_agent(company, "2001").get("calls_answered") == 1, 20, a.output)
    assert hq_agent(company, "2001")["on_call_s"] > 2, "the state log reached HQ"


def hq_agent(company: Company, number: str) -> dict[str, Any]:
    """HQ's agent report row of branch-a's agent ``number`` (from the synced state log
    and queue CDRs; empty until synced)."""
    today = datetime.datetime.now(datetime.UTC).date()
    span = f"from={today}&to={today + datetime.timedelta(days=1)}&site=branch-a"
    rows = get_json(company.hub, f"{company.hq_url}/api/v1/reports/agents?{span}")["rows"]
    found: dict[str, Any] = next((r for r in rows if r["agent"] == number), {})
    return found


def test_a_remote_agent_who_does_not_answer_is_paused_with_no_answer(
    company: Company, tmp_path: Path
) -> None:
    a, b = company.sites["branch-a"], company.sites["branch-b"]
    bob = phone(b, "2001", 1000, tmp_path)
    alice = phone(a, "1001", 450, tmp_path)
    try:
        wait_until(lambda: remote_agent(a)["registered"] is True, 15, a.output)
        alice.send("call", to="700")
        alice.state("CONFIRMED")
        bob.wait(lambda e: e["ev"] == "incoming", 15)
        wait_until(lambda: remote_agent(a)["state"] == "paused", 15, a.output)
        assert remote_agent(a)["reason"] == "no-answer"
        bob.state("DISCONNECTED", 10)
        alice.send("hangup")
        alice.state("DISCONNECTED")
    finally:
        alice.close()
        bob.close()
    assert api(a, "POST", "/contact/agents/2001/resume")["state"] == "available"


def test_an_agent_whose_phone_unregistered_at_its_site_is_not_offered_calls(
    company: Company, tmp_path: Path
) -> None:
    a = company.sites["branch-a"]
    wait_until(lambda: remote_agent(a)["registered"] is False, 15, a.output)
    assert remote_agent(a)["state"] == "available", "logged in, but offered nothing"
    alice = phone(a, "1001", 450, tmp_path)
    try:
        alice.send("call", to="700")
        alice.state("CONFIRMED")
        wait_until(lambda: len(support(a)["waiting"]) == 1, 10, a.output)
        time.sleep(3)
        (caller,) = support(a)["waiting"]
        assert (caller["offered_to"], caller["offered"]) == (None, [])
        assert remote_agent(a)["state"] == "available"
        alice.send("hangup")
        alice.state("DISCONNECTED")
    finally:
        alice.close()


def by_code(p: Phone, code: str) -> None:
    """The phone dials an agent code, hears the confirmation and is hung up on."""
    p.send("call", to=code)
    p.state("CONFIRMED", timeout=15)
    p.state("DISCONNECTED", timeout=15)


def test_a_remote_agent_logs_in_pauses_and_resumes_with_its_own_sites_codes(
    company: Company, tmp_path: Path
) -> None:
    a, b = company.sites["branch-a"], company.sites["branch-b"]
    bob = phone(b, "2001", 1000, tmp_path)
    carol = phone(b, "2002", 450, tmp_path)
    try:
        by_code(bob, "*72")
        assert remote_agent(a)["state"] == "logged-out"
        by_code(bob, "*71")
        assert remote_agent(a)["state"] == "available"
        by_code(bob, "*735")  # branch-b's reason digit 5: lunch
        assert (remote_agent(a)["state"], remote_agent(a)["reason"]) == ("paused", "lunch")
        by_code(bob, "*74")
        assert remote_agent(a)["state"] == "available"
        carol.send("call", to="*71")
        assert carol.state("DISCONNECTED", timeout=15)["code"] == 404, "2002 is no agent there"
        bob.send("call", to="*74")
        assert bob.state("DISCONNECTED", timeout=15)["code"] == 409, "not paused"
    finally:
        carol.close()
        bob.close()
    rate, (samples,) = read_channels(bob.record)
    assert len(samples) > 4 * rate, f"2001 heard only {len(samples) / rate:.1f} s"
    powers = {f: power(samples, rate, f) for f in TONES}
    assert max(powers, key=lambda f: powers[f]) == CONFIRM_HZ, f"no confirmation: {powers}"
    forwarded = a.cdr(lambda c: c["route"] == "agent:pause")
    assert (forwarded["peer_site"], forwarded["caller"]["extension"]) == ("branch-b", "2001")


def share(p: Phone, window: tuple[float, float], freq: float) -> float:
    """How much of the tones' power the phone heard in ``window`` is ``freq``'s (mean
    over 100 ms blocks: a tone whose phase jumps in a mix never cancels itself out)."""
    rate, (samples,) = read_channels(p.record)
    heard_ = array.array("h", samples[int(window[0] * rate) : int(window[1] * rate)])
    assert len(heard_) > rate // 2, f"{p.number} heard only {len(samples) / rate:.1f} s"
    step = rate // 10
    blocks = [heard_[i : i + step] for i in range(0, len(heard_) - step + 1, step)]
    powers = {f: sum(power(b, rate, f) for b in blocks) for f in TONES}
    return powers[freq] / max(1e-9, sum(powers.values()))


def settle(*parties: Phone, seconds: float = 3.0) -> list[tuple[float, float]]:
    """Let every phone record ``seconds`` more; the window of each to check (past 1 s)."""
    marks = [recorded_s(p) for p in parties]
    pairs = list(zip(parties, marks, strict=True))
    wait_until(lambda: all(recorded_s(p) > m + seconds for p, m in pairs), seconds + 15,
               lambda: "the phones stopped recording")  # fmt: skip
    return [(m + 1.0, m + seconds) for m in marks]


def supervision(site: Site) -> dict[str, Any]:
    sessions = get_json(site.ns, f"{site.url}/api/v1/contact/supervisions")["sessions"]
    return dict(sessions[0]) if sessions else {}


def test_a_supervisor_whispers_to_and_monitors_a_remote_agents_queue_call(
    company: Company, tmp_path: Path
) -> None:
    a, b = company.sites["branch-a"], company.sites["branch-b"]
    bob = phone(b, "2001", 1000, tmp_path)
    alice = phone(a, "1001", 450, tmp_path)
    sue = phone(a, "1002", int(SUPERVISOR_HZ), tmp_path)
    try:
        wait_until(lambda: remote_agent(a)["registered"] is True, 15, a.output)
        if remote_agent(a)["state"] == "logged-out":
            api(a, "POST", "/contact/agents/2001/login")
        alice.send("call", to="700")
        alice.state("CONFIRMED")
        bob.wait(lambda e: e["ev"] == "incoming", 15)
        bob.send("answer")
        bob.state("CONFIRMED")
        wait_until(lambda: remote_agent(a)["state"] == "on-call", 10, a.output)
        settle(alice, bob)
        sue.send("call", to="*912001")
        sue.state("CONFIRMED", timeout=15)
        wait_until(lambda: supervision(a).get("state") == "joined", 10, a.output)
        whisper = settle(alice, bob, sue)
        sue.send("dtmf", digits="4")
        wait_until(lambda: supervision(a).get("mode") == "monitor", 10, a.output)
        monitor = settle(alice, bob, sue)
        sue.send("hangup")
        sue.state("DISCONNECTED")
        after = settle(alice, bob)
        bob.send("hangup")
        bob.state("DISCONNECTED")
        alice.state("DISCONNECTED")
    finally:
        sue.close()
        alice.close()
        bob.close()
    assert share(bob, whisper[1], SUPERVISOR_HZ) > HEARD, "whisper: the agent did not hear sue"
    assert share(alice, whisper[0], SUPERVISOR_HZ) < NOT_HEARD, "whisper: the caller heard sue"
    assert share(bob, monitor[1], SUPERVISOR_HZ) < NOT_HEARD, "monitor: the agent heard sue"
    assert share(alice, monitor[0], SUPERVISOR_HZ) < NOT_HEARD, "monitor: the caller heard sue"
    for window in (whisper[2], monitor[2]):
        assert share(sue, window, 450.0) > HEARD, "the supervisor did not hear the caller"
        assert share(sue, window, 1000.0) > HEARD, "the supervisor did not hear the agent"
    assert share(alice, after[0], 1000.0) > HEARD, "the call did not go on without sue"
    assert share(bob, after[1], 450.0) > HEARD, "the call did not go on without sue"


def callme(site: Site) -> dict[str, Any]:
    queues = get_json(site.ns, f"{site.url}/api/v1/contact/queues")["queues"]
    found: dict[str, Any] = next(q for q in queues if q["name"] == "callme")
    return found


def callme_agent(site: Site) -> dict[str, Any]:
    found: dict[str, Any] = callme(site)["agents"][0]
    return found


def waits_for_callback(site: Site) -> bool:
    return [w["callback"] for w in callme(site)["waiting"]] == [True]


def press_1_until_called_back_later(site: Site, caller: Phone, timeout: float) -> None:
    """The caller presses 1 each second until the queue, having offered the callback,
    keeps it waiting for one (its call ends); the caller's events so far are dropped."""
    deadline = time.monotonic() + timeout
    while not waits_for_callback(site):
        assert time.monotonic() < deadline, "the caller was never offered a callback"
        caller.send("dtmf", digits="1")
        time.sleep(1)
    with contextlib.suppress(AssertionError):
        caller.wait(lambda e: False, 2)
    caller.events.clear()


def test_a_remote_agent_calls_back_an_outside_caller_through_the_sites_trunk(
    company: Company, tmp_path: Path
) -> None:
    a, b = company.sites["branch-a"], company.sites["branch-b"]
    bob = phone(b, "2001", 1000, tmp_path)
    far = Phone(a, OUTSIDE, 450, tmp_path, host=a.ip, netns=a.ns, sip_port=TRUNK_PORT)
    try:
        far.wait(lambda e: e["ev"] == "ready")
        wait_until(lambda: callme_agent(a)["registered"] is True, 15, a.output)
        if callme_agent(a)["state"] != "logged-out":
            api(a, "POST", "/contact/agents/2001/logout")
        far.send("call", to=OWNED)
        far.state("CONFIRMED", timeout=15)
        far.wait(lambda e: e["ev"] == "transferring", 15)  # the flow hands it to the queue
        wait_until(lambda: len(callme(a)["waiting"]) == 1, 15, a.output)
        press_1_until_called_back_later(a, far, 30)
        cdr = a.cdr(lambda c: (c.get("variables") or {}).get("queue") == "callme")
        assert cdr["variables"]["queue_outcome"] == "callback"
        assert api(a, "POST", "/contact/agents/2001/login")["state"] in ("available", "ringing")
        offered = bob.wait(lambda e: e["ev"] == "incoming", 15)
        assert OUTSIDE in offered["remote"], "the agent sees whom it calls back"
        bob.send("answer")
        bob.state("CONFIRMED")
        called_back = far.answer(timeout=20)
        assert OWNED in called_back["remote"], "the site's number, not the agent's"
        start_far, start_bob = recorded_s(far), recorded_s(bob)
        wait_until(lambda: recorded_s(far) > start_far + 2.5 and recorded_s(bob) > start_bob + 2.5,
                   20, lambda: "no audio once connected")  # fmt: skip
        bob.send("hangup")
        bob.state("DISCONNECTED")
        far.state("DISCONNECTED", timeout=15)
    finally:
        far.close()
        bob.close()
    assert heard(far, start_far + 0.5, start_far + 2.0) == 1000.0, "the caller heard no agent"
    assert heard(bob, start_bob + 0.5, start_bob + 2.0) == 450.0, "the agent heard no caller"
    back = a.cdr(lambda c: (c.get("variables") or {}).get("callback_of") == cdr["call_id"])
    assert (back["variables"]["callback_status"], back["variables"]["callback_try"]) == (
        "answered", "1",
    )  # fmt: skip
    assert (back["trunk"], back["route"], back["disposition"]) == ("carrier", "national",
                                                                   "answered")  # fmt: skip
