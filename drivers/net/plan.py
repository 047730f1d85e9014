"""Desired and current network state, and the actions between them (pure, no I/O).

Set-up is additive: missing links, addresses and routes are created, links brought up
and MTUs set; nothing the config does not mention is removed, so a wrong config can
never take away the address a technician is connected through.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

LinkKind = Literal["device", "vlan", "wireguard"]
KERNEL_KIND = {"vlan": "vlan", "wireguard": "wireguard"}


@dataclass(frozen=True)
class Link:
    """An interface to have: an existing device, a VLAN on a parent, or a WireGuard tunnel."""

    name: str
    kind: LinkKind = "device"
    parent: str | None = None
    vlan_id: int | None = None
    addresses: tuple[str, ...] = ()
    mtu: int | None = None


@dataclass(frozen=True)
class Route:
    """A static route; ``device`` or ``gateway`` (or both) say where it leads."""

    destination: str
    gateway: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class WireGuardPeer:
    """The HQ end of the tunnel."""

    public_key: str
    endpoint: str
    allowed_ips: tuple[str, ...]
    private_key_file: str
    keepalive_s: int = 25


@dataclass(frozen=True)
class Desired:
    """The network the appliance config describes."""

    links: tuple[Link, ...] = ()
    routes: tuple[Route, ...] = ()
    wireguard: dict[str, WireGuardPeer] = field(default_factory=dict)


@dataclass(frozen=True)
class LinkState:
    """What the kernel reports about one interface."""

    kind: str
    up: bool
    mtu: int
    addresses: frozenset[str]
    vlan_id: int | None = None
    parent: str | None = None


@dataclass(frozen=True)
class Current:
    """The kernel's view: interfaces by name and main-table routes."""

    links: Mapping[str, LinkState]
    routes: frozenset[tuple[str, str | None, str | None]]
    wireguard_peers: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    """One change; ``op`` is stable, ``describe()`` is for people (dry runs, doctor)."""

    op: str
    target: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.op} {self.target}" + (f" ({shown})" if shown else "")


def plan(desired: Desired, current: Current, supports: Callable[[str], bool]) -> list[Action]:
    """The actions that turn ``current`` into ``desired``, in the order to apply them."""
    actions: list[Action] = []
    for link in desired.links:
        actions.extend(_link_actions(link, current, supports))
    for route in desired.routes:
        key = (normalize(route.destination), route.gateway, route.device)
        if not _has_route(current, key):
            via = {"gateway": route.gateway, "device": route.device}
            actions.append(Action("add-route", key[0], {k: v for k, v in via.items() if v}))
    for name, peer in desired.wireguard.items():
        if supports("wireguard") and peer.public_key not in current.wireguard_peers.get(name, ()):
            tunnel = {
                "peer": peer.public_key,
                "endpoint": peer.endpoint,
                "allowed_ips": peer.allowed_ips,
                "keepalive_s": peer.keepalive_s,
                "private_key_file": peer.private_key_file,
            }
            actions.append(Action("configure-wireguard", name, tunnel))
    return actions


def _link_actions(link: Link, current: Current, supports: Callable[[str], bool]) -> list[Action]:
    state = current.links.get(link.name)
    if state is None:
        if link.kind == "device":
            return [Action("missing-device", link.name)]
        if not supports(KERNEL_KIND[link.kind]):
            return [Action("unsupported", link.name, {"kind": link.kind})]
        create: dict[str, Any] = {"kind": link.kind}
        if link.kind == "vlan":
            create |= {"parent": link.parent, "vlan_id": link.vlan_id}
        state = LinkState(link.kind, False, 0, frozenset())
        actions = [Action("create-link", link.name, create)]
    else:
        actions = []
    if link.mtu is not None and state.mtu != link.mtu:
        actions.append(Action("set-mtu", link.name, {"mtu": link.mtu}))
    if not state.up:
        actions.append(Action("set-up", link.name))
    for address in link.addresses:
        if normalize(address, host=True) not in state.addresses:
            actions.append(Action("add-address", link.name, {"address": normalize(address, True)}))
    return actions


def _has_route(current: Current, key: tuple[str, str | None, str | None]) -> bool:
    destination, gateway, device = key
    return any(
        d == destination and (gateway is None or g == gateway) and (device is None or v == device)
        for d, g, v in current.routes
    )


def normalize(cidr: str, host: bool = False) -> str:
    """``cidr`` in canonical form: an interface address (host) or a network."""
    if host:
        return str(ipaddress.ip_interface(cidr))
    return str(ipaddress.ip_network(cidr, strict=False))


PROBLEMS = frozenset({"unsupported", "missing-device"})


def changes(actions: list[Action]) -> list[Action]:
    """The actions to apply (problems are reported, not applied)."""
    return [a for a in actions if a.op not in PROBLEMS]


def problems(actions: list[Action]) -> list[Action]:
    """What cannot be set up: a device that is not there, a link kind the kernel lacks."""
    return [a for a in actions if a.op in PROBLEMS]
