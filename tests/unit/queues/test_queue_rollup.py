"""Per-queue rollups: each queued call's figures, added once however often its CDR comes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.store.cdr_rows import parse_batch
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine
from aggregator.store.queue_rollup import QueueFieldError, queue_call
from aggregator.store.schema import cdrs, queue_rollup, queue_rollup_daily
from tests.queue_cdrs import QueuedCall
from tests.sync_env import T0, make_cdr

HOUR_MS = 3_600_000
T0_MS = int(T0 * 1000)

CALLS = [
    QueuedCall(1, "support", "answered", wait_s=12.0, talk_s=60.0, sl_met=True),
    QueuedCall(2, "support", "answered", wait_s=45.0, talk_s=30.0),
    QueuedCall(3, "support", "abandoned", wait_s=70.0),
    QueuedCall(4, "support", "overflowed", wait_s=300.0),
    QueuedCall(5, "support", "timeout", wait_s=120.0),
    QueuedCall(6, "sales", "interrupted", wait_s=5.0),
    QueuedCall(7, "sales", "callback", wait_s=8.0),
]


def rollup(engine: sa.Engine, table: sa.Table) -> dict[str, dict[str, float]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table)).mappings().all()
    return {row["queue"]: dict(row) for row in rows}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    yield eng
    eng.dispose()


def test_an_answered_call_adds_its_wait_and_talk_time() -> None:
    variables = {"queue": "support", "queue_entered": f"{T0 + 2:.3f}", "queue_wait_s": "12.0",
                 "queue_outcome": "answered", "queue_sl_met": "true"}  # fmt: skip
    call = queue_call("site-a", T0_MS + 500, int((T0 + 74) * 1000), 73.0, variables)
    assert call is not None
    assert (call.queue, call.outcome, call.sl_met) == ("support", "answered", True)
    assert call.wait_s == 12.0
    assert call.talk_s == pytest.approx(60.0)
    assert call.hour_ms == T0_MS - T0_MS % HOUR_MS


def test_an_abandoned_call_waited_until_its_cdr_ended() -> None:
    variables = {"queue": "support", "queue_entered": f"{T0 + 2:.3f}",
                 "queue_outcome": "abandoned"}  # fmt: skip
    call = queue_call("site-a", T0_MS, int((T0 + 72) * 1000), 71.0, variables)
    assert call is not None
    assert call.wait_s == pytest.approx(70.0)
    assert (call.talk_s, call.sl_met) == (0.0, False)


def test_a_cdr_without_queue_fields_is_no_queued_call() -> None:
    assert queue_call("site-a", T0_MS, None, 0.0, {"account": "42"}) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"queue_outcome": "won"},
        {"queue_outcome": "answered", "queue_wait_s": "soon"},
        {"queue_outcome": "answered", "queue_wait_s": "nan"},
        {"queue_outcome": "answered", "queue_wait_s": "-3"},
        {"queue_outcome": "answered", "queue_entered": "1e300"},
        {"queue": "", "queue_outcome": "answered"},
        {"queue": "q" * 65, "queue_outcome": "answered"},
    ],
)
def test_queue_fields_a_site_got_wrong_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(QueueFieldError) as caught:
        queue_call("site-a", T0_MS, None, 0.0, {"queue": "support", **fields})
    assert caught.value.error_id == "record-queue-fields-invalid"


def test_rollup_holds_a_hand_count_of_each_queue(engine: sa.Engine) -> None:
    CdrStore(engine).ingest("site-a", [(c.n, c.cdr()) for c in CALLS])
    support = rollup(engine, queue_rollup)["support"]
    assert {k: support[k] for k in ("offered", "answered", "abandoned", "overflowed",
                                    "timeout", "callback", "interrupted", "sl_met")} == {
        "offered": 5, "answered": 2, "abandoned": 1, "overflowed": 1, "timeout": 1,
        "callback": 0, "interrupted": 0, "sl_met": 1}  # fmt: skip
    assert support["wait_s"] == pytest.approx(57.0)  # answered calls only
    assert support["talk_s"] == pytest.approx(90.0)
    assert support["max_wait_s"] == pytest.approx(300.0)
    sales = rollup(engine, queue_rollup)["sales"]
    assert (sales["offered"], sales["interrupted"], sales["callback"]) == (2, 1, 1)
    assert same_sums(rollup(engine, queue_rollup), rollup(engine, queue_rollup_daily))


def same_sums(hourly: dict[str, dict[str, float]], daily: dict[str, dict[str, float]]) -> bool:
    """The daily rows hold what their (here: one) hours hold."""

    def figures(row: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in row.items() if k not in ("hour_ms", "day_ms")}

    return hourly.keys() == daily.keys() and all(
        figures(hourly[q]) == figures(daily[q]) for q in hourly
    )


def test_redelivered_cdrs_add_nothing(engine: sa.Engine) -> None:
    store = CdrStore(engine)
    docs = [(c.n, c.cdr()) for c in CALLS]
    store.ingest("site-a", docs[:4])
    before = rollup(engine, queue_rollup)
    result = store.ingest("site-a", docs[:4])
    assert (result.inserted, result.duplicates) == (0, 4)
    assert rollup(engine, queue_rollup) == before
    store.ingest("site-a", docs[2:])  # two repeated, three new
    support = rollup(engine, queue_rollup)["support"]
    assert (support["offered"], support["answered"], support["abandoned"]) == (5, 2, 1)
    assert support["max_wait_s"] == pytest.approx(300.0)


def test_the_longest_wait_is_kept_across_batches_and_sites(engine: sa.Engine) -> None:
    store = CdrStore(engine)
    store.ingest("site-a", [(4, CALLS[3].cdr())])  # 300 s
    store.ingest("site-a", [(1, CALLS[0].cdr())])  # 12 s, later: must not lower it
    store.ingest("site-b", [(1, CALLS[0].cdr())])
    with engine.connect() as conn:
        longest = dict(
            conn.execute(sa.select(queue_rollup.c.site_id, queue_rollup.c.max_wait_s)).all()
        )
    assert longest == {"site-a": 300.0, "site-b": 12.0}


def test_a_cdr_with_bad_queue_fields_is_kept_without_its_queue_figures(engine: sa.Engine) -> None:
    bad = make_cdr(9, variables={"queue": "support", "queue_outcome": "won"})
    batch = parse_batch("site-a", [(1, CALLS[0].cdr()), (2, bad)])
    assert batch.queue_errors == ("record-queue-fields-invalid",)
    CdrStore(engine).store_many([batch])
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(cdrs)) == 2
    assert rollup(engine, queue_rollup)["support"]["offered"] == 1
