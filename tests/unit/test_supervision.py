"""The supervisor keeps a task alive: restarts after errors, backoff with jitter, health."""

from __future__ import annotations

import asyncio

import pytest

from drivers.daemon.supervision import Supervisor


async def test_a_failing_task_is_logged_counted_and_started_again_until_it_keeps_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []
    counted: list[int] = []
    running = asyncio.Event()

    async def target() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise KeyError(f"bad snapshot {len(runs)}")
        running.set()
        await asyncio.sleep(3600)

    supervisor = Supervisor("worker", 0.01, 0.02, lambda: counted.append(1))
    assert supervisor.check(60) == (True, "running")
    task = asyncio.create_task(supervisor.run(target))
    await asyncio.wait_for(running.wait(), 5)
    assert (len(runs), supervisor.restarts, len(counted)) == (3, 2, 2)
    assert supervisor.last_error == "KeyError: 'bad snapshot 2'"
    ok, detail = supervisor.check(60)
    assert not ok
    assert detail.startswith("restarted 2 times, last 0s ago after KeyError")
    assert supervisor.check(0)[0]
    assert "worker failed; restarting it" in caplog.text
    assert "Traceback" in caplog.text
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_restart_delays_grow_to_the_maximum_with_jitter() -> None:
    supervisor = Supervisor("worker", 1.0, 8.0)
    for failures, base in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (30, 8.0)):
        delays = {supervisor.backoff(failures) for _ in range(50)}
        assert all(0.5 * base <= d < 1.5 * base for d in delays)
        assert len(delays) > 1
