"""`callmesh provision`: set up a box's site, network, extensions and modems (docs/provision.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appliance.provision.service import Outcome

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = Path("/etc/callmesh/appliance.yaml")
DEFAULT_NETWORKD = Path("/etc/systemd/network")
RUNTIME_ERRORS = frozenset({"config-write-failed", "networkd-write-failed",
                            "wireguard-key-write-failed"})  # fmt: skip
# flag dest -> key path in the answers
FLAGS: dict[str, tuple[str, ...]] = {
    "site_id": ("site", "id"),
    "site_name": ("site", "name"),
    "timezone": ("site", "timezone"),
    "region": ("site", "region"),
    "lan": ("network", "lan", "name"),
    "lan_address": ("network", "lan", "addresses"),
    "lan_dhcp": ("network", "lan", "dhcp"),
    "vlan_id": ("network", "vlan", "id"),
    "vlan_parent": ("network", "vlan", "parent"),
    "vlan_name": ("network", "vlan", "name"),
    "vlan_address": ("network", "vlan", "addresses"),
    "wg_address": ("network", "wireguard", "address"),
    "wg_peer_key": ("network", "wireguard", "peer_public_key"),
    "wg_endpoint": ("network", "wireguard", "endpoint"),
    "wg_allowed_ip": ("network", "wireguard", "allowed_ips"),
    "wg_key_file": ("network", "wireguard", "private_key_file"),
    "wg_interface": ("network", "wireguard", "interface"),
    "wg_keepalive": ("network", "wireguard", "keepalive_s"),
    "extensions": ("extensions_csv",),
    "modem_ports": ("modems", "ports"),
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh provision`."""
    parser = sub.add_parser(
        "provision",
        help="set the site identity, network (VLAN, WireGuard to HQ), extensions and modems",
        description="Set this box up from an answers file, flags (over the file) and, on a "
        "terminal, prompts for what is still missing: the site identity, the LAN, a voice "
        "VLAN and a WireGuard tunnel to HQ (applied now through netlink and written as "
        "systemd-networkd files for the next boot), extensions from a CSV "
        "(number,name,password; blank passwords generated) and the modems a scan finds. "
        "Everything is checked before anything is written; running it again with the same "
        "answers changes nothing. Ends with the doctor's report and its exit code "
        "(0 healthy, 1 a check failed, 2 a bad answer). See docs/provision.md.",
    )
    parser.add_argument("--answers", type=Path, metavar="FILE", help="answers file (YAML)")
    parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG, metavar="FILE",
                        help=f"appliance config file (default {DEFAULT_CONFIG})")  # fmt: skip
    parser.add_argument("--conf-d", type=Path, metavar="DIR",
                        help="drop-in folder (default: conf.d beside FILE)")  # fmt: skip
    parser.add_argument("--networkd-dir", type=Path, default=DEFAULT_NETWORKD, metavar="DIR",
                        help=f"where networkd files go (default {DEFAULT_NETWORKD})")  # fmt: skip
    parser.add_argument("--wireguard-dir", type=Path, metavar="DIR",
                        help="where a generated WireGuard key goes (default: wireguard/ "
                        "beside FILE)")  # fmt: skip
    _answer_flags(parser)
    parser.add_argument("--no-modem-scan", action="store_true", help="do not look for modems")
    parser.add_argument("--no-input", action="store_true", help="never prompt")
    parser.add_argument(
        "--offline", action="store_true", help="doctor: skip the running appliance (not started)"
    )
    parser.set_defaults(func=_provision)


