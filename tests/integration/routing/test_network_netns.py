"""Network set-up through pyroute2 inside throwaway network namespaces."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator

import pytest
from pyroute2 import NetNS, netns

from appliance.doctor import network_finding
from drivers.net.component import NetworkComponent
from drivers.net.netlink import NetlinkDriver
from drivers.net.plan import Desired, Link, Route, WireGuardPeer

_names = itertools.count()
PEER_KEY = "x" * 43 + "="


@pytest.fixture
def ns() -> Iterator[str]:
    """A namespace holding a veth pair (lan0 <-> lan1); always removed."""
    name = f"cm-test-{os.getpid()}-{next(_names)}"
    netns.create(name)
    try:
        with NetNS(name) as ipr:
            ipr.link("add", ifname="lan0", kind="veth", peer="lan1")
        yield name
    finally:
        netns.remove(name)


def office(*extra: Link) -> Desired:
    return Desired(
        links=(Link("lan0", addresses=("192.0.2.10/24",), mtu=1400), *extra),
        routes=(
            Route("198.51.100.0/24", gateway="192.0.2.1"),
            Route("203.0.113.0/24", device="lan0"),
        ),
    )


def addresses(ns: str, ifname: str) -> set[str]:
    with NetNS(ns) as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        return {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)}


def routes(ns: str) -> set[tuple[str, str | None]]:
    with NetNS(ns) as ipr:
        return {
            (f"{r.get_attr('RTA_DST')}/{r['dst_len']}", r.get_attr("RTA_GATEWAY"))
            for r in ipr.get_routes(family=2, table=254)
            if r.get_attr("RTA_DST")
        }


def test_dry_run_lists_the_changes_and_changes_nothing(ns: str) -> None:
    component = NetworkComponent(office(), NetlinkDriver(ns), dry_run=True)
    report = component.converge()
    assert [a.describe() for a in report.planned] == [
        "set-mtu lan0 (mtu=1400)",
        "set-up lan0",
        "add-address lan0 (address=192.0.2.10/24)",
        "add-route 198.51.100.0/24 (gateway=192.0.2.1)",
        "add-route 203.0.113.0/24 (device=lan0)",
    ]
    assert report.ok
    assert addresses(ns, "lan0") == set()
    assert routes(ns) == set()


def test_apply_then_verify_through_a_fresh_read(ns: str) -> None:
    component = NetworkComponent(office(), NetlinkDriver(ns))
    asyncio.run(component.start())
    assert component.check() == (True, "matches config (5 changes applied)")
    assert addresses(ns, "lan0") == {"192.0.2.10/24"}
    assert ("198.51.100.0/24", "192.0.2.1") in routes(ns)
    assert ("203.0.113.0/24", None) in routes(ns)
    again = component.converge()
    assert (again.planned, again.ok) == ([], True)
    asyncio.run(component.stop())
    assert addresses(ns, "lan0") == {"192.0.2.10/24"}


def test_voice_vlan_and_wireguard_are_created_or_reported_unsupported(
    ns: str, tmp_path: object
) -> None:
    driver = NetlinkDriver(ns)
    tunnel = Link("wg-hq", "wireguard", addresses=("10.99.0.2/32",))
    voice = Link("lan0.20", "vlan", parent="lan0", vlan_id=20, addresses=("10.20.0.10/24",))
    desired = Desired(
        links=(Link("lan0"), voice, tunnel),
        wireguard={
            "wg-hq": WireGuardPeer(PEER_KEY, "192.0.2.1:51820", ("10.99.0.0/24",), "/nonexistent")
        },
    )
    report = NetworkComponent(desired, driver).converge()
    if driver.supports("vlan"):
        assert addresses(ns, "lan0.20") == {"10.20.0.10/24"}
    else:
        assert "lan0.20: vlan unsupported by this kernel" in report.problems
    if not driver.supports("wireguard"):
        assert "wg-hq: wireguard unsupported by this kernel" in report.problems
        assert not report.ok
    assert addresses(ns, "lan0") == set()


class ClaimsEverything(NetlinkDriver):
    """A driver that believes every link kind is available, to reach the kernel's refusal."""

    def supports(self, kind: str) -> bool:
        return True


def test_a_kind_the_kernel_refuses_is_reported_cleanly(ns: str) -> None:
    driver = ClaimsEverything(ns)
    if NetlinkDriver(ns).supports("vlan"):
        pytest.skip("this kernel has VLAN support")
    voice = Link("lan0.20", "vlan", parent="lan0", vlan_id=20)
    report = NetworkComponent(Desired(links=(voice,)), driver).converge()
    assert report.problems[0] == (
        "create-link lan0.20 (kind=vlan, parent=lan0, vlan_id=20): not supported by this kernel"
    )
    assert not report.ok


def test_missing_device_and_doctor_report(ns: str) -> None:
    desired = Desired(links=(Link("eth9", addresses=("192.0.2.5/24",)),))
    report = NetworkComponent(desired, NetlinkDriver(ns)).converge()
    assert report.problems == ["eth9: no such network device: check network.interfaces"]
    finding = network_finding(office(), ns)
    assert not finding.ok
    assert "pending: add-address lan0 (address=192.0.2.10/24)" in finding.detail
    NetworkComponent(office(), NetlinkDriver(ns)).converge()
    assert network_finding(office(), ns).detail == "matches the config"
