"""GroupCommit: staged writes share one commit; follow-ups run after it, each on its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store import GroupCommit, Staged, StateStore, Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


def put(store: Store, key: str, done: list[str]) -> Staged:
    db = store.db("state")

    def write(txn: Any) -> None:
        txn.put(key.encode(), b"\xa1x", db=db)

    def committed() -> None:
        done.append(f"committed {key}")

    def alone() -> None:
        done.append(f"alone {key}")

    return Staged(write, committed, alone)


async def test_writes_staged_in_a_window_commit_together(store: Store) -> None:
    group, done = GroupCommit(store, 0.005, 100), list[str]()
    for key in ("a", "b", "c"):
        group.stage(put(store, key, done))
    assert (group.pending, group.commits, done) == (3, 0, [])
    await asyncio.sleep(0.1)
    assert group.commits == 1
    assert done == ["committed a", "committed b", "committed c"]
    assert [k for k, _ in StateStore(store).items()] == ["a", "b", "c"]


async def test_a_follow_up_that_raises_is_logged_and_the_others_still_run(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    group, done = GroupCommit(store, 0.0, 100), list[str]()

    def broken() -> None:
        raise RuntimeError("boom")

    group.stage(Staged(lambda txn: None, broken, broken))
    group.stage(put(store, "b", done))
    group.flush()
    assert done == ["committed b"]
    [record] = [r for r in caplog.records if getattr(r, "error_id", "") == "group-follow-up"]
    assert record.levelno == logging.ERROR


def test_a_window_must_be_bounded_sensibly(store: Store) -> None:
    with pytest.raises(ValueError, match="max_writes"):
        GroupCommit(store, 0.002, 0)
