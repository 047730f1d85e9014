"""The configuration provisioning writes: the site's drop-in, built from the answers.

The drop-in (``conf.d/40-provision.yaml``, mode 0640, below enrolment's 50-) holds the
site identity, the extensions, the network section and, on a SIM gateway, the modems
found. It is validated merged with every other layer before it is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from appliance.provision import ProvisionError
from appliance.provision.answers import Answers, WireGuardAnswers
from appliance.settings import ApplianceSettings, Extension
from drivers.daemon.config_layers import ConfigError, Layer, collect_layers, load_settings

DROP_IN = "40-provision.yaml"
HEADER = "# Written by `callmesh provision`; run it again rather than editing.\n"


def drop_in_path(config: Path, conf_d: Path | None) -> Path:
    """Where provisioning writes its drop-in."""
    return (conf_d or config.parent / "conf.d") / DROP_IN


def read_previous(path: Path) -> dict[str, Any]:
    """The drop-in the last provisioning wrote (empty when none or unreadable)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def known_passwords(previous: dict[str, Any]) -> dict[str, str]:
    """Extension number -> password from the last drop-in (keeps generated ones stable)."""
    extensions = previous.get("sip", {}).get("extensions", [])
    return {str(e["number"]): str(e["password"]) for e in extensions
            if isinstance(e, dict) and "number" in e and "password" in e}  # fmt: skip


def build(
    answers: Answers,
    extensions: Sequence[Extension] | None,
    modems: Sequence[dict[str, Any]],
    key_file: Path | None,
) -> dict[str, Any]:
    """The drop-in's content."""
    site = answers.site
    data: dict[str, Any] = {
        "site_id": site.id,
        "site": {"name": site.name, "timezone": site.timezone, "region": site.region},
    }
    if extensions is not None:
        data["sip"] = {"extensions": [e.model_dump() for e in extensions]}
    network = _network(answers, key_file)
    if network:
        data["network"] = network
    if modems:
        data["gateway"] = {"modems": list(modems)}
    return data


def modem_entries(
    modems: Sequence[dict[str, Any]], previous: dict[str, Any]
) -> list[dict[str, Any]]:
    """``gateway.modems`` for the modems a scan found, channels gsm-1... in port order.

    A port the running appliance holds cannot be probed: the entry the last provisioning
    wrote for it is kept, so re-running on a live box changes nothing.
    """
    imeis = {str(m["port"]): (m["identity"] or {}).get("imei") for m in modems if "error" not in m}
    busy = {str(m["port"]) for m in modems if m.get("busy")}
    for entry in previous.get("gateway", {}).get("modems", []):
        if isinstance(entry, dict) and entry.get("port") in busy:
            imeis[entry["port"]] = entry.get("imei")
    return [{"channel": f"gsm-{i}", "port": port, "imei": imeis[port]}
            for i, port in enumerate(sorted(imeis), start=1)]  # fmt: skip


def _network(answers: Answers, key_file: Path | None) -> dict[str, Any]:
    net = answers.network
    interfaces: list[dict[str, Any]] = []
    if net.lan is not None:
        interfaces.append({"name": net.lan.name, "addresses": list(net.lan.addresses)})
    if net.vlan is not None:
        parent = net.vlan.parent or (net.lan.name if net.lan else None)
        name = net.vlan.name or f"{parent}.{net.vlan.id}"
        interfaces.append({"name": name, "parent": parent, "vlan_id": net.vlan.id,
                           "addresses": list(net.vlan.addresses)})  # fmt: skip
    section: dict[str, Any] = {"manage": True, "interfaces": interfaces} if interfaces else {}
    if net.wireguard is not None and key_file is not None:
        section = {"manage": True, "interfaces": interfaces, **_tunnel(net.wireguard, key_file)}
    return section


def _tunnel(wg: WireGuardAnswers, key_file: Path) -> dict[str, Any]:
    routes = [{"destination": n, "device": wg.interface} for n in wg.allowed_ips]
    tunnel = {"interface": wg.interface, "address": wg.address,
              "private_key_file": str(key_file), "peer_public_key": wg.peer_public_key,
              "endpoint": wg.endpoint, "allowed_ips": list(wg.allowed_ips),
              "keepalive_s": wg.keepalive_s}  # fmt: skip
    return {"routes": routes, "wireguard": tunnel}


def validate(config: Path, conf_d: Path | None, data: dict[str, Any]) -> ApplianceSettings:
    """The settings the appliance will read once the drop-in holds ``data``."""
    path = drop_in_path(config, conf_d)
    try:
        layers = [layer for layer in collect_layers(config, conf_d) if layer.source != str(path)]
    except ConfigError as err:
        raise ProvisionError("config-unreadable", "; ".join(map(str, err.problems))) from None
    ours = Layer(str(path), data)
    at = next((i for i, layer in enumerate(layers[1:-1], 1) if Path(layer.source).name > DROP_IN),
              len(layers) - 1)  # fmt: skip
    layers.insert(at, ours)
    try:
        return load_settings(ApplianceSettings, layers)
    except ConfigError as err:
        problems = "; ".join(map(str, err.problems))
        raise ProvisionError(
            "config-invalid", f"the answers make an invalid config: {problems}"
        ) from None


def write(path: Path, data: dict[str, Any], config: Path) -> bool:
    """Replace the drop-in (0640, owned like ``config``) when its text differs; True if so."""
    text = HEADER + yaml.safe_dump(data, sort_keys=False)
    if path.exists() and path.read_text() == text:
        return False
    partial = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if os.geteuid() == 0:
            owner = config.stat()
            os.chown(partial, owner.st_uid, owner.st_gid)
        os.replace(partial, path)
    except OSError as err:
        raise ProvisionError("config-write-failed", f"cannot write {path}: {err}") from None
    return True
