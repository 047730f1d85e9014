"""GSM trunks without processes: release causes to SIP codes, GSM routes in the dial plan,
GSM worker assignment and their dispatcher set, the settings cross-check."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from appliance.pbx.dialplan import DialPlan, DialPlanError
from appliance.pbx.gsm_machine import sip_failure
from appliance.pbx.media import dispatcher_list, gsm_worker_configs, worker_configs
from appliance.pbx.settings import DialPlanSettings, GsmSettings, MediaSettings
from appliance.settings import ApplianceSettings
from drivers.media.protocol import WorkerConfig

GROUPS = {"groups": [{"name": "mobile", "channels": ["gsm-0", "gsm-1"]}]}


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        ("busy", (486, "busy", False)),
        ("17", (486, "busy", False)),
        ("no answer", (480, "no-answer", False)),
        ("19", (480, "no-answer", False)),
        ("21", (603, "rejected", False)),
        ("1", (404, "unallocated-number", False)),
        ("no carrier", (503, "gsm-no-carrier", True)),
        ("34", (503, "gsm-34", True)),
        ("no network", (503, "gsm-no-network", True)),
        (None, (503, "gsm-failure", True)),
    ],
)
def test_release_causes_map_to_sip_codes_and_only_channel_failures_retry(
    cause: str | None, expected: tuple[int, str, bool]
) -> None:
    assert sip_failure(cause) == expected


def plan(route: dict[str, Any], gsm: dict[str, Any] | None = None) -> DialPlan:
    settings = DialPlanSettings.model_validate({"outbound": [route]})
    return DialPlan(settings, ["1001"], gsm=GsmSettings.model_validate(gsm or GROUPS))


def test_a_route_to_a_gsm_group_asks_for_a_channel_with_the_number_to_dial() -> None:
    route = {"name": "mobile", "pattern": "0Z.", "trunk": "mobile", "strip": 1, "prepend": "+49"}
    decision = plan(route).decide("1001", "030123")
    assert (decision.action, decision.uri, decision.trunk) == ("gsm", "+4930123", "mobile")
    assert decision.caller_id == ""


def test_a_gsm_route_may_not_choose_a_caller_id() -> None:
    route = {"name": "mobile", "pattern": "0Z.", "trunk": "mobile", "caller_id": "+4930555"}
    with pytest.raises(DialPlanError, match="presents the SIM's own number"):
        plan(route)


def test_a_gsm_inbound_target_must_be_reachable() -> None:
    route = {"name": "mobile", "pattern": "0Z.", "trunk": "mobile"}
    gsm = {**GROUPS, "inbound": [{"iccid": "8901001000081477700", "target": "1999"}]}
    with pytest.raises(DialPlanError, match="gsm inbound 8901001000081477700: target 1999"):
        plan(route, gsm)


def test_gsm_workers_take_four_channels_each_in_their_own_dispatcher_set() -> None:
    channels = [f"gsm-{i}" for i in range(6)]
    configs = gsm_worker_configs(GsmSettings(port_base=6000), channels, "127.0.0.1", 5060, "d")
    assert [c.gsm_channels for c in configs] == [tuple(channels[:4]), tuple(channels[4:])]
    assert [c.max_calls for c in configs] == [4, 2]
    assert dispatcher_list(configs).splitlines()[0] == "2 sip:127.0.0.1:6000 0 0 duid=g0"
    assert WorkerConfig.from_json(configs[1].to_json()) == configs[1]


def test_gsm_groups_must_name_gateway_modems() -> None:
    with pytest.raises(ValidationError, match=r"channels gsm-9 are not in gateway\.modems"):
        ApplianceSettings.model_validate({
            "site_id": "gw", "profile": "sim-gateway", "data_dir": "/tmp/gw",
            "gateway": {"modems": [{"channel": "gsm-0", "port": "/dev/x"}]},
            "pbx": {"gsm": {"groups": [{"name": "m", "channels": ["gsm-0", "gsm-9"]}]}},
        })  # fmt: skip


def test_workers_listen_for_sip_on_loopback_and_trust_only_kamailios_loopback_socket() -> None:
    media = worker_configs(MediaSettings(workers=1, port_base=6100), "192.0.2.10", 5070, "d")
    gsm = gsm_worker_configs(GsmSettings(port_base=6000), ["gsm-0"], "192.0.2.10", 5070, "d")
    for config in (*media, *gsm):
        assert (config.host, config.media_host) == ("127.0.0.1", "192.0.2.10")
        assert config.proxy_address == "127.0.0.1:5070"
