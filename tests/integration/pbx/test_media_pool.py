"""The media pool on its own: a worker that cannot start fails the pool fast and leaks nothing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from appliance.demo.plan import free_port_run
from appliance.pbx.media import MediaPool, worker_configs
from appliance.pbx.settings import MediaSettings
from tests.integration.pbx.harness import no_daemons_left


async def test_a_worker_whose_port_is_taken_fails_the_start_and_the_others_stop(
    tmp_path: Path,
) -> None:
    base = free_port_run(3, first=21000)
    settings = MediaSettings(workers=3, port_base=base)
    pool = MediaPool(worker_configs(settings, "127.0.0.1", 5060, "test.local"), tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", base + 1))
        with pytest.raises(RuntimeError, match=f"port {base + 1}"):
            await pool.start()
    assert [w.pid for w in pool.workers] == [None, None, None]
    assert no_daemons_left(tmp_path)
