"""dpkg, apt, dpkg-repack, systemctl and the journal, each behind one method."""

from __future__ import annotations

import os
import subprocess
import syslog
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

APT_INSTALL = (
    "apt-get",
    "install",
    "-y",
    "-q",
    "--no-install-recommends",
    "--allow-downgrades",
    # Edited configs (conffiles) are kept, never replaced by the package's.
    "-o",
    "Dpkg::Options::=--force-confold",
)


class PackageSystemError(Exception):
    """A package or service command failed; ``error_id`` is stable."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


@dataclass(frozen=True)
class DebInfo:
    """A ``.deb`` file and the control fields that identify it."""

    path: Path
    package: str
    version: str
    architecture: str

    @property
    def file_name(self) -> str:
        """The name Debian gives this package's file."""
        return f"{self.package}_{self.version}_{self.architecture}.deb"


@dataclass(frozen=True)
class UnitState:
    """What systemd says about a unit."""

    active: str
    sub: str
    restarts: int
    main_pid: int

    @property
    def failed(self) -> bool:
        """Failed, or waiting to be restarted after its process died."""
        return self.active == "failed" or self.sub == "auto-restart"


def _run(argv: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run ``argv``; its output, or ``PackageSystemError`` naming the command and its words."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired as err:
        raise PackageSystemError("command-timeout", f"{argv[0]} took over {timeout:.0f} s") from err
    except OSError as err:
        raise PackageSystemError("command-missing", f"cannot run {argv[0]}: {err}") from err
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-2000:]
        raise PackageSystemError("command-failed", f"{' '.join(argv[:3])}: {said}")
    return done.stdout


def read_deb(path: Path) -> DebInfo:
    """The control fields of ``path``; ``not-a-package`` when dpkg-deb cannot read it."""
    try:
        out = _run(["dpkg-deb", "--field", str(path), "Package", "Version", "Architecture"], 60)
    except PackageSystemError as err:
        raise PackageSystemError("not-a-package", f"{path} is not a Debian package: {err}") from err
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    try:
        return DebInfo(path, fields["Package"], fields["Version"], fields["Architecture"])
    except KeyError as err:
        raise PackageSystemError("not-a-package", f"{path} has no {err} field") from err


class DebianSystem:
    """The running Debian system: its packages, its units, its journal."""

    def architecture(self) -> str:
        """dpkg's native architecture (``amd64``, ``arm64``)."""
        return _run(["dpkg", "--print-architecture"], 30).strip()

    def installed(self, packages: Sequence[str]) -> dict[str, str]:
        """Installed version of each of ``packages`` that is installed."""
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n", *packages],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        rows = (line.split() for line in out.splitlines())
        return {row[0]: row[1] for row in rows if len(row) == 3 and row[2] == "ii"}

    def install(self, debs: Sequence[Path], timeout: float) -> None:
        """Install (upgrade or downgrade to) ``debs`` with apt; dependencies from the archive."""
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        argv = [*APT_INSTALL, *(str(deb.resolve()) for deb in debs)]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False, env=env
            )
        except subprocess.TimeoutExpired as err:
            raise PackageSystemError("install-timeout", f"apt took over {timeout:.0f} s") from err
        if done.returncode != 0:
            raise PackageSystemError("install-failed", _apt_errors(done.stdout + done.stderr))

    def repack(self, package: str, out_dir: Path, timeout: float) -> Path:
        """Rebuild installed ``package`` as a ``.deb`` in ``out_dir`` (dpkg-repack)."""
        before = set(out_dir.glob(f"{package}_*.deb"))
        # Fast compression: the copy is kept for a rollback, not published.
        env = {**os.environ, "DPKG_DEB_COMPRESSOR_TYPE": "gzip", "DPKG_DEB_COMPRESSOR_LEVEL": "1"}
        try:
            done = subprocess.run(
                ["dpkg-repack", package],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                cwd=out_dir,
                env=env,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise PackageSystemError("repack-failed", f"dpkg-repack {package}: {err}") from err
        made = set(out_dir.glob(f"{package}_*.deb")) - before
        if done.returncode != 0 or len(made) != 1:
            raise PackageSystemError(
                "repack-failed", f"dpkg-repack {package}: {done.stderr[-2000:]}"
            )
        return made.pop()

    def unit_state(self, unit: str) -> UnitState:
        """ActiveState, SubState and NRestarts of ``unit``."""
        props = "ActiveState,SubState,NRestarts,MainPID"
        out = _run(["systemctl", "show", "-p", props, unit], 30)
        shown = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return UnitState(
            shown.get("ActiveState", ""),
            shown.get("SubState", ""),
            _count(shown.get("NRestarts", "")),
            _count(shown.get("MainPID", "")),
        )

    def restart(self, units: Sequence[str], timeout: float) -> None:
        """``systemctl restart`` ``units``; fails when one does not start."""
        _run(["systemctl", "restart", *units], timeout)

    def http_ok(self, url: str, timeout: float) -> tuple[bool, str]:
        """Whether GET ``url`` answers 200, and what it said."""
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                return answer.status == 200, answer.read(4000).decode(errors="replace")
        except urllib.error.HTTPError as err:
            return False, f"HTTP {err.code}: {err.read(4000).decode(errors='replace')}"
        except (OSError, ValueError) as err:
            return False, str(err)

    def command(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        """Run a command of the installed release: its exit code and output (else errors)."""
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return -1, str(err)
        return done.returncode, done.stdout or done.stderr

    def journal(self, message: str, failed: bool) -> None:
        """One line in the system journal, tagged ``callmesh-upgrade``."""
        syslog.openlog("callmesh-upgrade", 0, syslog.LOG_DAEMON)
        syslog.syslog(syslog.LOG_ERR if failed else syslog.LOG_NOTICE, message)
        syslog.closelog()


def _apt_errors(output: str) -> str:
    """The lines of apt's and dpkg's output that say what failed (a unit, a script)."""
    marks = ("E: ", "error", "failed", "Failed")
    lines = [line.strip() for line in output.splitlines() if any(m in line for m in marks)]
    return "; ".join(lines[-4:]) or output.strip()[-500:]


def _count(text: str) -> int:
    return int(text) if text.isdigit() else 0
