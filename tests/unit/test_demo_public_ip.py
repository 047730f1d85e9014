"""The demo's --public-ip: every PBX's SIP and RTP move there, the APIs stay on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.demo.deployment import DemoError, check_public_ip
from appliance.demo.plan import plan_services


def test_a_public_ip_moves_every_pbx_sip_and_rtp_but_not_the_apis(tmp_path: Path) -> None:
    plans = {plan.name: plan for plan in plan_services(tmp_path, "192.0.2.10")}
    for name in ("branch", "branch-b", "gateway", "hotel"):
        pbx = plans[name].config["pbx"]
        assert pbx["sip_host"] == "192.0.2.10"
        assert plans[name].extras["sip"]["address"] == f"192.0.2.10:{pbx['sip_port']}"
        assert plans[name].config["http"]["host"] == "127.0.0.1"
    assert plans["aggregator"].config["http"]["host"] == "127.0.0.1"


@pytest.mark.parametrize(("address", "why"), [
    ("not-an-ip", "is not an IPv4 address"),
    ("::1", "SIP and RTP need an IPv4 address"),
    ("192.0.2.99", "is not an address of this machine"),
])  # fmt: skip
def test_a_public_ip_the_demo_cannot_use_is_refused(address: str, why: str) -> None:
    with pytest.raises(DemoError, match=why):
        check_public_ip(address)
