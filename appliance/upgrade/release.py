"""The release to install and the one to go back to.

A release is the set of callmesh packages of one version. The packages given on the
command line must be callmesh packages of one version other than the installed one, for
this architecture, cover every callmesh package installed here (they depend on each
other at exactly one version) and match the SHA-256 published with them: ``--sha256
FILE``, else ``PACKAGE.deb.sha256`` beside each, else ``SHA256SUMS`` in its directory
(sha256sum format). The checksum file used must be signed by a trusted release key
(``FILE.asc`` or ``FILE.sig`` beside it, ``drivers.signature``).

The installed release is kept in ``releases/VERSION/``, a root-only directory: from
there, from apt's cache, or rebuilt from the installed files by dpkg-repack.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.upgrade.errors import ReleaseError
from drivers.debpkg import DebInfo, PackageSystemError, read_deb
from drivers.signature import SignatureError, verify

PACKAGES = ("callmesh", "callmesh-appliance", "callmesh-aggregator")
APT_CACHE = Path("/var/cache/apt/archives")
_SHA256_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(\S.*)$")


class Packages(Protocol):
    """What the release checks ask of the package system."""

    def architecture(self) -> str:
        """dpkg's native architecture."""

    def installed(self, packages: Sequence[str]) -> dict[str, str]:
        """Installed version of each installed package of ``packages``."""

    def repack(self, package: str, out_dir: Path, timeout: float) -> Path:
        """Rebuild an installed package as a .deb in ``out_dir``."""


@dataclass(frozen=True)
class Release:
    """Callmesh packages of one version."""

    version: str
    debs: tuple[DebInfo, ...]

    @property
    def names(self) -> list[str]:
        """The package names, sorted."""
        return sorted(deb.package for deb in self.debs)

    @property
    def paths(self) -> list[Path]:
        """The package files."""
        return [deb.path for deb in self.debs]


@dataclass(frozen=True)
class Checksums:
    """Where the packages' SHA-256 come from, and the release keys that must sign it."""

    sha256_file: Path | None
    trusted: Path


def load_release(paths: Sequence[Path], sums: Checksums, arch: str) -> Release:
    """The packages at ``paths`` as a release, once each checks out."""
    debs = tuple(_checked(path, sums, arch) for path in paths)
    versions = sorted({deb.version for deb in debs})
    if len(versions) != 1:
        raise ReleaseError(
            "mixed-versions",
            f"the packages are of versions {', '.join(versions)}",
            "give the packages of one release together",
        )
    names = [deb.package for deb in debs]
    if len(set(names)) != len(names):
        raise ReleaseError("duplicate-package", "a package is given twice", "give each once")
    return Release(versions[0], debs)


def _checked(path: Path, sums: Checksums, arch: str) -> DebInfo:
    """One package: readable, a callmesh package for ``arch``, with the published SHA-256."""
    if not path.is_file():
        raise ReleaseError("package-missing", f"{path}: no such file", "check the path")
    try:
        deb = read_deb(path)
    except PackageSystemError as err:
        raise ReleaseError(err.error_id, str(err), "give a callmesh .deb file") from err
    if deb.package not in PACKAGES:
        raise ReleaseError(
            "not-callmesh-package",
            f"{path} is package {deb.package!r}, not one of {', '.join(PACKAGES)}",
            "give the callmesh packages built by image/build-deb",
        )
    if deb.architecture not in (arch, "all"):
        raise ReleaseError(
            "wrong-architecture",
            f"{path} is for {deb.architecture}, this box is {arch}",
            f"use the {arch} build of the release",
        )
    _check_sha256(path, _expected_sha256(path, sums))
    return deb


