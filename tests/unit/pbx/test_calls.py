"""Call events to CDRs: one CDR per call, interrupted after crashes, never doubled."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import pytest

from appliance.pbx.calls import CallService
from appliance.pbx.cdr import CdrBuilder, recording_id, time_ordered_id
from appliance.store import Outbox, Store, StoreFullError
from drivers.sip.events import CallEvent, EventError, Failed
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


def ev(kind: str, call: str = "c1", at: float = 0.0, **extra: Any) -> CallEvent:
    return call_event({"event": kind, "call_id": call, "from_user": "1001", "from_tag": "ft",
            "to_user": "1002", "request_user": "1002", "ts": str(T0 + at), **extra})  # fmt: skip


def cdrs(calls: CallService) -> list[dict[str, Any]]:
    return [msgpack.unpackb(p, raw=False) for _, p in calls.outbox.read_batch()]


def test_answered_call_gives_one_cdr_with_billable_seconds(calls: CallService) -> None:
    calls.handle(ev("invite"))
    calls.handle(ev("answer", at=2))
    cdr = calls.handle(ev("end", at=12.2, reason="callee"))
    assert cdr is not None
    assert cdrs(calls) == [cdr]
    assert cdr["disposition"] == "answered"
    assert cdr["hangup_side"] == "callee"
    assert (cdr["duration_s"], cdr["billable_s"]) == (12.2, 11)
    assert cdr["start"] == "2026-09-21T14:13:20.000Z"
    assert cdr["caller"] == {"number": "1001", "extension": "1001", "name": "Alice"}
    assert cdr["recording_id"] == recording_id("site-a", cdr["cdr_id"])
    assert calls.live_calls() == []


def test_events_apply_to_the_open_call_without_reading_it_back_from_the_store(
    calls: CallService, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls.handle(ev("invite"))
    calls.update("c1", recording="on-demand")
    reads: list[str] = []
    monkeypatch.setattr(calls.open, "get", lambda key: reads.append(key))
    calls.handle(ev("answer", at=2))
    cdr = calls.handle(ev("end", at=12, reason="caller"))
    assert reads == []
    assert cdr is not None
    assert (cdr["answer"], cdr["hangup_side"]) == ("2026-09-21T14:13:22.000Z", "caller")
    assert cdrs(calls) == [cdr]
    monkeypatch.undo()
    assert calls.open.get("c1") is None


def test_variables_reported_before_the_invite_event_reach_the_cdr(calls: CallService) -> None:
    calls.add_variables("c1", {"queue": "support", "queue_outcome": "abandoned"})
    calls.handle(ev("invite"))
    calls.add_variables("c1", {"queue_position": "1"})
    calls.handle(ev("answer", at=1))
    cdr = calls.handle(ev("end", at=5, reason="caller"))
    assert cdr is not None
    assert cdr["variables"] == {"queue": "support", "queue_outcome": "abandoned",
                                "queue_position": "1"}  # fmt: skip


def test_a_reused_call_id_gets_a_new_recording_id_per_call(calls: CallService) -> None:
    ids = []
    for start in (0, 100):
        calls.handle(ev("invite", at=start))
        calls.handle(ev("answer", at=start + 1))
        cdr = calls.handle(ev("end", at=start + 5, reason="caller"))
        assert cdr is not None
        ids.append(cdr["recording_id"])
    assert ids[0] != ids[1]
    assert calls.done.get("c1")["cdr_id"] == cdrs(calls)[1]["cdr_id"]


@pytest.mark.parametrize(
    ("reason", "code", "disposition", "side"),
    [
        ("busy", 486, "busy", "callee"),
        ("no-answer", 408, "no-answer", "system"),
        ("cancelled", 487, "cancelled", "caller"),
        ("failed", 503, "failed", "callee"),
    ],
)
def test_failed_calls_map_to_dispositions(
    calls: CallService, reason: str, code: int, disposition: str, side: str
) -> None:
    calls.handle(ev("invite"))
    cdr = calls.handle(ev("failed", at=3, code=code, reason=reason))
    assert cdr is not None
    assert (cdr["disposition"], cdr["hangup_side"]) == (disposition, side)
    assert cdr["hangup_cause"]["sip_code"] == code
    assert cdr["recording_id"] is None


def test_rejected_call_gets_a_failed_cdr_without_an_open_record(calls: CallService) -> None:
    cdr = calls.handle(ev("rejected", code=404, reason="unknown-extension", request_user="19"))
    assert cdr is not None
    assert cdr["callee"] == {"number": "19", "extension": None, "name": ""}
    assert cdr["direction"] == "internal"


def test_open_calls_become_interrupted_once(calls: CallService) -> None:
    calls.handle(ev("invite", call="a"))
    calls.handle(ev("answer", call="a", at=1))
    calls.handle(ev("invite", call="b"))
    written = calls.interrupt_all("appliance-restart")
    assert sorted(c["call_id"] for c in written) == ["a", "b"]
    assert {c["disposition"] for c in written} == {"interrupted"}
    assert calls.interrupt_all("appliance-restart") == []
    assert calls.handle(ev("end", call="a", at=5)) is None
    assert len(cdrs(calls)) == 2


def test_crash_between_outbox_append_and_cleanup_does_not_double(calls: CallService) -> None:
    calls.handle(ev("invite"))
    call = calls.open.get("c1")
    cdr = calls.builder.from_failed(call, Failed(call_id="c1", ts=T0, code=486, reason="busy"))
    call["closing"] = cdr
    calls.open.put("c1", call)
    calls.outbox.append(msgpack.packb(cdr, use_bin_type=True))
    assert calls.interrupt_all("appliance-restart") == []
    assert cdrs(calls) == [cdr]


def test_crash_before_outbox_append_resends_the_same_cdr(calls: CallService) -> None:
    calls.handle(ev("invite"))
    call = calls.open.get("c1")
    cdr = calls.builder.from_failed(call, Failed(call_id="c1", ts=T0, code=486, reason="busy"))
    call["closing"] = cdr
    calls.open.put("c1", call)
    assert calls.interrupt_all("appliance-restart") == [cdr]
    assert cdrs(calls) == [cdr]


class RefusingOutbox(Outbox):
    """An outbox whose appends fail, as on a full map (the open record still takes writes)."""

    def append_in(self, txn: Any, payloads: Sequence[bytes]) -> list[int]:
        raise StoreFullError("map full")


def test_a_cdr_whose_commit_fails_is_kept_in_its_open_record_and_resent_once(
    calls: CallService, store: Store
) -> None:
    calls.handle(ev("invite"))
    healthy, calls.outbox = calls.outbox, RefusingOutbox(store, "cdr")
    cdr = calls.handle(ev("failed", code=486, reason="busy"))
    assert cdr is not None
    assert calls.write_failures == 1
    assert calls.open.get("c1")["closing"] == cdr
    calls.outbox = healthy
    assert calls.interrupt_all("appliance-restart") == [cdr]
    assert cdrs(calls) == [cdr]
    assert calls.interrupt_all("appliance-restart") == []


def test_a_finished_call_is_one_commit(calls: CallService, store: Store) -> None:
    calls.handle(ev("invite"))
    calls.handle(ev("answer", at=1))
    commits = []
    write = store.write

    def counted() -> Any:
        commits.append(1)
        return write()

    store.write = counted  # type: ignore[method-assign]
    calls.handle(ev("end", at=9, reason="caller"))
    assert len(commits) == 1
    assert calls.open.get("c1") is None
    assert [c["call_id"] for c in cdrs(calls)] == ["c1"]


def test_media_relay_loss_turns_an_answered_call_interrupted(calls: CallService) -> None:
    calls.handle(ev("invite"))
    calls.handle(ev("answer", at=1))
    assert calls.mark_media_interrupted("media-relay-restart") == 1
    cdr = calls.handle(ev("end", at=9, reason="caller"))
    assert cdr is not None
    assert cdr["disposition"] == "interrupted"
    assert cdr["hangup_cause"]["reason"] == "media-relay-restart"
    assert cdr["recording_id"] is not None


def test_search_filters_and_pages(calls: CallService) -> None:
    for n in range(5):
        calls.handle(ev("invite", call=f"c{n}", at=n))
        calls.handle(ev("failed", call=f"c{n}", at=n + 1, code=486, reason="busy"))
    calls.handle(ev("rejected", call="r", at=9, code=404, reason="unknown-extension"))
    page, cursor = calls.search(disposition="busy", limit=3)
    assert [c["call_id"] for c in page] == ["c0", "c1", "c2"]
    assert cursor is not None
    page, cursor = calls.search(disposition="busy", limit=3, cursor=cursor)
    assert ([c["call_id"] for c in page], cursor) == (["c3", "c4"], None)
    assert len(calls.search(number="1002")[0]) == 6


def test_events_without_call_or_for_unknown_calls_are_ignored(calls: CallService) -> None:
    with pytest.raises(EventError, match="without call_id"):
        call_event({"event": "end"})
    assert calls.handle(ev("answer", call="ghost")) is None
    with pytest.raises(EventError, match="unknown Kamailio event 'bogus'"):
        ev("bogus")
    assert cdrs(calls) == []


def test_prune_forgets_old_finished_calls(calls: CallService) -> None:
    calls.handle(ev("invite"))
    calls.handle(ev("failed", code=486, reason="busy"))
    assert calls.prune(T0) == 0
    assert calls.prune(T0 + 365 * 86400) == 2


def test_changes_are_reported_for_webhooks(calls: CallService) -> None:
    seen: list[tuple[str, str]] = []
    calls.on_change = lambda kind, doc: seen.append((kind, doc["call_id"]))
    calls.handle(ev("invite"))
    calls.handle(ev("answer", at=1))
    calls.handle(ev("end", at=2, reason="caller"))
    assert seen == [("call.started", "c1"), ("call.answered", "c1"), ("call.ended", "c1")]


def test_cdr_ids_are_uuid7_and_sort_by_time() -> None:
    first = time_ordered_id(1_764_000_000_000)
    later = time_ordered_id(1_764_000_000_001)
    parsed = uuid.UUID(first)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert first < later
    assert first != time_ordered_id(1_764_000_000_000)


def test_ids_from_the_clock_grow_within_one_millisecond() -> None:
    ids = [time_ordered_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {(uuid.UUID(i).version, uuid.UUID(i).variant) for i in ids} == {(7, uuid.RFC_4122)}
