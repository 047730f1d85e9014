"""The taxi dispatch interface end to end: a dispatch system written for the test.

The dispatch system answers the taxi flow's lookups, receives the signed CTI webhooks
(the screen pop of a queued caller) and checks each signature as docs/contact-centre.md
shows a receiver doing it, then drives calls through the local API: transfer and hang
up, click-to-dial and a third party, and the recording found through the CDR. Real
pjsua2 phones through Kamailio, rtpengine and two media workers; audio checked on every
connected call.
"""

from __future__ import annotations

import array
import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.pbx.audio import dominant, power, read_channels
from tests.integration.pbx.contact_env import contact_pbx
from tests.integration.pbx.harness import (
    API_TOKEN,
    WEBHOOK_SECRET,
    Pbx,
    Phone,
    media,
    phones,
    wait_for,
)
from tests.loopback_http import LoopbackHttp, Reply

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ivr"
TONES = [300.0, 450.0, 600.0, 1000.0]
EXTENSIONS = {"1001": "Customer", "1002": "Driver", "1003": "Dispatcher", "1004": "Spare"}
ADDRESS = "12 Harbour Road"
LOOKUPS = {"/last-trip": {"known": True, "address": ADDRESS, "name": "Ms Li"}}
CONTACT = {
    "queues": {"operators": {"number": "710", "agents": ["1003"], "wrapup_s": 1}},
    "webhook_events": ["call.*", "agent.state"],
}


