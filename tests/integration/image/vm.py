"""A callmesh disk image booted in qemu (UEFI through OVMF), for tests.

The disk is attached with ``snapshot=on`` (the image file is never written), the guest's
only network is qemu's user-mode network with ``restrict=on`` (it reaches neither the host
nor anything beyond; the ways in are forwards from loopback ports to the appliance's API
and, when asked, its SSH server), a second disk may stand for a technician's USB stick,
and the serial console is written to a file the test reads. KVM is used when
``/dev/kvm`` is there, software emulation otherwise. Every wait is bounded and the VM is
killed when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
GUEST_API_PORT = 8080


class Vm:
    """One running guest: its serial log and the host port that reaches its API."""

    def __init__(self, proc: subprocess.Popen[bytes], serial: Path, api_port: int) -> None:
        self.proc = proc
        self.serial = serial
        self.api_port = api_port

    def console(self) -> str:
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""

    def wait_for_console(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` on the serial console, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.console())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        tail = self.console()[-3000:]
        raise AssertionError(f"console never showed {pattern!r} within {timeout}s:\n{tail}")


@dataclass(frozen=True)
class Extras:
    """What a test adds to the guest: a loopback port to its SSH server, a read-only stick."""

    ssh_port: int | None = None
    stick: Path | None = None


def qemu_command(
    disk: Path,
    vars_file: Path,
    serial: Path,
    api_port: int,
    reboots: bool = False,
    extras: Extras = Extras(),
) -> list[str]:
    """The guest; a reboot ends qemu unless ``reboots`` (then the guest restarts in place)."""
    kvm = os.environ.get("CALLMESH_QEMU_ACCEL") == "kvm"
    forward = f"hostfwd=tcp:127.0.0.1:{api_port}-:{GUEST_API_PORT}"
    if extras.ssh_port is not None:
        forward += f",hostfwd=tcp:127.0.0.1:{extras.ssh_port}-:22"
    stick = [] if extras.stick is None else [
        "-drive", f"if=virtio,format=raw,readonly=on,file={extras.stick}",
    ]  # fmt: skip
    return [
        "qemu-system-x86_64",
        "-machine", "q35",
        "-accel", "kvm" if kvm else "tcg,thread=multi",
        "-cpu", "host" if kvm else "max",
        "-smp", "2", "-m", "2048",
        "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,file={vars_file}",
        "-drive", f"if=virtio,format=raw,snapshot=on,file={disk}",
        *stick,
        "-netdev", f"user,id=net0,restrict=on,{forward}",
        "-device", "virtio-net-pci,netdev=net0",
        "-display", "none", "-monitor", "none",
        "-serial", f"file:{serial}",
        *([] if reboots else ["-no-reboot"]),
    ]  # fmt: skip


@contextlib.contextmanager
def booted(
    disk: Path, workdir: Path, api_port: int, reboots: bool = False, extras: Extras = Extras()
) -> Iterator[Vm]:
    """Boot ``disk``; the VM is killed when the block ends, however it ends.

    With ``reboots`` the guest may reboot (the disk snapshot and the serial log go on), as
    A/B boot counting needs.
    """
    vars_file = workdir / "OVMF_VARS.fd"
    shutil.copyfile(OVMF_VARS, vars_file)
    serial = workdir / "serial.log"
    log = (workdir / "qemu.log").open("wb")
    command = qemu_command(disk, vars_file, serial, api_port, reboots, extras)
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield Vm(proc, serial, api_port)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        log.close()
