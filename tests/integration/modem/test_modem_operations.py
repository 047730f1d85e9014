"""Every driver operation against the simulator on ptys, for every modem profile."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from drivers.modem.calls import CallEvent
from drivers.modem.errors import CmsError, FeatureNotAvailable
from drivers.modem.messaging import SmsReceived
from drivers.modem.urcs import CallState, DtmfReceived
from tests.integration.modem.conftest import next_of

pytestmark = pytest.mark.timeout(60)
PROFILES = ["huawei-e1550", "quectel-ec25", "simcom-sim7600", "generic"]


@pytest.fixture(params=PROFILES)
async def rig(request: pytest.FixtureRequest, make_sim: Any, make_driver: Any) -> Any:
    sim = make_sim(profile=request.param)
    info = sim.info()[0]
    driver = await make_driver(info["at_by_id"])
    await driver.wait_registered(5.0)
    return sim, info, driver


async def test_identity_sim_and_network(rig: Any) -> None:
    _sim, info, driver = rig
    identity = await driver.identify()
    assert identity.imei == info["imei"]
    assert driver.profile_name == info["profile"]
    card = await driver.sim_info()
    assert (card.imsi, card.number) == (info["sims"][0]["imsi"], info["sims"][0]["number"])
    assert card.iccid == info["sims"][0]["iccid"].rstrip("F")
    network = await driver.network_info()
    assert network.registered
    assert network.operator == "callmesh-net"
    assert network.signal_dbm is not None
    assert -113 <= network.signal_dbm <= -51
    assert network.technology == (
        "LTE" if info["profile"] in ("quectel-ec25", "simcom-sim7600") else "UMTS"
    )


async def test_outgoing_call_answered_then_far_end_hangs_up(rig: Any) -> None:
    sim, _info, driver = rig
    sim.set_far_end(0, answer_after=0.2, hangup_after=1.3)
    events = driver.subscribe()
    await driver.dial("+15551230000")
    await next_of(events, CallEvent, state=CallState.ACTIVE)
    released = await next_of(events, CallEvent, state=CallState.RELEASED)
    assert released.number == "+15551230000"
    assert released.duration is not None
    assert 0.9 < released.duration < 3.0


@pytest.mark.parametrize(
    ("outcome", "cause"), [("busy", {"busy", "17", None}), ("no-answer", {"no answer", "19", None})]
)
async def test_outgoing_call_busy_or_unanswered(rig: Any, outcome: str, cause: set[Any]) -> None:
    sim, _info, driver = rig
    sim.set_far_end(0, outcome=outcome, answer_after=0.2)
    events = driver.subscribe()
    await driver.dial("5550001")
    released = await next_of(events, CallEvent, state=CallState.RELEASED)
    assert released.cause in cause
    assert released.duration == 0.0


async def test_incoming_call_with_caller_id_answered_and_hung_up_locally(rig: Any) -> None:
    sim, _info, driver = rig
    events = driver.subscribe()
    sim.incoming_call(0, "+4930123456")
    ringing = await next_of(events, CallEvent, state=CallState.INCOMING)
    assert ringing.number == "+4930123456"
    await driver.answer()
    await next_of(events, CallEvent, state=CallState.ACTIVE)
    assert sim.calls(0)[0]["state"] == "active"
    await driver.hangup()
    await next_of(events, CallEvent, state=CallState.RELEASED)
    assert sim.calls(0) == []


async def test_incoming_call_rejected_with_cause(rig: Any) -> None:
    sim, _info, driver = rig
    events = driver.subscribe()
    sim.incoming_call(0, "+4930999")
    await next_of(events, CallEvent, state=CallState.INCOMING)
    await driver.reject(cause=17)
    released = await next_of(events, CallEvent, state=CallState.RELEASED)
    assert released.cause in ("rejected 17", "local hangup", "16")  # Huawei: ^CEND cause
    assert sim.calls(0) == []


async def test_dtmf_sent_and_detected(rig: Any) -> None:
    sim, info, driver = rig
    sim.set_far_end(0, answer_after=0.1)
    events = driver.subscribe()
    await driver.dial("+15551230001")
    await next_of(events, CallEvent, state=CallState.ACTIVE)
    await driver.send_dtmf("12#")
    assert sim.record(0).dtmf_sent == ["1", "2", "#"]
    sim.send_dtmf(0, "7")
    if info["profile"] in ("quectel-ec25", "simcom-sim7600"):
        detected = await next_of(events, DtmfReceived)
        assert detected.digit == "7"
    await driver.hangup()


async def test_sms_send_gsm7_ucs2_and_multipart(rig: Any) -> None:
    sim, _info, driver = rig
    long_text = "multipart " * 40
    await driver.send_sms("+15551234567", "hello {€}")
    await driver.send_sms("+15551234567", "Grüße 😀")
    refs = await driver.send_sms("+15551234567", long_text)
    assert len(refs) == 3
    sent = sim.record(0).sent_sms
    assert sent[0] == ("+15551234567", "hello {€}")
    assert sent[1][1] == "Grüße 😀"
    assert "".join(text for _n, text in sent[2:]) == long_text


async def test_sms_receive_multipart_is_reassembled_and_deleted(rig: Any) -> None:
    sim, _info, driver = rig
    events = driver.subscribe()
    text = "Привет! " * 30
    indexes = sim.deliver_sms(0, "+4917012345", text)
    assert len(indexes) > 1
    message = await next_of(events, SmsReceived)
    assert (message.number, message.text, message.parts) == ("+4917012345", text, len(indexes))
    await asyncio.sleep(0.2)
    for index in indexes:
        with pytest.raises(CmsError, match="321"):
            await driver.command(f"AT+CMGR={index}")


async def test_ussd_round_trip(rig: Any) -> None:
    sim, _info, driver = rig
    sim.set_ussd_reply(0, "*100#", "Your balance is 5.00")
    assert await driver.ussd("*100#", within=5.0) == "Your balance is 5.00"


async def test_voice_pcm_flows_only_while_a_call_is_up(rig: Any) -> None:
    sim, info, driver = rig
    if info["voice"] is None:
        assert driver.voice is None
        return
    voice = driver.voice
    assert voice is not None
    assert voice.frame_bytes == 320
    await asyncio.sleep(0.2)
    assert voice.buffered() == 0, "an idle modem sends no PCM"
    sim.set_far_end(0, answer_after=0.1)
    sim.play_tone(0, 440.0)
    events = driver.subscribe()
    await driver.dial("+15551230002")
    await next_of(events, CallEvent, state=CallState.ACTIVE)
    await asyncio.sleep(0.5)
    frames = [voice.pop_frame() for _ in range(5)]
    assert all(len(f) == 320 for f in frames)
    assert any(any(f) for f in frames), "the far end's tone arrives"
    for _ in range(10):
        voice.push_frame(b"\x10\x00" * 160)
    await asyncio.sleep(0.3)
    assert sim.record(0).uplink_bytes >= 320 * 5
    await driver.hangup()
    await asyncio.sleep(0.2)
    assert not sim.voice_routed(0)
    assert not voice.streaming


async def test_dual_sim_switch_changes_identity_and_reregisters(
    make_sim: Any, make_driver: Any
) -> None:
    sim = make_sim(profile="quectel-ec25", sims=2)
    info = sim.info()[0]
    driver = await make_driver(info["at_by_id"])
    first = await driver.sim_info()
    assert first.imsi == info["sims"][0]["imsi"]
    second = await driver.select_sim(1, within=10.0)
    assert (second.imsi, second.number) == (info["sims"][1]["imsi"], info["sims"][1]["number"])
    assert (await driver.network_info()).registered
    assert sim.info()[0]["slot"] == 1
    with pytest.raises(FeatureNotAvailable):
        await driver.select_sim(2)


async def test_single_sim_profile_refuses_slot_selection(rig: Any) -> None:
    _sim, info, driver = rig
    if info["profile"] == "quectel-ec25":
        return
    with pytest.raises(FeatureNotAvailable):
        await driver.select_sim(1)


async def test_sixteen_khz_profile_streams_640_byte_frames(make_sim: Any, make_driver: Any) -> None:
    sim = make_sim(profile="simcom-sim7600-16k")
    # Wideband is a configuration choice, not a model: the profile is named, not detected.
    driver = await make_driver(sim.info()[0]["at_by_id"], profile="simcom-sim7600-16k")
    await driver.wait_registered(5.0)
    voice = driver.voice
    assert voice is not None
    assert voice.frame_bytes == 640
    sim.set_far_end(0, answer_after=0.1)
    sim.play_tone(0, 1000.0)
    events = driver.subscribe()
    await driver.dial("+15551230003")
    await next_of(events, CallEvent, state=CallState.ACTIVE)
    await asyncio.sleep(0.4)
    assert voice.counters.frames_in >= 5
    assert len(voice.pop_frame()) == 640
    await driver.hangup()


async def test_commands_are_paced_20_ms_after_each_final_result(
    make_sim: Any, make_driver: Any
) -> None:
    sim = make_sim()
    driver = await make_driver(sim.info()[0]["at_by_id"], pacing=0.02)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(10):
        await driver.command("AT")
    assert loop.time() - start >= 0.18


async def test_idle_modem_gets_keepalives(make_sim: Any, make_driver: Any) -> None:
    sim = make_sim()
    driver = await make_driver(sim.info()[0]["at_by_id"], keepalive=0.3)
    await asyncio.sleep(1.2)
    assert driver.counters.keepalives >= 1
    assert driver.state == "ready"