def _answer_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--site-id", help="the site's id at HQ, e.g. branch-berlin")
    add("--site-name", help="the site's name for people")
    add("--timezone", help="IANA time zone, e.g. Europe/Berlin")
    add("--region", help="region, e.g. eu-central")
    add("--lan", metavar="DEV", help="the LAN device, e.g. eth0")
    add("--lan-address", action="append", metavar="CIDR", help="LAN address (repeatable)")
    add("--lan-dhcp", action="store_const", const=True, help="the LAN takes DHCP")
    add("--vlan-id", type=int, metavar="ID", help="voice VLAN id (1-4094)")
    add("--vlan-parent", metavar="DEV", help="VLAN parent (default: --lan)")
    add("--vlan-name", metavar="NAME", help="VLAN device name (default PARENT.ID)")
    add("--vlan-address", action="append", metavar="CIDR", help="VLAN address (repeatable)")
    add("--wg-address", metavar="CIDR", help="this end's tunnel address, e.g. 10.99.0.2/32")
    add("--wg-peer-key", metavar="KEY", help="HQ's WireGuard public key (base64)")
    add("--wg-endpoint", metavar="HOST:PORT", help="HQ's WireGuard endpoint")
    add("--wg-allowed-ip", action="append", metavar="CIDR", help="network behind HQ (repeatable)")
    add("--wg-key-file", metavar="FILE", help="this end's private key (made when missing)")
    add("--wg-interface", metavar="NAME", help="tunnel device name (default wg-hq)")
    add("--wg-keepalive", type=int, metavar="SECONDS", help="keepalive (default 25; 0: off)")
    add("--extensions", metavar="CSV", help="extensions CSV: number,name,password")
    add("--modem-ports", action="append", metavar="GLOB", help="ports to scan (repeatable)")


def _provision(args: argparse.Namespace) -> int:
    from appliance.provision import ProvisionError

    try:
        outcome = _run(args)
    except ProvisionError as err:
        print(f"callmesh provision: {err.message} [error_id: {err.error_id}]", file=sys.stderr)
        return EXIT_FAILURE if err.error_id in RUNTIME_ERRORS else EXIT_USAGE
    _print_outcome(outcome)
    print("\ndoctor:")
    from appliance.cli.doctor_cmd import run_doctor

    return run_doctor(args.config, offline=args.offline)


def _run(args: argparse.Namespace) -> Outcome:
    from appliance.provision import answers
    from appliance.provision.service import Paths, provision
    from drivers.net.netlink import NetlinkDriver

    data: dict[str, Any] = answers.read_file(args.answers) if args.answers else {}
    data = answers.merge(data, answers.from_flags({k: getattr(args, d) for d, k in FLAGS.items()}))
    if args.no_modem_scan:
        data = answers.merge(data, {"modems": {"scan": False}})
    if not args.no_input and sys.stdin.isatty():
        data = answers.ask_missing(data, input)
    paths = Paths(args.config, args.conf_d, args.networkd_dir,
                  args.wireguard_dir or args.config.parent / "wireguard")  # fmt: skip
    return provision(answers.validate(data), paths, NetlinkDriver(), _scan)


def _scan(patterns: tuple[str, ...]) -> list[dict[str, Any]]:
    from drivers.modem import tools

    return asyncio.run(tools.scan(patterns))


def _print_outcome(outcome: Outcome) -> None:
    s = outcome.settings
    print(f"site {s.site_id} ({s.site.name}), {s.site.timezone}, region {s.site.region or '-'}")
    if outcome.extensions is not None:
        numbers = ", ".join(e.number for e in outcome.extensions) or "none"
        print(f"extensions: {numbers} (passwords in {outcome.drop_in})")
    if outcome.wireguard_public_key is not None:
        print(f"WireGuard public key of this box (give it to HQ): {outcome.wireguard_public_key}")
    for modem in outcome.modems:
        _print_modem(modem)
    if outcome.scanned is not None and not outcome.modems:
        print(f"modems: no serial port matches {' '.join(outcome.scanned)}")
    if outcome.network is not None:
        print(f"network: {outcome.network.summary()}")
    for path in outcome.changed:
        print(f"written: {path}")
    if not outcome.changed:
        print("nothing changed: the box already matches the answers")
    else:
        print("restart the appliance to use the new settings: systemctl restart callmesh-appliance")


def _print_modem(modem: dict[str, Any]) -> None:
    if modem.get("busy"):
        print(f"port {modem['port']}: in use by the appliance (its entry is kept)")
        return
    if "error" in modem:
        print(f"port {modem['port']}: no modem ({modem['error']})")
        return
    ident, sim = modem["identity"] or {}, modem["sim"]
    print(f"modem {modem['port']}: {ident.get('model')} IMEI {ident.get('imei')}; "
          f"SIM {sim.get('pin_state')} ICCID {sim.get('iccid') or '-'} "
          f"number {sim.get('number') or '-'}")  # fmt: skip