def _expected_sha256(path: Path, sums: Checksums) -> str:
    candidates = (
        [sums.sha256_file]
        if sums.sha256_file
        else [path.with_name(path.name + ".sha256"), path.with_name("SHA256SUMS")]
    )
    for candidate in candidates:
        try:
            signed = candidate.read_bytes()
        except OSError:
            continue
        for line in _verified(signed, candidate, sums.trusted).splitlines():
            found = _SHA256_LINE.match(line.strip())
            if found and Path(found.group(2)).name == path.name:
                return found.group(1).lower()
    raise ReleaseError(
        "checksum-missing",
        f"no SHA-256 for {path.name} in {', '.join(str(c) for c in candidates)}",
        "publish PACKAGE.deb.sha256 or SHA256SUMS beside the packages, or name one with --sha256",
    )


def _verified(signed: bytes, path: Path, trusted: Path) -> str:
    """The checksum file's text, once its signature by a trusted key checks out."""
    try:
        verify(signed, path, trusted)
    except SignatureError as err:
        raise ReleaseError(
            err.error_id, str(err), "use the release's SHA256SUMS with its signature"
        ) from err
    return signed.decode(errors="replace")


def _check_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as package:
        while chunk := package.read(1024 * 1024):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ReleaseError(
            "checksum-mismatch",
            f"{path} has SHA-256 {digest.hexdigest()}, the published one is {expected}",
            "the download is damaged or not this release: fetch it again",
        )


def installed_release(system: Packages, release: Release) -> dict[str, str]:
    """The installed callmesh packages, once ``release`` can replace all of them."""
    installed = system.installed(PACKAGES)
    if "callmesh" not in installed:
        raise ReleaseError(
            "not-installed",
            "callmesh is not installed here",
            "install the packages with apt for a first install",
        )
    current = installed["callmesh"]
    if release.version == current:
        raise ReleaseError(
            "same-version", f"callmesh {current} is already installed", "nothing to do"
        )
    missing = sorted(set(installed) - set(release.names))
    extra = sorted(set(release.names) - set(installed))
    if missing or extra:
        raise ReleaseError(
            "release-mismatch",
            f"installed here: {', '.join(sorted(installed))}; given: {', '.join(release.names)}",
            "give exactly the callmesh packages installed here, of the new version",
        )
    return installed


def keep_installed(
    system: Packages, installed: dict[str, str], releases: Path, timeout: float
) -> Release:
    """The installed release's packages, kept in ``releases/VERSION/`` for a rollback."""
    version = installed["callmesh"]
    kept = _private_dir(releases / version)
    debs = []
    for package in sorted(installed):
        found = _find(package, installed[package], [kept, APT_CACHE])
        if found is None:
            found = _repack(system, package, kept, timeout)
        elif found.path.parent != kept:
            shutil.copy2(found.path, kept / found.path.name)
            found = read_deb(kept / found.path.name)
        debs.append(found)
    return Release(version, tuple(debs))


def keep_new(release: Release, releases: Path) -> None:
    """Keep the installed new release for the next upgrade; drop all but it and the last."""
    kept = _private_dir(releases / release.version)
    for path in release.paths:
        if path.parent.resolve() != kept.resolve():
            shutil.copy2(path, kept / path.name)


def prune(releases: Path, keep: Sequence[str]) -> None:
    """Remove the kept releases other than ``keep``."""
    for old in releases.iterdir():
        if old.is_dir() and old.name not in keep:
            shutil.rmtree(old)


def _private_dir(path: Path) -> Path:
    """``path`` created for root only (packages from it are installed as root)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _find(package: str, version: str, places: Sequence[Path]) -> DebInfo | None:
    for place in places:
        for path in sorted(place.glob(f"{package}_*.deb")):
            try:
                deb = read_deb(path)
            except PackageSystemError:
                continue
            if deb.package == package and deb.version == version:
                return deb
    return None


def _repack(system: Packages, package: str, kept: Path, timeout: float) -> DebInfo:
    try:
        return read_deb(system.repack(package, kept, timeout))
    except PackageSystemError as err:
        raise ReleaseError(
            "no-rollback-package",
            f"no package of the installed {package} to roll back to: {err}",
            f"install dpkg-repack, or copy the installed release's packages into {kept}",
        ) from err
