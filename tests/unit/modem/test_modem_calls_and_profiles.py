"""Call tracker (zombie watchdog logic), profile selection, voice buffers, counters."""

from __future__ import annotations

import threading

import pytest

from drivers.modem.calls import CallTracker
from drivers.modem.counters import ModemCounters
from drivers.modem.errors import FeatureNotAvailable
from drivers.modem.grammar import Clcc, csq_to_dbm, parse_registration
from drivers.modem.profiles import get_profile, select_profile
from drivers.modem.recovery import sibling_port
from drivers.modem.transport import Timeouts
from drivers.modem.urcs import CallState, CallUpdate
from drivers.modem.voice import VoicePort


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_watchdog_releases_a_call_the_modem_no_longer_lists() -> None:
    clock = Clock()
    tracker = CallTracker(clock)
    tracker.dialed("+4930")
    tracker.apply(CallUpdate(2, CallState.ACTIVE, False, "+4930"))
    clock.now = 10.0
    events = tracker.reconcile([Clcc(1, False, 0, 1, "")], grace=3.0)
    assert [(e.state, e.cause, e.duration) for e in events] == [
        (CallState.RELEASED, "zombie", 10.0)
    ]
    assert tracker.active == []


def test_watchdog_spares_young_calls_and_adopts_listed_ones() -> None:
    clock = Clock()
    tracker = CallTracker(clock)
    tracker.dialed("123")
    assert tracker.reconcile([], grace=3.0) == []
    events = tracker.reconcile([Clcc(1, False, 3, 0, "123")], grace=3.0)
    assert [(e.idx, e.state) for e in events] == [(1, CallState.ALERTING)]


def test_bare_no_carrier_releases_every_call() -> None:
    tracker = CallTracker(Clock())
    tracker.caller_id("+1")
    events = tracker.apply(CallUpdate(None, CallState.RELEASED, cause="no carrier"))
    assert [(e.state, e.cause) for e in events] == [(CallState.RELEASED, "no carrier")]


@pytest.mark.parametrize(
    ("manufacturer", "model", "profile"),
    [
        ("huawei", "E1550", "huawei-e1550"),
        ("huawei", "E173", "huawei-e173"),
        ("Quectel", "EC25", "quectel-ec25"),
        ("Quectel", "EC20F", "quectel-ec20"),
        ("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "simcom-sim7600"),
        ("Telit", "LE910", "generic"),
    ],
)
def test_profile_is_chosen_from_cgmi_and_cgmm(manufacturer: str, model: str, profile: str) -> None:
    assert select_profile(manufacturer, model).name == profile


def test_unknown_profile_name_lists_the_known_ones() -> None:
    with pytest.raises(FeatureNotAvailable, match="known: generic"):
        get_profile("nokia-3310")


def test_sixteen_khz_profile_has_640_byte_frames() -> None:
    spec = get_profile("simcom-sim7600-16k").voice
    assert spec is not None
    assert spec.frame_bytes == 640


def test_grammar_helpers() -> None:
    assert csq_to_dbm(18) == -77
    assert csq_to_dbm(99) is None
    reg = parse_registration('+CEREG: 2,1,"1A2B","01A2B3C4",7')
    assert (reg.registered, reg.lac, reg.act) == (True, "1A2B", 7)
    urc = parse_registration('+CREG: 5,"D7D6","2EF1"')
    assert (urc.stat, urc.lac, urc.cell) == (5, "D7D6", "2EF1")
    assert parse_registration("+CREG: 0").stat == 0


def test_voice_port_is_found_beside_the_by_id_at_port() -> None:
    at = "/dev/serial/by-id/usb-Quectel_EC25_abc-if02-port0"
    assert sibling_port(at, "if01") == "/dev/serial/by-id/usb-Quectel_EC25_abc-if01-port0"
    assert sibling_port("/dev/ttyUSB2", "if01") is None


def test_timeouts_by_command_class() -> None:
    timeouts = Timeouts(short=1, medium=5, long=40)
    assert timeouts.for_command("AT+CSQ") == 1
    assert timeouts.for_command("ATD123;") == 5
    assert timeouts.for_command("AT+CMGS=19") == 40


def test_voice_buffers_give_silence_on_underrun_and_count_overruns() -> None:
    port = VoicePort("/nonexistent", buffer_frames=4)
    assert port.pop_frame() == bytes(320)
    for _ in range(6):
        port.push_frame(b"\x01" * 500)
    assert port.counters.underruns == 1
    assert port.counters.overruns_out == 2
    port._partial += b"\x02" * (320 * 6 + 10)
    port._cut_frames()
    assert port.buffered() == 4
    assert port.counters.overruns_in == 2
    assert port.pop_frame() == b"\x02" * 320


def test_voice_buffers_are_safe_from_foreign_threads() -> None:
    port = VoicePort("/nonexistent", buffer_frames=8)

    def hammer() -> None:
        for _ in range(2000):
            port.push_frame(bytes(320))
            port.pop_frame()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert port.counters.underruns == 8000


def test_counters_flatten_for_export_with_ladder_steps_kept_apart() -> None:
    counters = ModemCounters()
    counters.step("reopen")
    counters.timeouts += 2
    flat = counters.as_dict()
    assert flat["timeouts"] == 2
    assert not any(name.startswith("recovery_step") for name in flat)
    assert counters.recovery_steps == {"reopen": 1}
