"""The network provisioning sets up: the WireGuard key, networkd files, the live links.

The key file is made once (or replaced by a key given in the answers) with mode 0640 and
group ``systemd-network`` when that group exists, so networkd can read it at boot.
"""

from __future__ import annotations

import grp
import os
from pathlib import Path

from appliance.provision import ProvisionError
from appliance.provision.answers import WireGuardAnswers
from appliance.settings import ApplianceSettings
from drivers.daemon.private_files import write_private
from drivers.net import networkd, wgkeys
from drivers.net.component import NetworkComponent, NetworkReport
from drivers.net.netlink import NetlinkDriver

NETWORKD_GROUP = "systemd-network"


def key_file_for(wg: WireGuardAnswers, wireguard_dir: Path) -> Path:
    """Where the tunnel's private key lives."""
    return wg.private_key_file or wireguard_dir / f"{wg.interface}.key"


def wanted_key(path: Path, given: str | None) -> str | None:
    """The key to write (None: the file already holds the right one)."""
    try:
        current = path.read_text().strip()
    except FileNotFoundError:
        current = None
    except OSError as err:
        raise ProvisionError("wireguard-key-unreadable", f"{path}: {err.strerror}") from None
    if current is not None and given is None:
        try:
            wgkeys.check_key(current)
        except ValueError as err:
            raise ProvisionError(
                "wireguard-key-invalid", f"{path}: {err}; move it away to make a new key"
            ) from None
        return None
    if current is not None and current == given:
        return None
    return given or wgkeys.generate_private()


def write_key(path: Path, key: str) -> None:
    """Write the private key file (0640, networkd's group when there is one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, key + "\n")
        gid = _group(NETWORKD_GROUP)
        if gid is not None and os.geteuid() == 0:
            os.chown(path, 0, gid)
            os.chmod(path, 0o640)
    except OSError as err:
        raise ProvisionError("wireguard-key-write-failed", f"cannot write {path}: {err}") from None


def public_key(path: Path) -> str:
    """The public key of the private key in ``path`` (for HQ's peer entry)."""
    try:
        return wgkeys.public_of(path.read_text().strip())
    except (OSError, ValueError) as err:
        raise ProvisionError("wireguard-key-unreadable", f"{path}: {err}") from None


def _group(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def networkd_files(settings: ApplianceSettings, dhcp: frozenset[str]) -> dict[str, str]:
    """The networkd files for the configured network."""
    desired = settings.network.desired()
    plan = networkd.NetworkdPlan(desired.links, desired.routes, desired.wireguard, dhcp)
    return networkd.render(plan)


def write_networkd(directory: Path, files: dict[str, str]) -> list[str]:
    """Bring ``directory`` to ``files``; the names that changed."""
    try:
        return networkd.write(directory, files)
    except OSError as err:
        raise ProvisionError("networkd-write-failed", f"cannot write {directory}: {err}") from None


def apply_live(settings: ApplianceSettings, driver: NetlinkDriver) -> NetworkReport:
    """Apply the network now and verify it against a fresh read."""
    return NetworkComponent(settings.network.desired(), driver).converge()
