"""The media pool on its own: a worker that cannot start fails the pool fast and leaks
nothing; the pool measures how long a worker takes to start and to be replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest

from appliance.demo.plan import free_port_run
from appliance.pbx.media import READY_TIMEOUT_S, MediaPool, MediaWorker, worker_configs
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


async def test_the_pool_measures_a_workers_start_and_its_replacement_after_kill_9(
    tmp_path: Path,
) -> None:
    settings = MediaSettings(workers=1, port_base=free_port_run(1, first=21100))
    pool = MediaPool(worker_configs(settings, "127.0.0.1", 5060, "test.local"), tmp_path)
    readies: list[float] = []
    replaced = asyncio.Event()

    def ready(worker: MediaWorker) -> None:
        readies.append(worker.start_s or 0)
        if len(readies) == 2:
            replaced.set()

    pool.subscribe(lambda _w, _e: None, lambda _w: None, ready)
    await pool.start()
    try:
        [worker] = pool.workers
        assert worker.restarts == 0
        first = worker.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await asyncio.wait_for(replaced.wait(), 30)
        assert worker.pid not in (None, first)
        assert all(0 < seconds < READY_TIMEOUT_S for seconds in readies)
        assert worker.replacement_s is not None
        # The replacement includes the backoff (0.2 s with ±20 % jitter) and a start.
        assert 0.16 + readies[1] <= worker.replacement_s < 30
    finally:
        await pool.stop()
    assert no_daemons_left(tmp_path)
