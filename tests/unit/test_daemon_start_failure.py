"""A daemon that exits before it is ready: the error names the exit code and its last log lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.sip.errors import ProcessError
from drivers.sip.supervisor import Daemon


async def never_ready() -> bool:
    return False


async def test_the_error_carries_the_tail_of_the_daemons_log(tmp_path: Path) -> None:
    script = "echo starting; echo 'bind failed: address already in use' >&2; exit 255"
    daemon = Daemon(
        "fake", lambda: ["sh", "-c", script], tmp_path / "fake.log", never_ready,
        tmp_path / "fake.pid", ready_timeout=5,
    )  # fmt: skip
    with pytest.raises(ProcessError) as failed:
        await daemon.start()
    message = str(failed.value)
    assert "(exit code 255)" in message
    assert message.endswith("| starting\n    | bind failed: address already in use")
