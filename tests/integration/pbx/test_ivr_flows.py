"""IVR flows end to end: real pjsua2 phones through Kamailio into the media workers.

Prompts are spoken by espeak-ng; the checks are on what the phones recorded (speech
energy during a prompt, the caller's tone at the extension the flow transferred it to)
and on what a small dispatch webhook server written for these tests received.
"""

from __future__ import annotations

import array
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.pbx.audio import dominant, loudness, read_channels
from tests.integration.pbx.harness import (
    ADMIN_TOKEN,
    WEBHOOK_SECRET,
    Pbx,
    Phone,
    WebhookReceiver,
    media,
    no_daemons_left,
    phones,
    require_debs,
    wait_for,
)
from tests.loopback_http import LoopbackHttp, Reply

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ivr"
TONES = [300.0, 450.0, 600.0, 700.0, 1000.0]
EXTENSIONS = {"1001": "Alice", "1002": "Bob", "1003": "Carol", "1004": "Dave"}
ADDRESS = "12 Harbour Road"
ANSWERS = {
    "/last-trip": {"known": True, "address": ADDRESS, "name": "Ms Li"},
    "/order": {"accepted": True, "order_id": "T-17"},
}


class DispatchServer(LoopbackHttp):
    """The taxi dispatch system's webhooks: last trip, order, voice order."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        super().__init__(self._answer)

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.received.append((path, json.loads(body)))
        return Reply(200, json.dumps(ANSWERS.get(path, {})).encode())

    def bodies(self, path: str, caller: str | None = None) -> list[dict[str, Any]]:
        return [body for p, body in self.received
                if p == path and caller in (None, body.get("caller"))]  # fmt: skip


def desk_flow(number: str) -> dict[str, Any]:
    return {"start": "welcome", "nodes": {
        "welcome": {"type": "menu", "say": "Press 1 to reach the front desk.",
                    "options": {"1": "desk"}, "timeout_s": 15, "retries": 0, "timeout": "bye"},
        "desk": {"type": "extension", "number": number},
        "bye": {"type": "hangup"},
    }}  # fmt: skip


@pytest.fixture(scope="module")
def dispatch() -> Iterator[DispatchServer]:
    server = DispatchServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def events() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def ipbx(
    tmp_path_factory: pytest.TempPathFactory, dispatch: DispatchServer, events: WebhookReceiver
) -> Iterator[Pbx]:
    require_debs()
    root = tmp_path_factory.mktemp("ivr-pbx")
    taxi = (EXAMPLES / "taxi-hotline.yaml").read_text().replace("http://127.0.0.1:8090",
                                                                 dispatch.base)  # fmt: skip
    flows = {"desk": desk_flow("1003"), "swap": desk_flow("1003"), "taxi": yaml.safe_load(taxi)}
    webhook = {"url": events.url, "secret": WEBHOOK_SECRET}
    instance = Pbx(root, extensions=EXTENSIONS, media=media(2), ivr={"flows": flows},
                   webhook=webhook)  # fmt: skip
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


def heard_samples(phone: Phone) -> tuple[int, array.array[int]]:
    rate, (samples,) = read_channels(phone.record)
    return rate, samples


def spoken(samples: array.array[int], rate: int, start_s: float, end_s: float) -> bool:
    """Speech, not silence and not a steady tone: loud 100 ms frames with quiet gaps."""
    window = samples[int(start_s * rate) : int(end_s * rate)]
    step = rate // 10
    frames = [loudness(window[i : i + step]) for i in range(0, len(window) - step, step)]
    loud = [f for f in frames if f > 300]
    return len(loud) >= 5 and min(frames) < 0.3 * max(frames)


def recorded_enough(phone: Phone, seconds: float) -> bool:
    return phone.record.exists() and phone.record.stat().st_size > 44 + seconds * 16000


def test_a_caller_hears_the_spoken_menu_and_a_digit_transfers_to_the_extension(
    ipbx: Pbx, tmp_path: Path
) -> None:
    with phones(ipbx, tmp_path, ("1001", 450), ("1003", 1000)) as (alice, carol):
        alice.send("call", to="ivr-desk")
        alice.state("CONFIRMED")
        wait_for(lambda: recorded_enough(alice, 2.5), 15, lambda: "alice recorded nothing")
        alice.send("dtmf", digits="1")
        alice.wait(lambda e: e["ev"] == "transferring", 15)
        carol.answer()
        wait_for(lambda: recorded_enough(carol, 2.5), 15, lambda: "carol recorded nothing")
        carol.send("hangup")
        carol.state("DISCONNECTED")
    rate, samples = heard_samples(alice)
    assert spoken(samples, rate, 0.2, 2.2), "alice heard no speech during the menu prompt"
    rate, samples = heard_samples(carol)
    assert dominant(samples, rate, TONES) == 450.0


def test_taxi_hotline_repeats_the_last_trip_and_sends_the_order(
    ipbx: Pbx, dispatch: DispatchServer, events: WebhookReceiver, tmp_path: Path
) -> None:
    with phones(ipbx, tmp_path, ("1001", 450)) as (alice,):
        alice.send("call", to="ivr-taxi")
        alice.state("CONFIRMED")
        wait_for(lambda: recorded_enough(alice, 6.5), 20, lambda: "alice recorded nothing")
        alice.send("dtmf", digits="1")
        time.sleep(1.0)
        alice.send("dtmf", digits="1")
        alice.state("DISCONNECTED", timeout=30)
    (order,) = dispatch.bodies("/order")
    assert order["caller"] == "1001"
    assert order["variables"]["address"] == ADDRESS
    assert dispatch.bodies("/last-trip")[0]["caller"] == "1001"
    rate, samples = heard_samples(alice)
    assert spoken(samples, rate, 0.5, 6.0), "the last trip was not read back"
    cdr = ipbx.cdr_for(lambda c: c["route"] == "media:ivr-taxi")
    assert cdr["variables"]["last_address"] == ADDRESS
    assert cdr["variables"]["order_id"] == "T-17"
    pushed = [json.loads(body) for _, body in events.events_for(cdr["call_id"])]
    popped = [e["data"]["variables"] for e in pushed if e["event"] == "call.variables"]
    assert popped[0]["address"] == ADDRESS
    assert popped[-1]["last_address"] == ADDRESS
    assert popped[-1]["customer"] == "Ms Li"


def test_taxi_hotline_records_a_spoken_destination_for_dispatch(
    ipbx: Pbx, dispatch: DispatchServer, tmp_path: Path
) -> None:
    with phones(ipbx, tmp_path, ("1002", 600)) as (bob,):
        bob.send("call", to="ivr-taxi")
        bob.state("CONFIRMED")
        wait_for(lambda: recorded_enough(bob, 1.5), 15, lambda: "bob recorded nothing")
        bob.send("dtmf", digits="2")
        wait_for(lambda: recorded_enough(bob, 10.0), 30, lambda: "the call stopped")
        bob.send("dtmf", digits="#")
        bob.state("DISCONNECTED", timeout=30)
    voice = voice_order(dispatch, "1002")
    assert voice["variables"]["last_address"] == ADDRESS
    assert voice["seconds"] > 1.0
    assert_tone(voice, tmp_path, 600.0)


def test_a_caller_hanging_up_while_recorded_still_sends_the_voice_order(
    ipbx: Pbx, dispatch: DispatchServer, tmp_path: Path
) -> None:
    with phones(ipbx, tmp_path, ("1004", 300)) as (dave,):
        dave.send("call", to="ivr-taxi")
        dave.state("CONFIRMED")
        wait_for(lambda: recorded_enough(dave, 1.5), 15, lambda: "dave recorded nothing")
        dave.send("dtmf", digits="2")
        wait_for(lambda: recorded_enough(dave, 10.0), 30, lambda: "the call stopped")
        dave.send("hangup")
        dave.state("DISCONNECTED")
    voice = voice_order(dispatch, "1004")
    assert voice["seconds"] > 1.0
    assert_tone(voice, tmp_path, 300.0)


def voice_order(dispatch: DispatchServer, caller: str) -> dict[str, Any]:
    wait_for(lambda: bool(dispatch.bodies("/voice-order", caller)), 10,
             lambda: str([(p, b.get("caller")) for p, b in dispatch.received]))  # fmt: skip
    (voice,) = dispatch.bodies("/voice-order", caller)
    return voice


def assert_tone(voice: dict[str, Any], tmp_path: Path, tone: float) -> None:
    wav = tmp_path / "voice-order.wav"
    wav.write_bytes(base64.b64decode(voice["audio"]["base64"]))
    rate, (samples,) = read_channels(wav)
    assert loudness(samples) > 300, "the recorded destination is silent"
    assert dominant(samples, rate, TONES) == tone


def test_a_flow_replaced_mid_call_keeps_the_call_on_its_version(ipbx: Pbx, tmp_path: Path) -> None:
    specs = (("1001", 450), ("1002", 600), ("1003", 1000), ("1004", 300))
    with phones(ipbx, tmp_path, *specs) as (alice, bob, carol, dave):
        alice.send("call", to="ivr-swap")
        alice.state("CONFIRMED")
        status, answer = ipbx.api("PUT", "/ivr/flows/swap", desk_flow("1002"), ADMIN_TOKEN)
        assert status == 200, answer
        assert answer["version"] == 2
        alice.send("dtmf", digits="1")
        alice.wait(lambda e: e["ev"] == "transferring", 15)
        carol.answer()
        dave.send("call", to="ivr-swap")
        dave.state("CONFIRMED")
        dave.send("dtmf", digits="1")
        dave.wait(lambda e: e["ev"] == "transferring", 15)
        bob.answer()
        wait_for(lambda: recorded_enough(carol, 2.5) and recorded_enough(bob, 2.5), 15,
                 lambda: "no audio after the transfers")  # fmt: skip
        carol.send("hangup")
        bob.send("hangup")
        carol.state("DISCONNECTED")
        bob.state("DISCONNECTED")
    rate, samples = heard_samples(carol)
    assert dominant(samples, rate, TONES) == 450.0
    rate, samples = heard_samples(bob)
    assert dominant(samples, rate, TONES) == 300.0
    status, listed = ipbx.api("GET", "/ivr/flows")
    assert {f["name"]: f["version"] for f in listed["flows"]}["swap"] == 2


def test_an_invalid_flow_is_refused_and_the_current_version_stays(ipbx: Pbx) -> None:
    bad = {"start": "a", "nodes": {"a": {"type": "play", "say": "Hi", "next": "b"},
                                   "b": {"type": "play", "say": "Again", "next": "a"}}}  # fmt: skip
    status, answer = ipbx.api("PUT", "/ivr/flows/desk", bad, ADMIN_TOKEN)
    assert status == 422
    assert answer["detail"]["error_id"] == "ivr-flow-invalid"
    assert answer["detail"]["details"]["problems"][0]["node"] in ("a", "b")
    status, answer = ipbx.api("PUT", "/ivr/flows/desk", desk_flow("1002"))
    assert status == 403
    status, current = ipbx.api("GET", "/ivr/flows/desk")
    assert (status, current["version"]) == (200, 1)