class DispatchSystem(LoopbackHttp):
    """The taxi dispatch system: the flow's lookups and a signed-webhook endpoint."""

    def __init__(self, secret: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        self._secret = secret
        super().__init__(self._answer)

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if path == "/events":
            return Reply(self.receive(headers, body, self._secret), b"{}")
        return Reply(200, json.dumps(LOOKUPS.get(path, {})).encode())

    def receive(self, headers: dict[str, str], body: bytes, secret: str) -> int:
        """Keep a webhook whose signature checks out (the receiver of the docs); else 401."""
        stamp = headers["X-Callmesh-Timestamp"]
        mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        fresh = abs(time.time() - int(stamp)) < 300
        if not (fresh and hmac.compare_digest("sha256=" + mac.hexdigest(),
                                              headers["X-Callmesh-Signature"])):  # fmt: skip
            self.refused += 1
            return 401
        self.raw.append((headers, body))
        self.events.append({**json.loads(body), "key": headers.get("X-Callmesh-Event-Id")})
        return 204

    def named(self, event: str, call_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events
                if e["event"] == event and call_id in (None, e["call_id"])]  # fmt: skip


@pytest.fixture(scope="module")
def dispatch() -> Iterator[DispatchSystem]:
    system = DispatchSystem(WEBHOOK_SECRET)
    yield system
    system.close()


@pytest.fixture(scope="module")
def dpbx(tmp_path_factory: pytest.TempPathFactory, dispatch: DispatchSystem) -> Iterator[Pbx]:
    taxi = (EXAMPLES / "taxi-hotline.yaml").read_text().replace("http://127.0.0.1:8090",
                                                                 dispatch.base)  # fmt: skip
    webhook = {"url": f"{dispatch.base}/events", "secret": WEBHOOK_SECRET}
    with contact_pbx(tmp_path_factory, "dispatch-pbx", CONTACT, extensions=EXTENSIONS,
                     media=media(2), ivr={"flows": {"taxi": yaml.safe_load(taxi)}},
                     webhook=webhook) as instance:  # fmt: skip
        yield instance


def api(pbx: Pbx, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
    status, answer = pbx.api(method, path, body)
    assert status == expect, (method, path, status, answer)
    return answer


def live_call(pbx: Pbx, caller: str, callee: str) -> dict[str, Any]:
    """The answered call from ``caller`` to ``callee``, waiting for it (bounded)."""
    found: list[dict[str, Any]] = []

    def answered() -> bool:
        calls = api(pbx, "GET", "/calls")["calls"]
        found[:] = [c for c in calls if c["answer"] and c["caller"]["number"] == caller
                    and c["callee"]["number"] == callee]  # fmt: skip
        return len(found) == 1

    wait_for(answered, 10, lambda: str(api(pbx, "GET", "/calls")))
    return found[0]


def pick_up(phone: Phone) -> dict[str, Any]:
    """Answer as a person does, a moment after it rang (not within milliseconds)."""
    incoming = phone.wait(lambda e: e["ev"] == "incoming", 20)
    time.sleep(1.0)
    phone.send("answer")
    phone.state("CONFIRMED")
    return incoming


def recorded_past(phone: Phone, seconds: float) -> Callable[[], bool]:
    return lambda: phone.record.exists() and phone.record.stat().st_size > 44 + seconds * 16000


def heard_since(phone: Phone, seconds: float) -> float:
    """The tone of ``TONES`` loudest in what the phone heard after ``seconds``."""
    rate, (samples,) = read_channels(phone.record)
    return dominant(samples[int(seconds * rate) :], rate, TONES)


def heard_between(phone: Phone, start_s: float, end_s: float) -> float:
    """The tone of ``TONES`` loudest in what the phone heard between two moments."""
    rate, (samples,) = read_channels(phone.record)
    window = array.array("h", samples[int(start_s * rate) : int(end_s * rate)])
    assert len(window) > rate // 2, f"{phone.number} heard only {len(samples) / rate:.1f} s"
    return max(TONES, key=lambda f: power(window, rate, f))


def cdr_of(pbx: Pbx, number: str, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The CDR ``match`` picks among ``GET /cdrs?number=``, waiting for it (bounded)."""
    found: list[dict[str, Any]] = []

    def ready() -> bool:
        found[:] = [c for c in api(pbx, "GET", f"/cdrs?number={number}&limit=500")["cdrs"]
                    if match(c)]  # fmt: skip
        return len(found) == 1

    wait_for(ready, 15, lambda: f"{found}\n{pbx.output()[-3000:]}")
    return found[0]


def recording_of(pbx: Pbx, cdr: dict[str, Any], into: Path) -> Path:
    """A CDR's recording as the dispatch system gets it: the index entry, then the WAV."""
    rec_id = cdr["recording_id"]
    wait_for(lambda: pbx.api("GET", f"/recordings/{rec_id}")[0] == 200, 30, pbx.output)
    request = urllib.request.Request(
        f"http://127.0.0.1:{pbx.api_port}/api/v1/recordings/{rec_id}/wav",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "audio/wav"
        into.write_bytes(response.read())
    return into


def test_dispatch_gets_the_signed_screen_pop_transfers_the_caller_and_hangs_up(
    dpbx: Pbx, dispatch: DispatchSystem, tmp_path: Path
) -> None:
    specs = (("1001", 450), ("1003", 1000), ("1002", 600))
    with phones(dpbx, tmp_path, *specs) as (customer, dispatcher, driver):
        api(dpbx, "POST", "/contact/agents/1003/logout")
        api(dpbx, "POST", "/contact/agents/1003/login")
        customer.send("call", to="ivr-taxi")
        customer.state("CONFIRMED")
        wait_for(recorded_past(customer, 3.0), 20, lambda: "the customer heard nothing")
        for _ in range(2):
            customer.send("dtmf", digits="9")
            time.sleep(1.0)
        customer.wait(lambda e: e["ev"] == "transferring", 20)
        incoming = dispatcher.answer(timeout=20)
        assert "1001" in incoming["remote"]
        wait_for(
            lambda: bool(dispatch.named("contact.call.answered")), 10, lambda: str(dispatch.events)
        )
        (queued,) = dispatch.named("contact.call.queued")
        call_id = queued["call_id"]
        talk_at = (customer.record.stat().st_size - 44) / 16000
        wait_for(recorded_past(dispatcher, 3.0), 15, lambda: "no audio once connected")
        api(dpbx, "POST", "/contact/agents/1003/transfer", {"to": "1002"})
        assert "1001" in pick_up(driver)["remote"]
        dispatcher.state("DISCONNECTED", timeout=15)
        customer_to_driver = live_call(dpbx, "1001", "1002")
        wait_for(recorded_past(driver, 3.0), 15, lambda: "the driver heard nothing")
        ended = api(dpbx, "DELETE", f"/calls/{customer_to_driver['call_id']}")["cdr"]
        customer.state("DISCONNECTED", timeout=15)
        driver.state("DISCONNECTED", timeout=15)
    assert (ended["hangup_side"], ended["hangup_cause"]["reason"]) == ("system", "api-hangup")
    assert heard_since(dispatcher, 1.0) == 450.0, "the dispatcher did not hear the customer"
    assert heard_between(customer, talk_at + 0.5, talk_at + 2.0) == 1000.0, "nor the reverse"
    assert heard_between(driver, 1.5, 3.0) == 450.0, "the driver did not hear the customer"
    pop = queued["data"]
    assert (pop["caller"], pop["queue"]) == ("1001", "operators")
    assert pop["variables"]["last_address"] == ADDRESS
    assert pop["variables"]["customer"] == "Ms Li"
    (offered,) = dispatch.named("contact.call.offered", call_id)
    assert (offered["data"]["agent"], offered["data"]["variables"]) == ("1003", pop["variables"])
    ours = [e for e in dispatch.events if e["event"].startswith("contact.")]
    assert [e["seq"] for e in ours] == sorted(e["seq"] for e in ours), "out of order"
    assert {e["key"] for e in ours} == {f"{e['run']}-{e['seq']}" for e in ours}
    names = [e["event"] for e in ours if e["call_id"] == call_id]
    assert names[:3] == ["contact.call.queued", "contact.call.offered",
                         "contact.call.agent-ringing"]  # fmt: skip
    assert "contact.call.transferred" in names
    assert not [e for e in ours if e["event"].startswith("contact.supervisor")]
    assert dispatch.refused == 0
    headers, body = dispatch.raw[-1]
    assert dispatch.receive(headers, body.replace(b"}", b" }", 1), WEBHOOK_SECRET) == 401
    queued_cdr = cdr_of(dpbx, "1001", lambda c: c["call_id"] == call_id)
    assert queued_cdr["recording_id"] is None, "the caller's leg into the queue is a media call"
    agent = queued_cdr["variables"]["queue_agent"]
    talk = cdr_of(dpbx, "1001", lambda c: c["callee"]["number"] == agent
                  and c["start"] >= queued_cdr["start"])  # fmt: skip
    rate, (left, right) = read_channels(recording_of(dpbx, talk, tmp_path / "talk.wav"))
    assert (dominant(left, rate, TONES), dominant(right, rate, TONES)) == (450.0, 1000.0)
    moved = cdr_of(dpbx, "1001", lambda c: c["call_id"] == customer_to_driver["call_id"])
    rate, (left, right) = read_channels(recording_of(dpbx, moved, tmp_path / "moved.wav"))
    assert (dominant(left, rate, TONES), dominant(right, rate, TONES)) == (450.0, 600.0)


def test_dispatch_dials_a_driver_for_the_dispatcher_then_adds_a_third_party(
    dpbx: Pbx, tmp_path: Path
) -> None:
    specs = (("1003", 1000), ("1002", 600), ("1004", 300))
    with phones(dpbx, tmp_path, *specs) as (dispatcher, driver, customer):
        op = api(dpbx, "POST", "/calls", {"extension": "1003", "number": "1002"}, expect=202)
        dispatcher.wait(lambda e: e["ev"] == "incoming", 15)
        dispatcher.send("answer")
        dispatcher.wait(lambda e: e["ev"] == "transferring", 15)
        driver.answer(timeout=15)
        call = live_call(dpbx, "1003", "1002")
        assert call["conversation_id"] == op["conversation_id"]
        wait_for(recorded_past(driver, 2.5), 15, lambda: "the driver heard nothing")
        two_way_s = (driver.record.stat().st_size - 44) / 16000
        added = api(dpbx, "POST", f"/calls/{call['call_id']}/parties", {"number": "1004"},
                    expect=202)  # fmt: skip
        dispatcher.wait(lambda e: e["ev"] == "replaced", 15)
        driver.wait(lambda e: e["ev"] == "replaced", 15)
        customer.answer(timeout=15)
        wait_for(recorded_past(customer, 3.0), 15, lambda: "the third party heard nothing")
        api(dpbx, "DELETE", f"/operations/{added['id']}")
        customer.state("DISCONNECTED", timeout=15)
    assert heard_between(driver, 0.5, two_way_s) == 1000.0, "the driver heard no dispatcher"
    rate, (samples,) = read_channels(customer.record)
    middle = samples[len(samples) // 2 - rate : len(samples) // 2 + rate]
    strongest = sorted(TONES, key=lambda f: -power(middle, rate, f))[:2]
    assert set(strongest) == {1000.0, 600.0}, "the third party hears dispatcher and driver"
