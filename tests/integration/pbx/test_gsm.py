"""GSM channels as PBX trunks, end to end: the whole SIM-gateway appliance (Kamailio,
rtpengine, GSM media workers, modem drivers, SIM policy) with simulated EC25 modems on
ptys and pjsua2 phones. Every audio check is on real audio: the far end's tone in what
the phone heard and in the call recording, the phone's tone at the far end. SMS and USSD
go through the same appliance's local API."""

from __future__ import annotations

import array
import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.modem.simulator import ModemSimulator, SimulatorConfig
from tests.integration.pbx.audio import dominant, loudness, read_channels
from tests.integration.pbx.harness import (
    Pbx,
    Phone,
    no_daemons_left,
    phones,
    require_debs,
    wait_for,
)
from tests.procs import ROOT, free_port

FAR_TONES = {0: 1000.0, 1: 700.0, 2: 600.0, 3: 300.0}
PHONE_TONE = 450
CANDIDATES = [300.0, 450.0, 600.0, 700.0, 1000.0]
CALLER = "+4930111222"


class GatewayPbx(Pbx):
    """The whole appliance (profile sim-gateway, PBX on) as a process over simulated modems."""

    def __init__(self, root: Path, simulator: ModemSimulator, profile: str | None = None) -> None:
        modems = simulator.info()
        self.count = len(modems)
        inbound_iccid = str(modems[-1]["sims"][0]["iccid"])  # type: ignore[index]
        gsm = {
            "port_base": free_port(),
            "channels_per_worker": 2,
            "groups": [{"name": "mobile", "channels": [f"gsm-{m['index']}" for m in modems],
                        "strategy": "fixed-order"}],
            "inbound": [{"iccid": inbound_iccid, "target": "1001"}],
        }  # fmt: skip
        route = {"name": "mobile", "pattern": "0Z.", "trunk": "mobile", "strip": 1,
                 "prepend": "+49"}  # fmt: skip
        super().__init__(root, enabled=True, gsm=gsm, dialplan={"outbound": [route]})
        config = yaml.safe_load(self.config.read_text())
        del config["test_api_port"]
        config["profile"] = "sim-gateway"
        config["http"] = {"host": "127.0.0.1", "port": self.api_port}
        config["gateway"] = {"ready_timeout_s": 20, "modems": [
            {"channel": f"gsm-{m['index']}", "port": m["at_by_id"], "imei": m["imei"],
             "profile": profile}
            for m in modems
        ]}  # fmt: skip
        config["sim"] = {"unregistered_grace_s": 600}
        self.config.write_text(yaml.safe_dump(config))

    def start(self, timeout: float = 40) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "appliance.cli.main", "appliance", "run",
                 "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        wait_for(lambda: self.ready(self.count), timeout, self.output)

    def channels(self) -> list[dict[str, Any]]:
        status, body = self.api("GET", "/gsm/channels")
        return list(body["channels"]) if status == 200 else []

    def ready(self, count: int) -> bool:
        """``count`` channels registered with a live worker (the SIM policy sees them)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"appliance exited:\n{self.output()}")
        with contextlib.suppress(OSError):
            live = [c for c in self.channels() if c["worker_alive"] and c["registered"]]
            return len(live) >= count
        return False


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModemSimulator]:
    directory = tmp_path_factory.mktemp("modems")
    config = SimulatorConfig(profile="quectel-ec25", count=4, directory=str(directory),
                             reset_seconds=1.0)  # fmt: skip
    with ModemSimulator(config) as sim:
        sim.wait_booted(30)
        yield sim


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, simulator: ModemSimulator) -> Iterator[Pbx]:
    require_debs()
    root = tmp_path_factory.mktemp("gsm-pbx")
    instance = GatewayPbx(root, simulator)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


@pytest.fixture(autouse=True)
def far_ends(simulator: ModemSimulator) -> None:
    for index, hz in FAR_TONES.items():
        simulator.set_far_end(index, "answer", answer_after=0.3)
        simulator.play_tone(index, hz)


def idle(gw: Pbx) -> bool:
    return all(c["call"] is None for c in gw.channels())  # type: ignore[attr-defined]


def heard(path: Path) -> float:
    rate, channels = read_channels(path)
    assert loudness(channels[0]) > 100, f"{path} is silent"
    return dominant(channels[0], rate, CANDIDATES)


def uplink_tone(simulator: ModemSimulator, index: int) -> float:
    samples = array.array("h", simulator.record(index).uplink_tail)
    assert loudness(samples) > 100, "the far end heard silence"
    return dominant(samples, 8000, CANDIDATES)


def recorded_long_enough(phone: Phone) -> Callable[[], bool]:
    return lambda: phone.record.exists() and phone.record.stat().st_size > 40000


def call_out(gw: Pbx, phone: Phone, number: str = "030123456") -> None:
    phone.send("call", to=number)
    phone.state("CONFIRMED", timeout=15)


def test_outbound_call_bridges_audio_and_dtmf_both_ways(
    gw: Pbx, simulator: ModemSimulator, tmp_path: Path
) -> None:
    with phones(gw, tmp_path, ("1002", PHONE_TONE)) as (bob,):
        call_out(gw, bob)
        assert simulator.calls(0)[0]["number"] == "+4930123456"
        simulator.send_dtmf(0, "5")
        assert bob.wait(lambda e: e["ev"] == "dtmf")["digit"] == "5"
        bob.send("dtmf", digits="7")
        wait_for(lambda: "7" in simulator.record(0).dtmf_sent, 10, lambda: "no DTMF at far end")
        wait_for(recorded_long_enough(bob), 10, lambda: "bob recorded nothing")
        assert uplink_tone(simulator, 0) == PHONE_TONE
        bob.send("hangup")
        bob.state("DISCONNECTED")
    assert heard(bob.record) == FAR_TONES[0]
    cdr = gw.cdr_for(lambda c: c["caller"]["number"] == "1002" and c["trunk"] == "gsm-0")
    assert cdr["direction"] == "outbound"
    assert cdr["disposition"] == "answered"
    assert cdr["gsm"]["iccid"] == simulator.info()[0]["sims"][0]["iccid"].rstrip("F")  # type: ignore[index]
    entry = gw.recording(cdr["recording_id"], timeout=15)
    rate, (caller, callee) = read_channels(Path(entry["path"]))
    assert dominant(caller, rate, CANDIDATES) == PHONE_TONE
    assert dominant(callee, rate, CANDIDATES) == FAR_TONES[0]
    wait_for(lambda: idle(gw) and not simulator.calls(0), 10, lambda: str(simulator.calls(0)))


def test_inbound_gsm_call_rings_the_extension_with_caller_id(
    gw: Pbx, simulator: ModemSimulator, tmp_path: Path
) -> None:
    with phones(gw, tmp_path, ("1001", PHONE_TONE)) as (alice,):
        simulator.incoming_call(3, CALLER, ring_seconds=20)
        ring = alice.wait(lambda e: e["ev"] == "incoming", timeout=15)
        assert CALLER in ring["remote"]
        alice.send("answer")
        alice.state("CONFIRMED")
        wait_for(lambda: [c["state"] for c in simulator.calls(3)][:1] == ["active"], 10,
                 lambda: str(simulator.calls(3)))  # fmt: skip
        wait_for(recorded_long_enough(alice), 10, lambda: "alice recorded nothing")
        assert uplink_tone(simulator, 3) == PHONE_TONE
        alice.send("hangup")
        alice.state("DISCONNECTED")
    assert heard(alice.record) == FAR_TONES[3]
    cdr = gw.cdr_for(lambda c: c["caller"]["number"] == CALLER)
    assert cdr["direction"] == "inbound"
    assert cdr["trunk"] == "gsm-3"
    assert cdr["callee"]["extension"] == "1001"
    assert cdr["disposition"] == "answered"
    wait_for(lambda: not simulator.calls(3) and idle(gw), 10, lambda: str(simulator.calls(3)))


def test_no_carrier_on_one_channel_moves_the_call_to_the_next(
    gw: Pbx, simulator: ModemSimulator, tmp_path: Path
) -> None:
    simulator.set_far_end(0, "no-carrier", answer_after=0.2)
    with phones(gw, tmp_path, ("1003", PHONE_TONE)) as (carol,):
        call_out(gw, carol, "030555666")
        assert simulator.calls(1)[0]["number"] == "+4930555666"
        wait_for(recorded_long_enough(carol), 10, lambda: "carol recorded nothing")
        carol.send("hangup")
        carol.state("DISCONNECTED")
    assert heard(carol.record) == FAR_TONES[1]
    cdr = gw.cdr_for(lambda c: c["callee"]["number"] == "030555666")
    assert cdr["trunk"] == "gsm-1"
    assert cdr["disposition"] == "answered"
    wait_for(lambda: idle(gw), 10, lambda: str(gw.channels()))  # type: ignore[attr-defined]


def test_when_a_workers_channels_all_fail_kamailio_moves_the_call_to_another_worker(
    gw: Pbx, simulator: ModemSimulator, tmp_path: Path
) -> None:
    simulator.set_far_end(0, "no-carrier", answer_after=0.2)
    simulator.set_far_end(1, "no-carrier", answer_after=0.2)
    with phones(gw, tmp_path, ("1003", PHONE_TONE)) as (carol,):
        call_out(gw, carol, "030555667")
        assert simulator.calls(2)[0]["number"] == "+4930555667"
        carol.send("hangup")
        carol.state("DISCONNECTED")
    cdr = gw.cdr_for(lambda c: c["callee"]["number"] == "030555667")
    assert (cdr["trunk"], cdr["disposition"]) == ("gsm-2", "answered")
    wait_for(lambda: idle(gw), 10, lambda: str(gw.channels()))  # type: ignore[attr-defined]


def test_busy_far_end_is_not_retried_on_another_channel(
    gw: Pbx, simulator: ModemSimulator, tmp_path: Path
) -> None:
    simulator.set_far_end(0, "busy", answer_after=0.2)
    with phones(gw, tmp_path, ("1003", PHONE_TONE)) as (carol,):
        carol.send("call", to="030777888")
        ended = carol.state("DISCONNECTED", timeout=15)
    assert ended["code"] == 486
    cdr = gw.cdr_for(lambda c: c["callee"]["number"] == "030777888")
    assert cdr["disposition"] == "busy"
    assert cdr["trunk"] == "gsm-0", "a busy callee was tried again (the others answer)"
    wait_for(lambda: idle(gw), 10, lambda: str(gw.channels()))  # type: ignore[attr-defined]


def test_unplugged_modem_ends_the_call_and_leaves_the_pool_until_it_is_back(
    gw: Pbx, simulator: ModemSimulator, tmp_path: Path
) -> None:
    with phones(gw, tmp_path, ("1002", PHONE_TONE)) as (bob,):
        call_out(gw, bob, "030999000")
        simulator.unplug(0, replug_after=3.0)
        bob.state("DISCONNECTED", timeout=15)
        cdr = gw.cdr_for(lambda c: c["callee"]["number"] == "030999000")
        assert cdr["disposition"] == "interrupted"
        assert cdr["hangup_cause"]["reason"] == "modem-lost"
        assert cdr["gsm"]["channel"] == "gsm-0"
        call_out(gw, bob, "030999001")
        assert simulator.calls(1), "the next call did not go to the next channel"
        bob.send("hangup")
        bob.state("DISCONNECTED")
        wait_for(lambda: gw.ready(4) and idle(gw), 30, gw.output)  # type: ignore[attr-defined]
        call_out(gw, bob, "030999002")
        assert simulator.calls(0), "the replugged modem did not rejoin the pool"
        bob.send("hangup")
        bob.state("DISCONNECTED")


def test_a_16_khz_modem_is_bridged_at_its_own_rate(tmp_path: Path) -> None:
    require_debs()
    config = SimulatorConfig(profile="simcom-sim7600", directory=str(tmp_path / "modem"))
    with ModemSimulator(config) as simulator:
        simulator.wait_booted(30)
        simulator.set_far_end(0, "answer", answer_after=0.3)
        simulator.play_tone(0, 1000.0)
        gw = GatewayPbx(tmp_path / "pbx", simulator, profile="simcom-sim7600-16k")
        try:
            gw.start()
            with phones(gw, tmp_path, ("1002", PHONE_TONE)) as (bob,):
                call_out(gw, bob)
                wait_for(recorded_long_enough(bob), 10, lambda: "bob recorded nothing")
                samples = array.array("h", simulator.record(0).uplink_tail)
                bob.send("hangup")
                bob.state("DISCONNECTED")
        finally:
            gw.stop()
        assert heard(bob.record) == 1000.0
        assert loudness(samples) > 100
        assert dominant(samples, 16000, CANDIDATES) == PHONE_TONE
    assert no_daemons_left(tmp_path / "pbx")
