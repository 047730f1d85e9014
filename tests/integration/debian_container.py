"""A fresh Debian 12 root file system, booted with systemd as PID 1 in systemd-nspawn.

``bookworm_rootfs`` builds a minimal bookworm (mmdebstrap, packages from Debian) once
into a cache tarball and unpacks a private copy per container. ``Container`` installs
.deb files with apt (dependencies resolved from Debian), boots the tree with
``systemd-nspawn --boot`` in its own network namespace (loopback only, so the services
use their standard ports without meeting the host's), runs commands inside through
``nsenter`` and powers it off; every wait is bounded and a container that does not stop
is killed, so no machine or mount outlives the test.

nspawn runs with ``--register=no --keep-unit``: the machine running the tests need not
boot systemd itself (no system bus, no machined), only the container does; and with
``--timezone=off``, since a bind-mounted ``/etc/localtime`` makes tzdata's postinst fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

SUITE = "bookworm"
BASE_PACKAGES = ("systemd-sysv",)


def bookworm_rootfs(cache: Path, timeout: float = 480) -> subprocess.Popen[bytes] | Path:
    """The cached base tarball, or the mmdebstrap process that is writing it."""
    tarball = cache / f"{SUITE}-{'-'.join(BASE_PACKAGES)}.tar"
    if tarball.exists():
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    log = (cache / "mmdebstrap.log").open("wb")
    return subprocess.Popen(
        [
            "timeout",
            str(int(timeout)),
            "mmdebstrap",
            "--variant=apt",
            "--mode=root",
            "--format=tar",
            f"--include={','.join(BASE_PACKAGES)}",
            "--skip=cleanup/apt/lists",
            SUITE,
            str(tarball) + ".part",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def finish_rootfs(build: subprocess.Popen[bytes] | Path, cache: Path) -> Path:
    """Wait for mmdebstrap (bounded by its own timeout) and publish the tarball."""
    if isinstance(build, Path):
        return build
    if build.wait() != 0:
        log = (cache / "mmdebstrap.log").read_text(errors="replace")
        raise AssertionError(f"mmdebstrap failed:\n{log[-4000:]}")
    args = build.args
    assert isinstance(args, list)
    part = Path(str(args[-1]))
    tarball = part.with_suffix("")
    part.rename(tarball)
    return tarball


def stop_rootfs(build: subprocess.Popen[bytes] | Path) -> None:
    """Stop an unfinished mmdebstrap (it unmounts and removes its own temporary tree)."""
    if isinstance(build, Path) or build.poll() is not None:
        return
    build.terminate()
    try:
        build.wait(timeout=60)
    except subprocess.TimeoutExpired:
        build.kill()
        build.wait(timeout=30)


def run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` on the host, bounded; output captured."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


class Container:
    """One booted Debian 12 tree in systemd-nspawn."""

    def __init__(self, tarball: Path, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        root.mkdir(parents=True)
        unpacked = run(["tar", "-C", str(root), "-xpf", str(tarball)], timeout=300)
        assert unpacked.returncode == 0, unpacked.stderr
        self.console = root.parent / f"{name}.console"
        self._nspawn: subprocess.Popen[bytes] | None = None

    def install(self, debs: Sequence[Path], timeout: float = 420) -> str:
        """``apt-get install`` the .deb files in the (not yet booted) tree, from Debian."""
        binds = [f"--bind-ro={deb}:/srv/{deb.name}" for deb in debs]
        apt = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
        return self.offline([*apt, *(f"/srv/{deb.name}" for deb in debs)], timeout, binds)

    def offline(self, argv: Sequence[str], timeout: float = 60, options: Sequence[str] = ()) -> str:
        """Run ``argv`` in the tree without booting it (nspawn as a chroot), as root."""
        nspawn = [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--timezone=off",
            "--pipe",
            f"--machine={self.name}-setup",
            "-D",
            str(self.root),
            "--setenv=DEBIAN_FRONTEND=noninteractive",
            *options,
        ]
        done = run([*nspawn, *argv], timeout)
        assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def boot(self, timeout: float = 120) -> None:
        """Boot systemd in the tree and wait until it has finished starting up."""
        argv = [
            "systemd-nspawn",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--timezone=off",
            "--private-network",
            "--console=read-only",
            f"--machine={self.name}",
            "-D",
            str(self.root),
        ]
        with self.console.open("wb") as console:
            self._nspawn = subprocess.Popen(argv, stdout=console, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self.leader() is None:
            self._check_alive(deadline)
            time.sleep(0.2)
        while self._system_state(deadline) not in {"running", "degraded"}:
            self._check_alive(deadline)
            time.sleep(0.5)

    def _system_state(self, deadline: float) -> str:
        """systemd's state once start-up is over; empty while its socket is not up yet."""
        state = self.sh("systemctl is-system-running --wait", timeout=deadline - time.monotonic())
        return state.stdout.strip()

    def leader(self) -> int | None:
        """The container's PID 1 as seen from the host."""
        if self._nspawn is None:
            return None
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self._nspawn.pid}/task/{self._nspawn.pid}/children")
            pids = children.read_text().split()
            return int(pids[0]) if pids else None
        return None

    def sh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside the booted container, as root."""
        leader = self.leader()
        assert leader is not None, "the container is not running"
        argv = ["nsenter", f"--target={leader}", "--all", "--", "/bin/sh", "-c", command]
        return run(argv, timeout=max(timeout, 1))

    def wait_for(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Repeat ``command`` inside until it succeeds; fail with diagnostics if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.sh(command, timeout=30)
            if done.returncode == 0:
                return done
            if time.monotonic() > deadline:
                raise AssertionError(f"{command!r} never succeeded:\n{done}\n{self.diagnose()}")
            time.sleep(0.5)

    def poweroff(self, timeout: float = 90) -> int:
        """Shut systemd down inside; kill the container if it does not stop in time."""
        if self._nspawn is None:
            return 0
        if self._nspawn.poll() is None and self.leader() is not None:
            self.sh("systemctl --no-block poweroff", timeout=30)
        try:
            return self._nspawn.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise
        finally:
            self._nspawn = None

    def diagnose(self) -> str:
        """What systemd inside says about the failed units and the callmesh services."""
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            done = self.sh(
                "systemctl --failed --no-pager; journalctl -b --no-pager -n 150 -u 'callmesh-*'",
                timeout=30,
            )
            return done.stdout + done.stderr
        return self.console.read_text(errors="replace")[-4000:]

    def _check_alive(self, deadline: float) -> None:
        assert self._nspawn is not None
        if self._nspawn.poll() is not None:
            raise AssertionError(f"nspawn exited:\n{self.console.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            self._kill()
            raise AssertionError("the container did not boot in time")

    def _kill(self) -> None:
        leader = self.leader()
        if leader is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(leader, signal.SIGKILL)
        if self._nspawn is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._nspawn.wait(timeout=30)
            if self._nspawn.poll() is None:
                self._nspawn.kill()
                self._nspawn.wait(timeout=30)


@contextlib.contextmanager
def booted(container: Container) -> Iterator[Container]:
    """Boot ``container`` for a ``with`` block; it is always powered off (or killed)."""
    try:
        container.boot()
        yield container
    finally:
        container.poweroff()


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (none may be left behind)."""
    prefix = str(path)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [point for point in points if point == prefix or point.startswith(prefix + "/")]
