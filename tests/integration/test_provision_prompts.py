"""`callmesh provision` on a terminal asks for what the flags and file leave open."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

import yaml

from tests.procs import ROOT


def converse(args: list[str], replies: list[bytes], within: float = 60.0) -> str:
    """Run the CLI on a pty, answering each prompt (a line ending in ':') in turn."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.chdir(ROOT)
            os.execv(sys.executable, [sys.executable, "-m", "appliance.cli.main", *args])
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if out.rstrip().endswith(b":") and replies:
                os.write(fd, replies.pop(0))
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    return out.decode(errors="replace")


def test_the_technician_is_asked_for_the_missing_answers(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"site_id: x\nprofile: branch\ndata_dir: {tmp_path / 'data'}\n")
    csv = tmp_path / "ext.csv"
    csv.write_text("number,name\n1001,Reception\n")
    args = ["provision", "-c", str(config), "--networkd-dir", str(tmp_path / "nd"),
            "--no-modem-scan", "--offline", "--region", "eu-west"]  # fmt: skip
    out = converse(args, [b"branch-paris\n", b"Paris office\n", b"Europe/Paris\n",
                          f"{csv}\n".encode()])  # fmt: skip
    assert "site id (as HQ knows it, e.g. branch-berlin): branch-paris" in out
    assert "region (blank: none)" not in out
    assert "site branch-paris (Paris office), Europe/Paris, region eu-west" in out
    written = yaml.safe_load((tmp_path / "conf.d" / "40-provision.yaml").read_text())
    assert written["sip"]["extensions"][0]["number"] == "1001"
