"""The store's own pruning task: it runs on its own schedule, recording or not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.pbx.calls import CallService
from appliance.pbx.cdr import CdrBuilder
from appliance.store import Store
from appliance.store.pruning import Pruner
from tests.unit.pbx.call_events import call_event

T0 = 1_790_000_000.0
YEAR = 365 * 86400


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


def finished_call(calls: CallService, call_id: str) -> None:
    base = {"call_id": call_id, "from_user": "1001", "to_user": "1002", "request_user": "1002"}
    calls.handle(call_event({**base, "event": "invite", "ts": str(T0)}))
    calls.handle(
        call_event({**base, "event": "failed", "code": 486, "reason": "busy", "ts": str(T0 + 1)})
    )


async def test_the_pruner_runs_every_job_at_start_and_then_periodically() -> None:
    passes: list[float] = []
    third = asyncio.Event()
    loop = asyncio.get_running_loop()

    def job(now: float) -> int:
        passes.append(now)
        if len(passes) == 3:
            loop.call_soon_threadsafe(third.set)
        return 0

    pruner = Pruner(every_s=0.05)
    pruner.add("count", job)
    await pruner.start()
    try:
        await asyncio.wait_for(third.wait(), 5)
    finally:
        await pruner.stop()
    assert passes == sorted(passes)


def test_finished_calls_are_pruned_with_no_recording_service(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    calls = CallService(store, CdrBuilder("site-a", {}))
    for n in range(3):
        finished_call(calls, f"c{n}")
    pruner = Pruner(every_s=600)
    pruner.add("calls", calls.prune)

    def broken(now: float) -> int:
        raise RuntimeError("disk gone")

    pruner.add("broken", broken)
    assert pruner.run_once(T0) == {"calls": 0, "broken": -1}
    assert pruner.run_once(T0 + YEAR) == {"calls": 6, "broken": -1}
    assert list(calls.done.items()) == []
    assert list(calls.index.items()) == []
    assert "pruning failed; tried again next pass" in caplog.text
