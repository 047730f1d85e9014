"""What a CDR adds to its callback's row, and the call back fields a site may not send."""

from __future__ import annotations

import pytest

from aggregator.store.cdr_rows import parse_batch
from aggregator.store.queue_callbacks import CallbackRecord, callback_record, fold
from aggregator.store.queue_rollup import QueueFieldError
from tests.queue_cdrs import QueuedCall, call_back
from tests.sync_env import T0

TAKEN = {"queue": "support", "queue_outcome": "callback"}


def back(**fields: str) -> dict[str, str]:
    return {"callback_of": "q-1", "callback_try": "1", "callback_status": "retry"} | fields


def test_the_queued_call_and_each_try_add_to_one_callback() -> None:
    taken = callback_record("a", "q-1", "+555", 1000, TAKEN)
    first = callback_record("a", "b-1", "1003", 2000, back())
    answered = back(callback_try="2", callback_status="answered")
    second = callback_record("a", "b-2", "1003", 3000, answered)
    assert taken is not None
    assert first is not None
    assert second is not None
    merged = CallbackRecord("a", "q-1", "+555", 1000, 2, "answered", 3000)
    assert fold([second, taken, first]) == [merged]


def test_a_cdr_of_no_callback_adds_nothing() -> None:
    abandoned = {"queue": "support", "queue_outcome": "abandoned"}
    assert callback_record("a", "c-1", "+555", 1000, abandoned) is None
    assert callback_record("a", "", "+555", 1000, TAKEN) is None  # no Call-ID: none can name it


@pytest.mark.parametrize(
    "fields",
    [back(callback_try="0"), back(callback_try="x"), back(callback_try="101"),
     back(callback_try="٣"), back(callback_status="lost"), back(callback_of="")],
)  # fmt: skip
def test_bad_call_back_fields_are_refused_with_an_error_id(fields: dict[str, str]) -> None:
    with pytest.raises(QueueFieldError) as refused:
        callback_record("a", "b-1", "1003", 2000, fields)
    assert refused.value.error_id == "record-callback-fields-invalid"


def test_a_bad_call_back_refuses_its_callback_figures_only() -> None:
    taken = QueuedCall(1, "support", "callback", wait_s=30, caller="+555")
    bad = call_back(2, taken, 1, "lost", T0 + 60)
    batch = parse_batch("a", [(1, taken.cdr()), (2, bad)])
    assert len(batch.rows) == 2
    assert batch.queue_errors == ("record-callback-fields-invalid",)
    assert [r.call_id for r in batch.callbacks.values()] == [taken.call_id]
