"""What the demo's users see: phones that register and talk, and the result at HQ.

Every check is where a user looks for it: the audio each phone heard, HQ's CDR API, the
two-channel WAV HQ serves, HQ's SIM fleet. One demo serves the whole module.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.demo import Demo, eventually, hang_up, registered, wav_channels
from tests.integration.pbx.audio import dominant, loudness, power, read_channels
from tests.integration.pbx.harness import Phone

TONES = [300.0, 450.0, 600.0, 700.0, 1000.0, 1500.0]
FAR_END_TONE = 1500.0


def heard(phone: Phone) -> float:
    """The tone that dominates what ``phone`` heard (asserting it heard something)."""
    rate, (samples,) = read_channels(phone.record)
    assert loudness(samples) > 100, f"{phone.number} heard silence"
    return dominant(samples, rate, TONES)


def talk(*phones: Phone, seconds: float = 2.5) -> None:
    """Let audio flow until every phone has recorded at least ``seconds`` of it."""
    size = int(44 + 16000 * seconds)
    eventually(
        lambda: all(p.record.exists() and p.record.stat().st_size > size for p in phones),
        seconds + 15,
        "every phone to record the call",
    )


def answered_at_hq(demo: Demo, site: str, caller: str, callee: str) -> dict[str, object]:
    """The answered CDR of ``caller`` to ``callee`` once HQ has it."""

    def find() -> dict[str, object] | None:
        for cdr in demo.hq_cdrs(site=site):
            if (cdr["caller_extension"], cdr["callee_number"], cdr["disposition"]) == (
                caller, callee, "answered"
            ):  # fmt: skip
                return cdr
        return None

    found: dict[str, object] = eventually(find, 30, f"HQ's CDR of {caller} -> {callee}")
    return found


def hq_wav_sides(demo: Demo, site: str, cdr: dict[str, object], root: Path) -> tuple[float, float]:
    """The tones on the caller's and the callee's channel of the WAV HQ serves for ``cdr``."""
    assert cdr["recording_id"], cdr
    wav = eventually(
        lambda: demo.hq_recording(site, str(cdr["recording_id"])), 60, f"{site}'s WAV at HQ"
    )
    channels, frames = wav_channels(wav)
    assert channels == 2
    assert frames >= 8000 * 2
    saved = root / f"{site}-from-hq.wav"
    saved.write_bytes(wav)
    rate, (caller_side, callee_side) = read_channels(saved)
    return dominant(caller_side, rate, TONES), dominant(callee_side, rate, TONES)


def test_phones_register_at_both_branches_and_the_gateway(demo: Demo, tmp_path: Path) -> None:
    specs = (("branch", "1001", 1000), ("branch-b", "3002", 600), ("gateway", "2001", 300))
    with registered(demo, tmp_path, *specs) as phones:
        assert len(phones) == 3


def test_a_recorded_call_has_audio_and_dtmf_both_ways_and_its_wav_is_at_hq(
    demo: Demo, tmp_path: Path
) -> None:
    specs = (("branch", "1003", 1000), ("branch", "1001", 600))
    with registered(demo, tmp_path, *specs) as (support, reception):
        support.send("call", to="1001")
        reception.answer(timeout=15)
        support.state("CONFIRMED")
        support.send("dtmf", digits="4")
        assert reception.wait(lambda e: e["ev"] == "dtmf")["digit"] == "4"
        reception.send("dtmf", digits="7")
        assert support.wait(lambda e: e["ev"] == "dtmf")["digit"] == "7"
        talk(support, reception)
        hang_up(support, reception)
    assert heard(support) == 600.0
    assert heard(reception) == 1000.0
    cdr = answered_at_hq(demo, "demo-branch", "1003", "1001")
    assert hq_wav_sides(demo, "demo-branch", cdr, tmp_path) == (1000.0, 600.0)


def test_a_cross_site_call_has_audio_both_ways_and_one_conversation_at_hq(
    demo: Demo, tmp_path: Path
) -> None:
    specs = (("branch", "1001", 1000), ("branch-b", "3001", 600))
    with registered(demo, tmp_path, *specs) as (reception, desk):
        reception.send("call", to="3001")
        incoming = desk.answer(timeout=15)
        assert incoming["remote"].startswith('"Reception (Branch A)"')
        reception.state("CONFIRMED")
        talk(reception, desk)
        hang_up(reception, desk)
    assert heard(reception) == 600.0
    assert heard(desk) == 1000.0
    here = answered_at_hq(demo, "demo-branch", "1001", "3001")
    there = answered_at_hq(demo, "demo-branch-b", "1001", "3001")
    assert here["conversation_id"] == there["conversation_id"]


def test_a_gsm_breakout_has_audio_both_ways_and_both_sites_cdrs(demo: Demo, tmp_path: Path) -> None:
    for index in range(len(demo.services["modems"]["modems"])):
        demo.modems("far-end", index, {"outcome": "answer", "answer_after": 0.3})
        demo.modems("tone", index, {"hz": FAR_END_TONE})
    with demo.api("gateway") as gateway:
        eventually(
            lambda: any(
                c["registered"] and c["worker_alive"]
                for c in gateway.get("/api/v1/gsm/channels").json().get("channels", [])
            ),
            30,
            "a GSM channel at the gateway",
        )
    with registered(demo, tmp_path, ("branch", "1002", 450)) as (sales,):
        sales.send("call", to="0301234567")
        sales.state("CONFIRMED", timeout=20)
        talk(sales)
        hang_up(sales)
    assert heard(sales) == FAR_END_TONE

    def both_legs() -> dict[str, dict[str, object]] | None:
        legs = {
            c["site_id"]: c
            for c in demo.hq_cdrs(number="0301234567")
            if c["disposition"] == "answered" and c["caller_extension"] == "1002"
        }
        return legs if len(legs) == 2 else None

    legs = eventually(both_legs, 30, "both sites' CDRs of the break-out at HQ")
    assert legs["demo-branch"]["conversation_id"] == legs["demo-gateway"]["conversation_id"]
    gsm_leg = legs["demo-gateway"]
    assert str(gsm_leg["trunk"]).startswith("gsm-")
    caller_side, far_side = hq_wav_sides(demo, "demo-gateway", gsm_leg, tmp_path)
    assert caller_side == 450.0, "the modem's far end did not get the phone's audio"
    assert far_side == FAR_END_TONE


def test_a_room_of_three_where_everyone_hears_everyone(demo: Demo, tmp_path: Path) -> None:
    tones = {"1001": 1000.0, "1002": 600.0, "1003": 300.0}
    specs = tuple(("branch", number, int(hz)) for number, hz in tones.items())
    with registered(demo, tmp_path, *specs) as phones:
        for phone in phones:
            phone.send("call", to="*31")
            phone.state("CONFIRMED", timeout=15)
        time.sleep(4)
        for phone in phones:
            phone.send("hangup")
            phone.state("DISCONNECTED")
    for phone in phones:
        rate, (samples, *_) = read_channels(phone.record)
        tail = samples[-4 * rate : -rate]
        others = [hz for number, hz in tones.items() if number != phone.number]
        absent = power(tail, rate, FAR_END_TONE)
        for hz in others:
            assert power(tail, rate, hz) > 20 * absent, f"{phone.number} did not hear {hz} Hz"


def test_click_to_dial_rings_the_extension_then_connects_the_number(
    demo: Demo, tmp_path: Path
) -> None:
    specs = (("branch", "1001", 1000), ("branch", "1003", 300))
    with registered(demo, tmp_path, *specs) as (reception, support):
        with demo.api("branch") as branch:
            answer = branch.post("/api/v1/calls", json={"extension": "1001", "number": "1003"})
        assert answer.status_code == 202, answer.text
        reception.wait(lambda e: e["ev"] == "incoming", timeout=15)
        reception.send("answer")
        support.answer(timeout=15)
        talk(support)
        support.send("hangup")
        support.state("DISCONNECTED")
    assert heard(support) == 1000.0
    cdr = answered_at_hq(demo, "demo-branch", "1001", "1003")
    assert cdr["conversation_id"] == answer.json()["conversation_id"]


def test_hq_lists_every_sim_of_the_gateway_modems(demo: Demo) -> None:
    modems = demo.services["modems"]["modems"]
    expected = {str(sim["iccid"]).rstrip("F") for modem in modems for sim in modem["sims"]}
    assert len(expected) == 2 * len(modems)

    def listed() -> set[str] | None:
        with demo.api("aggregator") as hq:
            sims = hq.get("/api/v1/fleet/sims", params={"site": "demo-gateway"}).json()["sims"]
        found = {str(s["iccid"]).rstrip("F") for s in sims}
        return found if found >= expected else None

    eventually(listed, 60, f"all {len(expected)} SIMs in HQ's fleet")
