"""Compliance in the call path, end to end: the whole SIM-gateway appliance (Kamailio,
rtpengine, media and GSM workers, modem drivers on simulated EC25 modems) with pjsua2
phones, syncing to a real aggregator (HQ). Extension 1002 is bound to campaign ``day``
(calling now allowed), 1003 to campaign ``night`` (not now); the site's own hours
exclude now, so SMS are refused; the ``DNC`` numbers are on the site's do-not-call
list, one per test, so each test finds its own refusal at HQ."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.store import Outbox
from drivers.modem.simulator import ModemSimulator, SimulatorConfig
from tests.integration.pbx.harness import (
    Pbx,
    Phone,
    connect_call,
    media,
    no_daemons_left,
    phones,
    require_debs,
    wait_for,
)
from tests.integration.pbx.test_gsm import GatewayPbx
from tests.integration.test_sync import start_aggregator
from tests.sync_env import SyncEnv, make_env
from tests.sync_env import wait_for as wait_until

DNC = {path: f"03099911{n}" for n, path in enumerate(
    ("break-out", "click-to-dial", "conference", "three-way"))}  # fmt: skip
TONE = 450


def e164(national: str) -> str:
    """The number as the mobile route dials it."""
    return "+49" + national[1:]


def window(start_h: float, end_h: float) -> dict[str, str]:
    """Hours from ``start_h`` to ``end_h`` hours from now (UTC), any day."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = (now + datetime.timedelta(hours=h) for h in (start_h, end_h))
    return {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}


class CompliantGateway(GatewayPbx):
    """The gateway appliance with a media worker and the compliance rules above."""

    def __init__(self, root: Path, simulator: ModemSimulator, hq: SyncEnv) -> None:
        super().__init__(root, simulator)
        config = yaml.safe_load(self.config.read_text())
        config["site_id"] = hq.site_id
        config["sync"] = yaml.safe_load(hq.app_config.read_text())["sync"]
        config["sync"]["key_file"] = str(hq.root / "app" / "keys" / f"{hq.site_id}.key_secret")
        config["pbx"]["media"] = media(1)
        config["api"]["tokens"][0]["role"] = "admin"
        config["site"] = {"timezone": "UTC"}
        closed, opened = window(2, 3), window(-1, 1)
        config["compliance"] = {
            "dnc": [e164(n) for n in DNC.values()],
            "max_attempts_per_day": 2,
            "windows": [closed],
            "campaigns": [{"id": "day", "windows": [opened]},
                          {"id": "night", "windows": [closed]}],
            "extensions": {"1002": {"campaign": "day"}, "1003": {"campaign": "night"}},
        }  # fmt: skip
        self.config.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModemSimulator]:
    directory = tmp_path_factory.mktemp("modems")
    config = SimulatorConfig(profile="quectel-ec25", count=2, directory=str(directory))
    with ModemSimulator(config) as sim:
        sim.wait_booted(30)
        yield sim


@pytest.fixture(scope="module")
def hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncEnv]:
    env = make_env(tmp_path_factory.mktemp("hq"))
    aggregator = start_aggregator(env)
    try:
        yield env
    finally:
        aggregator.close()


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, simulator: ModemSimulator, hq: SyncEnv
) -> Iterator[Pbx]:
    require_debs()
    root = tmp_path_factory.mktemp("compliance-pbx")
    instance = CompliantGateway(root, simulator, hq)
    try:
        instance.start(timeout=60)
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


@pytest.fixture(autouse=True)
def far_ends(simulator: ModemSimulator) -> None:
    for index in range(2):
        simulator.set_far_end(index, "answer", answer_after=0.3)


def modem_calls(simulator: ModemSimulator) -> list[Any]:
    return [call for index in range(2) for call in simulator.calls(index)]


def dialled(simulator: ModemSimulator) -> list[str]:
    """Every number the modems were told to dial (ATD), so far."""
    return [number for index in range(2) for number in simulator.record(index).dialled]


def never_rings(phone: Phone, seconds: float = 3.0) -> None:
    with pytest.raises(AssertionError, match="no matching event"):
        phone.wait(lambda e: e["ev"] == "incoming", timeout=seconds)


