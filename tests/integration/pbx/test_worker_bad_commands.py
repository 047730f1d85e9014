"""A media worker answers a bad command line with an ``error`` event carrying the
protocol's ``error_id`` and goes on serving the next one (the real worker process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from drivers.media.protocol import (
    ErrorEvent,
    GsmStats,
    GsmStatsEvent,
    Quit,
    WorkerConfig,
    pack_command,
    parse_event,
)
from tests.integration.pbx.harness import free_udp_tcp_port
from tests.procs import ROOT

BAD_LINES = [
    b"not json\n",
    b'{"cmd":"dial","id":"x"}\n',
    b'{"cmd":"hangup"}\n',
    b'{"cmd":"gsm-answer","channel":"gsm0","voice_port":"/dev/null","rate":"fast"}\n',
]


def test_bad_command_lines_get_their_error_ids_and_the_worker_carries_on(tmp_path: Path) -> None:
    port = free_udp_tcp_port()
    config = WorkerConfig(name="t", host="127.0.0.1", port=port, proxy_host="127.0.0.1",
                          proxy_port=port + 1, domain="test.local",
                          media_host="127.0.0.1")  # fmt: skip
    path = tmp_path / "worker.json"
    path.write_text(config.to_json())
    stdin = b"".join([*BAD_LINES, pack_command(GsmStats()), pack_command(Quit())])
    done = subprocess.run(
        [sys.executable, "-m", "drivers.media.worker", str(path)],
        input=stdin, capture_output=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    lines = done.stdout.decode().splitlines()
    events = [e for e in map(parse_event, lines) if e is not None]
    errors = [e.error_id for e in events if isinstance(e, ErrorEvent)]
    assert errors == [
        "media-line-not-json",
        "media-unknown-record",
        "media-field-missing",
        "media-field-type",
    ]
    assert GsmStatsEvent(channels={}) in events, "the worker went on after the bad lines"
