"""A full store never swallows a CDR: it is logged whole, counted, and calls go on."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from appliance.pbx.calls import CallService
from appliance.pbx.cdr import CdrBuilder
from appliance.store import Store
from drivers.sip.events import CallEvent
from tests.store_fill import full
from tests.unit.pbx.call_events import call_event

T0 = 1_790_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


@pytest.fixture
def calls(store: Store) -> CallService:
    return CallService(store, CdrBuilder("site-a", {"1001": "Alice", "1002": "Bob"}))


def ev(kind: str, call: str, at: float = 0.0, **extra: Any) -> CallEvent:
    return call_event({"event": kind, "call_id": call, "from_user": "1001", "from_tag": "ft",
            "to_user": "1002", "request_user": "1002", "ts": str(T0 + at), **extra})  # fmt: skip


def outbox_call_ids(calls: CallService) -> list[str]:
    return [msgpack.unpackb(p, raw=False)["call_id"] for _, p in calls.outbox.read_batch()]


def test_a_cdr_the_full_store_refuses_is_logged_whole_and_counted(
    calls: CallService, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ended: list[str] = []
    calls.on_change = lambda kind, doc: ended.append(f"{kind} {doc['call_id']}")
    calls.handle(ev("invite", "c1"))
    calls.handle(ev("answer", "c1", at=2))
    with full(store):
        cdr = calls.handle(ev("end", "c1", at=30, reason="caller"))
    assert cdr is not None
    assert calls.write_failures == 1
    assert ended[-1] == "call.ended c1"
    [record] = [r for r in caplog.records if getattr(r, "error_id", "") == "cdr-write-failed"]
    assert record.levelno == logging.CRITICAL
    assert json.loads(record.__dict__["cdr"]) == json.loads(json.dumps(cdr, default=str))
    assert "CDR NOT STORED" in record.getMessage()
    assert outbox_call_ids(calls) == []


def test_a_call_that_starts_while_the_store_is_full_still_gets_its_cdr(
    calls: CallService, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with full(store, grow=True):
        calls.handle(ev("invite", "c2"))
        calls.handle(ev("answer", "c2", at=1))
    assert any(getattr(r, "error_id", "") == "call-not-stored" for r in caplog.records)
    cdr = calls.handle(ev("end", "c2", at=20, reason="callee"))
    assert cdr is not None
    assert cdr["disposition"] == "answered"
    assert calls.write_failures == 0
    assert outbox_call_ids(calls) == ["c2"]