def cdr_for(gw: Pbx, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """A CDR from the appliance's own index (the outbox empties as HQ acknowledges)."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [c for c in gw.api("GET", "/cdrs?limit=500")[1]["cdrs"] if match(c)]
        return bool(found)

    wait_for(written, 10, lambda: str(gw.api("GET", "/cdrs?limit=500")))
    return found[-1]


def at_hq(hq: SyncEnv, destination: str, error_id: str, count: int = 1) -> dict[str, Any]:
    """The refusal HQ lists for ``destination``, once it arrived ``count`` times (no more)."""
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        rows = hq.api("/api/v1/fleet/refusals", site=hq.site_id, limit=1000)["refusals"]
        found[:] = [r for r in rows
                    if (r["destination"], r["error_id"]) == (destination, error_id)]  # fmt: skip
        return len(found) >= count

    wait_until(arrived, 20, f"{error_id} refusal of {destination} at HQ")
    assert len(found) == count, found
    return found[0]


def refused_call(phone: Phone, number: str) -> dict[str, Any]:
    phone.send("call", to=number)
    return phone.state("DISCONNECTED", timeout=15)


def test_a_bound_extension_breaking_out_to_a_dnc_number_gets_403_and_no_modem_dials(
    gw: Pbx, simulator: ModemSimulator, hq: SyncEnv, tmp_path: Path
) -> None:
    before = dialled(simulator)
    with phones(gw, tmp_path, ("1002", TONE)) as (bob,):
        ended = refused_call(bob, DNC["break-out"])
    assert (ended["code"], ended["reason"]) == (403, "dnc-site")
    assert "do-not-call" in ended["reason_header"]
    assert ended["reason_header"].startswith("SIP;cause=403")
    assert dialled(simulator) == before
    cdr = cdr_for(gw, lambda c: c["callee"]["number"] == DNC["break-out"])
    assert cdr["disposition"] == "refused"
    assert cdr["hangup_cause"] == {"sip_code": 403, "reason": "dnc-site"}
    assert cdr["trunk"] is None
    assert (
        at_hq(hq, e164(DNC["break-out"]), "dnc-site")["message"]
        == ended["reason_header"].split('"')[1]
    )
    assert all(c["call"] is None for c in gw.channels())  # type: ignore[attr-defined]


def test_a_break_out_outside_the_campaigns_calling_hours_is_refused(
    gw: Pbx, simulator: ModemSimulator, hq: SyncEnv, tmp_path: Path
) -> None:
    before = dialled(simulator)
    with phones(gw, tmp_path, ("1003", TONE)) as (carol,):
        ended = refused_call(carol, "030123123")
    assert (ended["code"], ended["reason"]) == (403, "outside-calling-hours")
    assert "calls are allowed" in ended["reason_header"]
    assert dialled(simulator) == before
    assert at_hq(hq, "+4930123123", "outside-calling-hours")["campaign"] == "night"


def test_break_outs_past_the_attempt_cap_are_refused_and_allowed_ones_still_dial(
    gw: Pbx, simulator: ModemSimulator, hq: SyncEnv, tmp_path: Path
) -> None:
    status, checked = gw.api("POST", "/compliance/check",
                             {"destination": "+4930444555", "campaign": "day"})  # fmt: skip
    assert (status, checked["allowed"]) == (200, True)
    before = dialled(simulator)
    with phones(gw, tmp_path, ("1002", TONE)) as (bob,):
        bob.send("call", to="030444555")
        bob.state("CONFIRMED", timeout=15)
        assert dialled(simulator) == [*before, "+4930444555"]
        bob.send("hangup")
        bob.state("DISCONNECTED")
        wait_for(lambda: not modem_calls(simulator), 10, lambda: str(modem_calls(simulator)))
        ended = refused_call(bob, "030444555")
    assert (ended["code"], ended["reason"]) == (403, "attempt-limit")
    assert dialled(simulator) == [*before, "+4930444555"]
    at_hq(hq, "+4930444555", "attempt-limit")


def test_click_to_dial_to_a_dnc_number_is_refused_before_any_leg_rings(
    gw: Pbx, hq: SyncEnv, tmp_path: Path
) -> None:
    with phones(gw, tmp_path, ("1001", TONE)) as (alice,):
        status, body = gw.api(
            "POST", "/calls", {"extension": "1001", "number": DNC["click-to-dial"]}
        )
        assert status == 403
        detail = body["detail"]
        assert (detail["error_id"], detail["details"]["rule"]) == ("compliance-refused", "dnc-site")
        never_rings(alice)
    cdr = cdr_for(gw, lambda c: c["route"] == "click-to-dial")
    assert (cdr["disposition"], cdr["callee"]["number"]) == ("refused", DNC["click-to-dial"])
    assert cdr["caller"]["extension"] == "1001"
    at_hq(hq, e164(DNC["click-to-dial"]), "dnc-site")


def test_a_conference_with_a_dnc_participant_is_refused_before_anyone_rings(
    gw: Pbx, hq: SyncEnv, tmp_path: Path
) -> None:
    with phones(gw, tmp_path, ("1001", TONE)) as (alice,):
        request = {"participants": ["1001", DNC["conference"]], "on_behalf_of": "1001"}
        status, body = gw.api("POST", "/conferences", request)
        assert (status, body["detail"]["details"]["rule"]) == (403, "dnc-site")
        never_rings(alice)
    at_hq(hq, e164(DNC["conference"]), "dnc-site")


def test_adding_a_dnc_party_to_a_call_is_refused_and_the_call_goes_on(
    gw: Pbx, hq: SyncEnv, tmp_path: Path
) -> None:
    with phones(gw, tmp_path, ("1001", TONE), ("1003", TONE)) as (alice, carol):
        connect_call(alice, carol)
        # The phones see the call up before the appliance has handled Kamailio's answer event.
        wait_for(lambda: len(gw.api("GET", "/calls")[1]["calls"]) == 1, 10,
                 lambda: str(gw.api("GET", "/calls")))  # fmt: skip
        _, live = gw.api("GET", "/calls")
        [call] = live["calls"]
        status, body = gw.api(
            "POST", f"/calls/{call['call_id']}/parties", {"number": DNC["three-way"]}
        )
        assert (status, body["detail"]["error_id"]) == (403, "compliance-refused")
        with pytest.raises(AssertionError, match="no matching event"):
            alice.wait(lambda e: e["ev"] == "replaced" or e.get("state") == "DISCONNECTED", 3)
        alice.send("hangup")
        alice.state("DISCONNECTED")
        carol.state("DISCONNECTED")
    cdr = cdr_for(gw, lambda c: c["call_id"] == call["call_id"])
    assert cdr["disposition"] == "answered"
    at_hq(hq, e164(DNC["three-way"]), "dnc-site")


def test_an_sms_outside_the_sites_calling_hours_is_refused_and_listed_at_hq(
    gw: Pbx, simulator: ModemSimulator, hq: SyncEnv
) -> None:
    status, body = gw.api("POST", "/sms", {"to": "+4930123456", "text": "late offer"})
    assert (status, body["error_id"]) == (403, "outside-calling-hours")
    assert simulator.record(0).sent_sms == []
    assert at_hq(hq, "+4930123456", "outside-calling-hours")["campaign"] is None
    pending = gw.store_read(lambda store: Outbox(store, "compliance").pending())
    assert pending == 0
