"""The agent report: time by state from the state log, calls and talk from queue CDRs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter

from aggregator.queues.agent_sync import AgentStateSync
from aggregator.queues.agents import agent_report
from aggregator.refusals import Refusals
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine
from aggregator.store.schema import agent_states
from drivers.sync.agent_states import AgentStateChange
from tests.queue_cdrs import QueuedCall

H = 3600.0
T = 1_764_028_800.0  # 2025-11-25T00:00:00Z
T_MS = int(T * 1000)


def change(agent: str, state: str, at: float, reason: str = "") -> bytes:
    return AgentStateChange(agent=agent, state=state, reason=reason, at=at).pack()  # type: ignore[arg-type]


# 1003: logged in before the range; on calls, a lunch break, logged out at 08:00.
LOG = [
    change("1003", "available", T - 2 * H),
    change("1003", "on-call", T + 1 * H),
    change("1003", "wrap-up", T + 1.5 * H),
    change("1003", "available", T + 1.6 * H),
    change("1003", "paused", T + 2 * H, "lunch"),
    change("1003", "available", T + 3 * H),
    change("1003", "paused", T + 4 * H, "no-answer"),
    change("1003", "available", T + 4.25 * H),
    change("1003", "on-call", T + 5 * H),
    change("1003", "available", T + 6 * H),
    change("1003", "logged-out", T + 8 * H),
    change("1004", "available", T + 20 * H),  # still logged in at the end of the range
]


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path_factory.mktemp('agents') / 'agg.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def sync(engine: sa.Engine) -> AgentStateSync:
    counter = Counter(
        "refused", "refused", ["site", "stream", "error_id"], registry=CollectorRegistry()
    )
    return AgentStateSync(lambda: engine, Refusals(counter, rate=10, burst=100))


def test_time_by_state_equals_a_hand_count(engine: sa.Engine, sync: AgentStateSync) -> None:
    sync.store("site-a", list(enumerate(LOG, start=1)))
    calls = [QueuedCall(1, "support", "answered", wait_s=5, talk_s=600, start=T + H, agent="1003"),
             QueuedCall(2, "support", "answered", wait_s=5, talk_s=300, start=T + 5 * H,
                        agent="1003")]  # fmt: skip
    CdrStore(engine).ingest("site-a", [(c.n, c.cdr()) for c in calls])
    with engine.connect() as conn:
        rows = agent_report(conn, None, T_MS, T_MS + int(24 * H * 1000), T_MS + int(48 * H * 1000))
    first, second = rows
    assert first == {
        "site_id": "site-a", "agent": "1003",
        "logged_in_s": 8 * H, "available_s": 5.15 * H, "on_call_s": 1.5 * H,
        "wrap_up_s": 0.1 * H, "paused_s": 1.25 * H,
        "paused_by_reason": {"lunch": H, "no-answer": 0.25 * H},
        "occupancy_percent": round(100 * 1.5 / 8, 1), "calls_answered": 2, "talk_s": 900.0,
    }  # fmt: skip
    assert (second["agent"], second["logged_in_s"], second["calls_answered"]) == ("1004", 4 * H, 0)


def test_the_last_state_runs_until_now_inside_an_open_range(
    engine: sa.Engine, sync: AgentStateSync
) -> None:
    sync.store("site-a", list(enumerate(LOG, start=1)))
    with engine.connect() as conn:
        rows = agent_report(conn, None, T_MS, T_MS + int(24 * H * 1000), T_MS + int(21 * H * 1000))
    assert [(r["agent"], r["logged_in_s"]) for r in rows] == [("1003", 8 * H), ("1004", H)]


def test_a_repeated_batch_and_bad_records_add_nothing(
    engine: sa.Engine, sync: AgentStateSync
) -> None:
    batch = list(enumerate(LOG, start=1))
    sync.store("site-a", batch)
    sync.store("site-a", [*batch[:5], (99, b"\xc1"), (100, b"\x80")])
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(agent_states)) == len(LOG)


def test_a_site_scope_leaves_other_sites_out(engine: sa.Engine, sync: AgentStateSync) -> None:
    sync.store("site-a", list(enumerate(LOG, start=1)))
    sync.store("site-b", [(1, change("2001", "available", T))])
    with engine.connect() as conn:
        rows = agent_report(conn, frozenset({"site-b"}), T_MS, T_MS + int(H * 1000), T_MS * 2)
    assert [(r["site_id"], r["agent"], r["logged_in_s"]) for r in rows] == [("site-b", "2001", H)]
