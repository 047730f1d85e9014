"""systemd-networkd files for the links set up live, so they come back after a reboot.

``render`` is pure (the links and tunnel in, file names and text out); ``write`` puts the
files in a directory, touching only files whose text changed and removing the files with
our prefix that the new set no longer has. A parent device gets a ``.network`` file that
attaches its VLANs (networkd reads only the first ``.network`` file matching a device, so
ours carries the parent's own addresses or DHCP too).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from drivers.net.plan import Link, Route, WireGuardPeer

PREFIX = "10-callmesh-"


@dataclass(frozen=True)
class NetworkdPlan:
    """What networkd should bring up: links in order, the tunnel's peer, routes, DHCP."""

    links: tuple[Link, ...] = ()
    routes: tuple[Route, ...] = ()
    wireguard: Mapping[str, WireGuardPeer] = field(default_factory=dict)
    dhcp: frozenset[str] = frozenset()


def render(plan: NetworkdPlan) -> dict[str, str]:
    """File name -> text, one ``.network`` per link and a ``.netdev`` per created link."""
    files: dict[str, str] = {}
    for link in plan.links:
        if link.kind == "vlan":
            files[f"{PREFIX}{link.name}.netdev"] = _vlan_netdev(link)
        if link.kind == "wireguard":
            files[f"{PREFIX}{link.name}.netdev"] = _wg_netdev(link, plan.wireguard[link.name])
        files[f"{PREFIX}{link.name}.network"] = _network(link, plan)
    return files


def _vlan_netdev(link: Link) -> str:
    return _sections(
        ("NetDev", [f"Name={link.name}", "Kind=vlan"]), ("VLAN", [f"Id={link.vlan_id}"])
    )


def _wg_netdev(link: Link, peer: WireGuardPeer) -> str:
    return _sections(
        ("NetDev", [f"Name={link.name}", "Kind=wireguard"]),
        ("WireGuard", [f"PrivateKeyFile={peer.private_key_file}"]),
        (
            "WireGuardPeer",
            [
                f"PublicKey={peer.public_key}",
                f"Endpoint={peer.endpoint}",
                f"AllowedIPs={','.join(peer.allowed_ips)}",
                f"PersistentKeepalive={peer.keepalive_s}",
            ],
        ),
    )


def _network(link: Link, plan: NetworkdPlan) -> str:
    lines = [f"DHCP={'yes' if link.name in plan.dhcp else 'no'}"]
    lines += [f"Address={address}" for address in link.addresses]
    lines += [f"VLAN={v.name}" for v in plan.links if v.kind == "vlan" and v.parent == link.name]
    sections: list[tuple[str, list[str]]] = [("Match", [f"Name={link.name}"])]
    if link.mtu is not None:
        sections.append(("Link", [f"MTUBytes={link.mtu}"]))
    sections.append(("Network", lines))
    for route in plan.routes:
        if route.device == link.name:
            gateway = [f"Gateway={route.gateway}"] if route.gateway else []
            sections.append(("Route", [f"Destination={route.destination}", *gateway]))
    return _sections(*sections)


def _sections(*sections: tuple[str, list[str]]) -> str:
    text = "# Written by `callmesh provision`; run it again rather than editing.\n"
    return text + "\n".join(f"[{name}]\n" + "".join(f"{line}\n" for line in lines)
                            for name, lines in sections)  # fmt: skip


def write(directory: Path, files: Mapping[str, str]) -> list[str]:
    """Make ``directory`` hold exactly ``files`` among our own; the names that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = [name for name, text in files.items() if _replace(directory / name, text)]
    for stale in _ours(directory.iterdir()):
        if stale.name not in files:
            stale.unlink()
            changed.append(stale.name)
    return sorted(changed)


def _ours(paths: Iterable[Path]) -> list[Path]:
    return [p for p in paths if p.name.startswith(PREFIX) and p.suffix in (".netdev", ".network")]


def _replace(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text)
    os.chmod(partial, 0o644)
    partial.replace(path)
    return True
