"""Network planning is pure: desired + current state -> actions, additive only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from appliance.settings import NetworkSettings
from drivers.net.plan import Current, Desired, Link, LinkState, Route, WireGuardPeer, plan

KEY = "k" * 43 + "="


def current(**links: LinkState) -> Current:
    routes = frozenset({("10.0.0.0/8", "192.0.2.1", "lan0")})
    return Current(links, routes, {"wg-hq": frozenset({KEY})})


def lan(up: bool = True, *addresses: str) -> LinkState:
    return LinkState("veth", up, 1500, frozenset(addresses))


def always(_: str) -> bool:
    return True


def never(_: str) -> bool:
    return False


def test_a_network_that_matches_needs_nothing() -> None:
    desired = Desired(
        links=(Link("lan0", addresses=("192.0.2.10/24",), mtu=1500),),
        routes=(Route("10.0.0.0/8", gateway="192.0.2.1"),),
    )
    assert plan(desired, current(lan0=lan(True, "192.0.2.10/24")), always) == []


def test_addresses_are_compared_in_canonical_form_and_extra_ones_are_kept() -> None:
    desired = Desired(links=(Link("lan0", addresses=("192.0.2.10/24",)),))
    state = current(lan0=lan(True, "192.0.2.10/24", "198.51.100.7/24"))
    assert plan(desired, state, always) == []


def test_a_new_vlan_is_created_brought_up_and_addressed() -> None:
    voice = Link("lan0.20", "vlan", parent="lan0", vlan_id=20, addresses=("10.20.0.1/24",))
    actions = plan(Desired(links=(voice,)), current(lan0=lan()), always)
    assert [a.describe() for a in actions] == [
        "create-link lan0.20 (kind=vlan, parent=lan0, vlan_id=20)",
        "set-up lan0.20",
        "add-address lan0.20 (address=10.20.0.1/24)",
    ]


def test_unsupported_kinds_and_missing_devices_are_problems_not_actions() -> None:
    desired = Desired(links=(Link("wg-hq", "wireguard"), Link("eth7")))
    actions = plan(desired, current(), never)
    assert [(a.op, a.target) for a in actions] == [
        ("unsupported", "wg-hq"),
        ("missing-device", "eth7"),
    ]


def test_wireguard_peer_is_configured_only_when_missing() -> None:
    peer = WireGuardPeer(KEY, "hq.example:51820", ("10.0.0.0/8",), "/etc/wg.key")
    state = current(**{"wg-hq": LinkState("wireguard", True, 1420, frozenset())})
    assert plan(Desired(wireguard={"wg-hq": peer}), state, always) == []
    other = WireGuardPeer("o" * 43 + "=", "hq.example:51820", ("10.0.0.0/8",), "/etc/wg.key")
    [action] = plan(Desired(wireguard={"wg-hq": other}), state, always)
    assert action.op == "configure-wireguard"
    assert "private_key_file=/etc/wg.key" in action.describe()


def test_a_route_with_another_gateway_is_added() -> None:
    desired = Desired(routes=(Route("10.0.0.0/8", gateway="192.0.2.254"),))
    [action] = plan(desired, current(), always)
    assert action.describe() == "add-route 10.0.0.0/8 (gateway=192.0.2.254)"


def test_settings_describe_interfaces_voice_vlan_routes_and_tunnel() -> None:
    settings = NetworkSettings.model_validate(
        {
            "manage": True,
            "interfaces": [
                {"name": "lan0", "addresses": ["192.0.2.10/24"]},
                {"name": "voice", "parent": "lan0", "vlan_id": 20, "addresses": ["10.20.0.1/24"]},
            ],
            "routes": [{"destination": "10.0.0.0/8", "gateway": "192.0.2.1"}],
            "wireguard": {
                "address": "10.99.0.2/32",
                "private_key_file": "/etc/callmesh/wg.key",
                "peer_public_key": KEY,
                "endpoint": "hq.example:51820",
                "allowed_ips": ["10.0.0.0/8"],
            },
        }
    )
    desired = settings.desired()
    assert [(link.name, link.kind) for link in desired.links] == [
        ("lan0", "device"),
        ("voice", "vlan"),
        ("wg-hq", "wireguard"),
    ]
    assert desired.wireguard["wg-hq"].endpoint == "hq.example:51820"


@pytest.mark.parametrize(
    "interface",
    [
        {"name": "lan0", "addresses": ["192.0.2.300/24"]},
        {"name": "voice", "vlan_id": 20},
        {"name": "voice", "parent": "lan0", "vlan_id": 5000},
    ],
)
def test_bad_interface_settings_are_refused(interface: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NetworkSettings.model_validate({"interfaces": [interface]})
