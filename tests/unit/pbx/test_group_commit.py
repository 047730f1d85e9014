"""Group commit of call records: one fsync per window, nothing reported before it is durable."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import pytest

from appliance.pbx.calls import CallService
from appliance.pbx.cdr import CdrBuilder
from appliance.store import Outbox, Store, StoreFullError
from drivers.sip.events import CallEvent
from tests.unit.pbx.call_events import call_event

T0 = 1_790_000_000.0
WINDOW_PASSED_S = 0.1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


@pytest.fixture
def commits(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every write transaction the store opens, counted."""
    counted: list[int] = []
    write = store.write

    def counting() -> Any:
        counted.append(1)
        return write()

    monkeypatch.setattr(store, "write", counting)
    return counted


@pytest.fixture
def calls(store: Store) -> CallService:
    return CallService(store, CdrBuilder("site-a", {"1001": "Alice", "1002": "Bob"}))


def ev(kind: str, call: str, at: float = 0.0, **extra: Any) -> CallEvent:
    return call_event({"event": kind, "call_id": call, "from_user": "1001", "from_tag": "ft",
            "to_user": "1002", "request_user": "1002", "ts": str(T0 + at), **extra})  # fmt: skip


def outbox_cdrs(calls: CallService) -> list[dict[str, Any]]:
    return [msgpack.unpackb(p, raw=False) for _, p in calls.outbox.read_batch()]


class RefusingOutbox(Outbox):
    def append_in(self, txn: Any, payloads: Sequence[bytes]) -> list[int]:
        raise StoreFullError("map full")


async def test_the_events_of_one_window_share_one_commit(
    calls: CallService, commits: list[int]
) -> None:
    calls.handle(ev("invite", "c1"))
    calls.handle(ev("invite", "c2"))
    calls.handle(ev("answer", "c1", at=1))
    cdr = calls.handle(ev("end", "c1", at=9, reason="caller"))
    assert cdr is not None
    assert commits == []
    assert calls.open.get("c2") is None
    await asyncio.sleep(WINDOW_PASSED_S)
    assert len(commits) == 1
    assert calls.open.get("c1") is None
    assert calls.open.get("c2")["callee"]["number"] == "1002"
    assert outbox_cdrs(calls) == [cdr]
    assert calls.done.get("c1")["answered"] is True


async def test_later_events_of_a_call_see_its_staged_record(
    calls: CallService, commits: list[int]
) -> None:
    calls.handle(ev("invite", "c1"))
    calls.handle(ev("answer", "c1", at=2))
    cdr = calls.handle(ev("end", "c1", at=12, reason="callee"))
    assert cdr is not None
    assert (cdr["disposition"], cdr["billable_s"], cdr["hangup_side"]) == ("answered", 10, "callee")
    assert calls.handle(ev("answer", "c1", at=13)) is None
    await asyncio.sleep(WINDOW_PASSED_S)
    assert len(commits) == 1
    assert [c["cdr_id"] for c in outbox_cdrs(calls)] == [cdr["cdr_id"]]


async def test_changes_are_reported_only_once_durable(calls: CallService) -> None:
    seen: list[tuple[str, str, bool]] = []

    def durable(kind: str, doc: dict[str, Any]) -> None:
        if kind == "call.ended":
            stored = any(c["cdr_id"] == doc["cdr_id"] for c in outbox_cdrs(calls))
        else:
            stored = calls.open.get(doc["call_id"]) is not None
        seen.append((kind, doc["call_id"], stored))

    calls.on_change = durable
    calls.handle(ev("invite", "c1"))
    calls.handle(ev("invite", "c2"))
    calls.handle(ev("answer", "c2", at=1))
    calls.handle(ev("failed", "c1", at=3, code=486, reason="busy"))
    assert seen == []
    await asyncio.sleep(WINDOW_PASSED_S)
    assert seen == [
        ("call.started", "c1", False),  # c1 ended in the same commit: its record is gone
        ("call.started", "c2", True),
        ("call.answered", "c2", True),
        ("call.ended", "c1", True),
    ]


async def test_a_full_window_commits_at_once(
    calls: CallService, commits: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls.group, "_max", 3)
    for n in range(3):
        calls.handle(ev("invite", f"c{n}"))
    assert len(commits) == 1
    assert len(calls.live_calls()) == 3
    assert calls.group.pending == 0


async def test_a_failed_group_commit_writes_each_record_alone(
    calls: CallService, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    calls.handle(ev("invite", "c1"))
    await asyncio.sleep(WINDOW_PASSED_S)
    ended: list[str] = []
    calls.on_change = lambda kind, doc: ended.append(f"{kind} {doc['call_id']}")
    healthy, calls.outbox = calls.outbox, RefusingOutbox(store, "cdr")
    calls.handle(ev("invite", "c2"))
    cdr = calls.handle(ev("failed", "c1", at=3, code=486, reason="busy"))
    assert cdr is not None
    await asyncio.sleep(WINDOW_PASSED_S)
    assert ended == ["call.started c2", "call.ended c1"]
    assert calls.write_failures == 1
    [critical] = [r for r in caplog.records if getattr(r, "error_id", "") == "cdr-write-failed"]
    assert critical.levelno == logging.CRITICAL
    assert calls.open.get("c1")["closing"] == cdr
    assert calls.open.get("c2") is not None
    calls.outbox = healthy
    resent = calls.interrupt_all("appliance-restart")
    assert [c["call_id"] for c in resent] == ["c1", "c2"]
    assert resent[0] == cdr
    assert [c["call_id"] for c in outbox_cdrs(calls)] == ["c1", "c2"]
    assert calls.interrupt_all("appliance-restart") == []


async def test_an_api_hang_up_is_durable_when_it_returns(
    calls: CallService, commits: list[int]
) -> None:
    calls.handle(ev("invite", "c1"))
    calls.handle(ev("answer", "c1", at=1))
    cdr = calls.close("c1", "answered", "api-hangup")
    assert cdr is not None
    assert outbox_cdrs(calls) == [cdr]
    assert len(commits) == 2  # the staged events, then the hang-up's CDR
    assert calls.group.pending == 0


async def test_a_restart_closes_every_open_call_in_one_commit(
    calls: CallService, commits: list[int]
) -> None:
    for n in range(20):
        calls.handle(ev("invite", f"c{n}"))
    await asyncio.sleep(WINDOW_PASSED_S)
    before = len(commits)
    written = calls.interrupt_all("appliance-restart")
    assert len(written) == 20
    assert len(commits) - before == 1
    assert len(outbox_cdrs(calls)) == 20


def test_without_an_event_loop_each_event_commits_before_handle_returns(
    calls: CallService, commits: list[int]
) -> None:
    calls.handle(ev("invite", "c1"))
    assert len(commits) == 1
    assert calls.open.get("c1") is not None
