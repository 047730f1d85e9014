"""Provisioning in order: check everything, then write and apply what differs.

Theory of operation: the CSV, the modem scan, the key file and the merged configuration
are all read and validated first; any ProvisionError there leaves the box untouched.
Only then are the key, the drop-in and the networkd files written (each only if its
content changes) and the network applied live (a no-op when it already matches).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.provision import network, site
from appliance.provision.answers import Answers
from appliance.provision.extensions import read_csv
from appliance.settings import ApplianceSettings, Extension
from drivers.net.component import NetworkReport
from drivers.net.netlink import NetlinkDriver

Scan = Callable[[tuple[str, ...]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Paths:
    """Where provisioning reads and writes."""

    config: Path
    conf_d: Path | None
    networkd_dir: Path
    wireguard_dir: Path


@dataclass
class Outcome:
    """What provisioning found and changed."""

    settings: ApplianceSettings
    drop_in: Path
    extensions: Sequence[Extension] | None
    modems: list[dict[str, Any]]
    scanned: tuple[str, ...] | None = None
    wireguard_public_key: str | None = None
    changed: list[str] = field(default_factory=list)
    network: NetworkReport | None = None


@dataclass(frozen=True)
class Checked:
    """Everything to write, validated; nothing written yet."""

    settings: ApplianceSettings
    drop_in: Path
    data: dict[str, Any]
    networkd: dict[str, str]
    key_file: Path | None
    key: str | None


def provision(answers: Answers, paths: Paths, driver: NetlinkDriver, scan: Scan) -> Outcome:
    """Check every answer, then bring the box to them; ProvisionError before any write."""
    drop_in = site.drop_in_path(paths.config, paths.conf_d)
    previous = site.read_previous(drop_in)
    extensions = None
    if answers.extensions_csv is not None:
        extensions = read_csv(answers.extensions_csv, site.known_passwords(previous))
    modems = scan(answers.modems.ports) if answers.modems.scan else []
    checked = check(answers, paths, extensions, site.modem_entries(modems, previous))
    scanned = answers.modems.ports if answers.modems.scan else None
    outcome = Outcome(checked.settings, drop_in, extensions, modems, scanned)
    apply(checked, paths, driver, outcome)
    return outcome


def check(
    answers: Answers,
    paths: Paths,
    extensions: Sequence[Extension] | None,
    modems: list[dict[str, Any]],
) -> Checked:
    """The drop-in, networkd files and key the answers make, validated with every layer."""
    wg = answers.network.wireguard
    key_file = network.key_file_for(wg, paths.wireguard_dir) if wg else None
    key = network.wanted_key(key_file, wg.private_key) if wg and key_file else None
    data = site.build(answers, extensions, [], key_file)
    settings = site.validate(paths.config, paths.conf_d, data)
    if settings.profile == "sim-gateway" and modems:
        data = site.build(answers, extensions, modems, key_file)
        settings = site.validate(paths.config, paths.conf_d, data)
    lan = answers.network.lan
    files = network.networkd_files(settings, frozenset({lan.name} if lan and lan.dhcp else ()))
    drop_in = site.drop_in_path(paths.config, paths.conf_d)
    return Checked(settings, drop_in, data, files, key_file, key)


def apply(checked: Checked, paths: Paths, driver: NetlinkDriver, outcome: Outcome) -> None:
    """Write what differs, apply the network live; note each change in ``outcome``."""
    if checked.key is not None and checked.key_file is not None:
        network.write_key(checked.key_file, checked.key)
        outcome.changed.append(str(checked.key_file))
    if checked.key_file is not None:
        outcome.wireguard_public_key = network.public_key(checked.key_file)
    if site.write(checked.drop_in, checked.data, paths.config):
        outcome.changed.append(str(checked.drop_in))
    changed = network.write_networkd(paths.networkd_dir, checked.networkd)
    outcome.changed += [str(paths.networkd_dir / name) for name in changed]
    if checked.settings.network.manage:
        outcome.network = network.apply_live(checked.settings, driver)
