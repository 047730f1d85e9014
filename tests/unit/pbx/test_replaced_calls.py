"""A call taken over with Replaces (a call anchored on a media worker, a three-way): the
replaced call's CDR says so, the legs that took it over name it, and HQ's rollups count
the conversation's call once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from aggregator.store.cdr_rows import parse_batch
from appliance.pbx.calls import CallService
from appliance.pbx.cdr import CdrBuilder
from appliance.store import Store
from drivers.sip.events import Answer, End, Invite

T0 = 1796625507.0


@pytest.fixture
def calls(tmp_path: Path) -> Iterator[CallService]:
    store = Store.open(tmp_path / "store", 16)
    yield CallService(store, CdrBuilder("site-a", {"1001": "Alice", "1003": "Carol"}))
    store.close()


def leg(calls: CallService, call_id: str, to: str, at: float, replaces: str = "") -> None:
    """An answered call from 1003 to ``to`` (with Replaces of ``replaces``)."""
    calls.handle(Invite(call_id=call_id, ts=at, from_user="1003", from_tag=f"{call_id}-f",
                        to_user=to, request_user=to, dialled=to, replaces=replaces))  # fmt: skip
    calls.handle(Answer(call_id=call_id, ts=at + 1, to_tag=f"{call_id}-t"))


def cdrs(calls: CallService) -> dict[str, dict[str, Any]]:
    calls.flush()
    docs = [msgpack.unpackb(p, raw=False) for _, p in calls.outbox.read_batch()]
    return {doc["call_id"]: doc for doc in docs}


def test_the_replaced_call_ends_replaced_and_the_legs_that_took_it_over_name_it(
    calls: CallService,
) -> None:
    leg(calls, "direct", "1001", T0)
    leg(calls, "to-agent", "1003", T0 + 10, replaces="direct")
    leg(calls, "to-other", "1001", T0 + 10, replaces="direct")
    leg(calls, "stranger", "1001", T0 + 10, replaces="no-such-call")
    for call_id in ("direct", "to-agent", "to-other", "stranger"):
        calls.handle(End(call_id=call_id, ts=T0 + 30, reason="caller"))
    done = cdrs(calls)
    assert done["direct"]["hangup_cause"] == {"sip_code": 200, "reason": "replaced"}
    assert done["to-other"]["hangup_cause"]["reason"] == "normal-clearing"
    assert done["to-agent"]["variables"]["replaces"] == "direct"
    assert done["to-other"]["conversation_id"] == done["direct"]["conversation_id"]
    assert "replaces" not in (done["stranger"].get("variables") or {})
    batch = parse_batch("site-a", [(i, msgpack.packb(d)) for i, d in enumerate(done.values())])
    ((_, _, _, _), site), *_ = [(k, t) for k, t in batch.totals.items() if k[2] == "site"]
    calls_counted, answered, duration, _billable = site
    assert (calls_counted, answered) == (2, 2), "the direct call and the stranger's"
    assert duration == pytest.approx(30 + 20 * 3), "time counts on every leg"
