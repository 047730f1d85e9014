"""`callmesh upgrade PACKAGE.deb...`: install a new release; roll back if it is not healthy."""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.signature import DEFAULT_TRUSTED

if TYPE_CHECKING:
    from appliance.settings import ApplianceSettings
    from appliance.upgrade.health import HealthCheck

DEFAULT_CONFIG = Path("/etc/callmesh/appliance.yaml")
DEFAULT_DATA_DIR = Path("/var/lib/callmesh")
DEFAULT_RELEASES = Path("/var/lib/callmesh-releases")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh upgrade`."""
    parser = sub.add_parser(
        "upgrade",
        help="install a new callmesh release; roll back if it fails its health check",
        description=(
            "Install the callmesh packages of a new release (as root): they must be the "
            "callmesh packages installed here, of one other version, matching the SHA-256 "
            "published with them (--sha256 FILE, else PACKAGE.deb.sha256 or SHA256SUMS beside "
            "them), that file signed (FILE.asc or FILE.sig beside it) by a release key "
            "trusted here (--trusted-keys). The installed release is kept first (in "
            "--releases), the new one installed with apt, the running services restarted and "
            "checked: each unit active, the appliance's /healthz answering 200 and `callmesh "
            "doctor --offline` without failure, within --timeout. A release that fails is "
            "replaced by the kept one. Every attempt goes to the journal (callmesh-upgrade) "
            "and to upgrades.json in the data directory, and is reported to HQ. Given one "
            "IMAGE.img instead (a box flashed with the A/B image), its root file system goes "
            "into the inactive slot with its SHA-256 checked (IMAGE.img.sha256, signed the "
            "same way), and the next boot tries it: kept once healthy, the running slot again "
            "when it is not healthy (or after 3 boots that fail). Exit codes: 0 upgraded (or "
            "slot written), 1 refused, rolled back or failed, 2 usage. See image/README.md "
            "(Upgrading)."
        ),
    )
    parser.add_argument(
        "packages", type=Path, nargs="*", metavar="PACKAGE.deb|IMAGE.img",
        help="the release's packages, or one disk image (A/B slots)",
    )  # fmt: skip
    parser.add_argument(
        "--boot-check", action="store_true",
        help="at boot (callmesh-boot-check.service): wait until healthy, then mark the "
        "running slot good",
    )  # fmt: skip
    parser.add_argument(
        "--sha256", type=Path, metavar="FILE", help="sha256sum file of the packages or image"
    )
    parser.add_argument(
        "--trusted-keys", type=Path, default=DEFAULT_TRUSTED, metavar="DIR",
        help=f"directory of trusted release keys, *.gpg (default {DEFAULT_TRUSTED})",
    )  # fmt: skip
    parser.add_argument(
        "--config", "-c", type=Path, default=DEFAULT_CONFIG, metavar="FILE",
        help=f"appliance config: data directory, /healthz (default {DEFAULT_CONFIG})",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=180.0, metavar="SECONDS",
        help="how long the new release has to become healthy (default 180)",
    )  # fmt: skip
    parser.add_argument(
        "--releases", type=Path, default=DEFAULT_RELEASES, metavar="DIR",
        help=f"where releases are kept for a rollback (default {DEFAULT_RELEASES})",
    )  # fmt: skip
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # Everything the upgrade uses is imported now: the install replaces these files.
    from appliance.upgrade import UpgradeError, UpgradeLog
    from appliance.upgrade.release import Checksums
    from appliance.upgrade.service import Upgrader, UpgradeRequest
    from drivers.debpkg import DebianSystem

    if os.geteuid() != 0:
        return _fail("needs-root", "callmesh upgrade installs packages", "run it as root")
    if args.boot_check:
        return _boot_check(args)
    if len(args.packages) == 1 and args.packages[0].suffix == ".img":
        return _image(args)
    if not args.packages:
        return _fail("usage", "give the release's packages or an image", "see --help", 2)
    settings = _settings(args.config)
    data_dir = settings.data_dir if settings else DEFAULT_DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    args.releases.mkdir(mode=0o700, parents=True, exist_ok=True)
    request = UpgradeRequest(
        tuple(args.packages),
        Checksums(args.sha256, args.trusted_keys),
        args.releases,
        _check(args, settings),
    )
    with (args.releases / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _fail("upgrade-running", "another upgrade is running", "wait for it to end")
        try:
            attempt = Upgrader(DebianSystem(), UpgradeLog(data_dir), _say).run(request)
        except UpgradeError as err:
            return _fail(err.error_id, str(err), err.next_step)
    print(f"callmesh upgraded from {attempt.from_version} to {attempt.to_version}; healthy")
    return 0


def _image(args: argparse.Namespace) -> int:
    from appliance.cli.upgrade_image import upgrade_image
    from appliance.upgrade import UpgradeLog

    settings = _settings(args.config)
    return upgrade_image(args, UpgradeLog(settings.data_dir if settings else DEFAULT_DATA_DIR))


def _boot_check(args: argparse.Namespace) -> int:
    from appliance.cli.upgrade_image import BOOT_UNIT, mark_boot
    from appliance.upgrade import UpgradeLog
    from appliance.upgrade.health import wait_healthy
    from drivers.debpkg import DebianSystem

    settings = _settings(args.config)
    system = DebianSystem()
    before = {BOOT_UNIT: system.unit_state(BOOT_UNIT)}
    problem = wait_healthy(system, before, _check(args, settings))
    log = UpgradeLog(settings.data_dir if settings else DEFAULT_DATA_DIR)
    return mark_boot(problem, log, lambda: system.command(["systemctl", "reboot"], 60))


def _check(args: argparse.Namespace, settings: ApplianceSettings | None) -> HealthCheck:
    from appliance.upgrade.health import HealthCheck

    if settings is None:
        return HealthCheck(None, (), args.timeout)
    doctor = (sys.executable, "-m", "appliance.cli.main", "doctor")
    return HealthCheck(
        _healthz(settings.http.host, settings.http.port),
        (*doctor, "--config", str(args.config), "--offline", "--json"),
        args.timeout,
    )


def _healthz(host: str, port: int) -> str:
    """The /healthz URL on loopback when the API listens on every address."""
    address = ipaddress.ip_address(host)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{shown}:{port}/healthz"


def _settings(path: Path) -> ApplianceSettings | None:
    """The appliance's settings; None on a box without an appliance config (HQ)."""
    from appliance.settings import ApplianceSettings
    from drivers.daemon.config_layers import ConfigError, collect_layers, load_settings

    if not path.exists():
        _say(f"no {path}: the health check covers the units only")
        return None
    try:
        return load_settings(ApplianceSettings, collect_layers(path))
    except ConfigError as err:
        _say(f"{path} does not validate ({err}); the health check covers the units only")
        return None


def _say(line: str) -> None:
    print(f"callmesh upgrade: {line}", file=sys.stderr, flush=True)


def _fail(error_id: str, message: str, next_step: str, code: int = 1) -> int:
    print(f"callmesh upgrade: {error_id}: {message}\n  next: {next_step}", file=sys.stderr)
    return code
