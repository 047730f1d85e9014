"""The kernel side: read interfaces, addresses and routes, apply actions (pyroute2).

Every call opens its own netlink socket (in ``netns`` when given) and closes it, so the
driver holds no handle between the appliance's start-up and its checks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute, NetlinkError, NetNS, WireGuard
from pyroute2.netns import popns, pushns

from drivers.net import NetApplyError, NetUnsupported
from drivers.net.plan import Action, Current, LinkState

KERNEL_MODULES = {"vlan": "8021q", "wireguard": "wireguard"}


class NetlinkDriver:
    """Reads and changes the network of one namespace (the host's when ``netns`` is None)."""

    def __init__(self, netns: str | None = None, modules_dir: Path = Path("/lib/modules")) -> None:
        self.netns = netns
        self._modules_dir = modules_dir

    @contextlib.contextmanager
    def _ipr(self) -> Iterator[Any]:
        ipr = NetNS(self.netns) if self.netns else IPRoute()
        try:
            yield ipr
        finally:
            ipr.close()

    def supports(self, kind: str) -> bool:
        """Whether the kernel has the module for ``kind`` built in, loaded or loadable."""
        module = KERNEL_MODULES.get(kind, kind)
        if Path("/sys/module", module).exists():
            return True
        release = self._modules_dir / platform.release()
        return any(
            f"/{module}.ko" in _text(release / name) for name in ("modules.builtin", "modules.dep")
        )

    def read(self) -> Current:
        """Interfaces with their addresses, and the main routing table."""
        with self._ipr() as ipr:
            links = {link["index"]: link for link in ipr.get_links()}
            names = {index: link.get_attr("IFLA_IFNAME") for index, link in links.items()}
            addresses: dict[int, set[str]] = {}
            for addr in ipr.get_addr():
                value = f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}"
                addresses.setdefault(addr["index"], set()).add(value)
            routes = frozenset(_route(r, names) for r in ipr.get_routes(table=254))
        states = {
            names[i]: _link_state(link, names, addresses.get(i, set())) for i, link in links.items()
        }
        peers = {n: self._peers(n) for n, s in states.items() if s.kind == "wireguard"}
        return Current(states, routes, peers)

    def apply(self, action: Action) -> None:
        """Carry out one action; NetUnsupported or NetApplyError when the kernel refuses."""
        try:
            if action.op == "configure-wireguard":
                self._configure_wireguard(action)
                return
            with self._ipr() as ipr:
                _APPLY[action.op](ipr, action)
        except NetlinkError as err:
            if err.code == errno.EOPNOTSUPP:
                raise NetUnsupported(f"{action.describe()}: not supported by this kernel") from None
            raise NetApplyError(f"{action.describe()}: {os.strerror(err.code)}") from None

    def _peers(self, name: str) -> frozenset[str]:
        with self._in_netns(), contextlib.closing(WireGuard()) as wg:
            info = wg.info(name)
        keys = set()
        for message in info:
            for peer in message.get_attr("WGDEVICE_A_PEERS") or []:
                keys.add(peer.get_attr("WGPEER_A_PUBLIC_KEY").decode())
        return frozenset(keys)

    def _configure_wireguard(self, action: Action) -> None:
        host, _, port = str(action.args["endpoint"]).rpartition(":")
        peer = {
            "public_key": action.args["peer"],
            "endpoint_addr": host.strip("[]"),
            "endpoint_port": int(port),
            "persistent_keepalive": int(action.args.get("keepalive_s", 25)),
            "allowed_ips": list(action.args.get("allowed_ips", ())),
        }
        try:
            private_key = Path(action.args["private_key_file"]).read_text().strip()
        except OSError as err:
            raise NetApplyError(f"{action.describe()}: private key: {err.strerror}") from None
        with self._in_netns(), contextlib.closing(WireGuard()) as wg:
            wg.set(action.target, private_key=private_key, peer=peer)

    @contextlib.contextmanager
    def _in_netns(self) -> Iterator[None]:
        if self.netns is None:
            yield
            return
        pushns(self.netns)
        try:
            yield
        finally:
            popns()


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _link_state(link: Any, names: dict[int, str], addresses: set[str]) -> LinkState:
    info = link.get_attr("IFLA_LINKINFO")
    kind = (info.get_attr("IFLA_INFO_KIND") if info else None) or "device"
    vlan_id = None
    if kind == "vlan" and info is not None:
        vlan_id = info.get_attr("IFLA_INFO_DATA").get_attr("IFLA_VLAN_ID")
    parent_index = link.get_attr("IFLA_LINK")
    return LinkState(
        kind=kind,
        up=bool(link["flags"] & 1),
        mtu=int(link.get_attr("IFLA_MTU") or 0),
        addresses=frozenset(addresses),
        vlan_id=vlan_id,
        parent=names.get(parent_index) if parent_index else None,
    )


def _route(route: Any, names: dict[int, str]) -> tuple[str, str | None, str | None]:
    unspecified = "::" if route["family"] == socket.AF_INET6 else "0.0.0.0"  # noqa: S104
    destination = f"{route.get_attr('RTA_DST') or unspecified}/{route['dst_len']}"
    return destination, route.get_attr("RTA_GATEWAY"), names.get(route.get_attr("RTA_OIF"))


def _index(ipr: Any, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise NetApplyError(f"no interface {name!r}")
    return int(found[0])


def _create_link(ipr: Any, action: Action) -> None:
    kind = action.args["kind"]
    if kind == "vlan":
        parent = _index(ipr, action.args["parent"])
        ipr.link(
            "add", ifname=action.target, kind="vlan", link=parent, vlan_id=action.args["vlan_id"]
        )
    else:
        ipr.link("add", ifname=action.target, kind=kind)


def _add_address(ipr: Any, action: Action) -> None:
    address, _, prefix = str(action.args["address"]).partition("/")
    ipr.addr("add", index=_index(ipr, action.target), address=address, prefixlen=int(prefix))


def _add_route(ipr: Any, action: Action) -> None:
    args: dict[str, Any] = {"dst": action.target}
    if "gateway" in action.args:
        args["gateway"] = action.args["gateway"]
    if "device" in action.args:
        args["oif"] = _index(ipr, action.args["device"])
    ipr.route("add", **args)


_APPLY = {
    "create-link": _create_link,
    "set-up": lambda ipr, a: ipr.link("set", index=_index(ipr, a.target), state="up"),
    "set-mtu": lambda ipr, a: ipr.link("set", index=_index(ipr, a.target), mtu=a.args["mtu"]),
    "add-address": _add_address,
    "add-route": _add_route,
}
