"""A scripted Debian system for tests of ``callmesh upgrade`` (same methods as ``DebianSystem``).

Installing a package sets its version; the callmesh services then run that version, and
a version listed in ``broken``, once installed here, makes them fail as a release with a
crashing service would. ``build_deb`` makes a real (tiny) ``.deb`` with dpkg-deb.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from drivers.debpkg.system import PackageSystemError, UnitState, read_deb


def build_deb(out_dir: Path, package: str, version: str, arch: str = "all") -> Path:
    """A minimal package ``package`` at ``version`` in ``out_dir``."""
    root = out_dir / f".{package}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: {arch}\n"
        "Maintainer: callmesh <ops@callmesh.invalid>\nDescription: test package\n"
    )
    deb = out_dir / f"{package}_{version}_{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return deb


class FakeDebianSystem:
    """Packages and callmesh units in memory; every call is recorded."""

    def __init__(self, installed: dict[str, str], broken: Sequence[str] = ()) -> None:
        self.versions = dict(installed)
        self.broken = set(broken)
        self.installs: list[list[str]] = []
        self.journal_lines: list[str] = []
        self.repackable = True
        self.running = "callmesh-appliance" in installed
        self._pid = 100

    def architecture(self) -> str:
        return "amd64"

    def installed(self, packages: Sequence[str]) -> dict[str, str]:
        return {p: v for p, v in self.versions.items() if p in packages}

    def install(self, debs: Sequence[Path], timeout: float) -> None:
        infos = [read_deb(deb) for deb in debs]
        self.installs.append([f"{i.package}={i.version}" for i in infos])
        self.versions.update({i.package: i.version for i in infos})
        self._pid += 1

    def repack(self, package: str, out_dir: Path, timeout: float) -> Path:
        if not self.repackable:
            raise PackageSystemError("repack-failed", "dpkg-repack: command not found")
        return build_deb(out_dir, package, self.versions[package])

    def unit_state(self, unit: str) -> UnitState:
        if not self.running:
            return UnitState("inactive", "dead", 0, 0)
        if self._broken():
            return UnitState("activating", "auto-restart", 1, 0)
        return UnitState("active", "running", 0, self._pid)

    def restart(self, units: Sequence[str], timeout: float) -> None:
        self._pid += 1

    def http_ok(self, url: str, timeout: float) -> tuple[bool, str]:
        healthy = self.running and not self._broken()
        return healthy, '{"status": "ok"}' if healthy else "connection refused"

    def command(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        return 0, '{"status": "ok", "findings": []}'

    def journal(self, message: str, failed: bool) -> None:
        self.journal_lines.append(message)

    def _broken(self) -> bool:
        return bool(self.installs) and self.versions.get("callmesh") in self.broken
