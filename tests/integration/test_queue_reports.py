"""Queue and agent reports end to end: an appliance's outboxes synced into SQLite and
PostgreSQL, read back through HQ's API and `callmesh hq`, equal to a hand count."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from aggregator.store import migrate
from aggregator.store.db import migrated_engine
from aggregator.store.queue_rollup import BUCKET_COLUMNS
from aggregator.store.schema import queue_rollup, queue_rollup_daily, queue_unanswered
from appliance.contact.state_log import AGENT_OUTBOX
from appliance.store import Outbox, Store
from drivers.sync.agent_states import AgentStateChange
from tests import queue_local
from tests import queue_migration as migrated
from tests.integration.test_sync import start_aggregator, start_appliance
from tests.pg import fresh_database, postgres_server
from tests.procs import ROOT
from tests.queue_cdrs import QueuedCall, call_back
from tests.sync_env import T0, TOKEN, SyncEnv, make_cdr, make_env, wait_for

pytestmark = pytest.mark.timeout(300)
SPAN: dict[str, object] = {"from": "2025-11-24", "to": "2025-11-26"}
H = 3600.0
# T0 is 2025-11-24T16:00Z: the calls fall on the 24th and the 25th (UTC).
CALLS = [
    QueuedCall(10_000 + n, ("support", "sales")[n % 2],
               ("answered", "answered", "abandoned", "overflowed", "timeout", "answered")[n % 6],
               wait_s=float(3 + n % 40), talk_s=float(30 + n % 90), sl_met=n % 3 == 0,
               start=T0 + n * 200, agent=("1003", "1004")[n % 4 // 2])
    for n in range(400)
]  # fmt: skip
# Two lost callers who then took a callback offer: +8610001's fails at both tries,
# +8610002's is answered at the first.
STORY = [
    QueuedCall(
        20_000,
        "support",
        "abandoned",
        wait_s=50,
        start=T0 + 110,
        caller="+8610001",
        callback_offered=True,
    ),
    QueuedCall(20_001, "support", "callback", wait_s=40, start=T0 + 400, caller="+8610001"),
    QueuedCall(20_002, "support", "abandoned", wait_s=20, start=T0 + 510, caller="+8610002"),
    QueuedCall(20_003, "support", "callback", wait_s=40, start=T0 + 610, caller="+8610002"),
]
BACKS = [call_back(20_100, STORY[1], 1, "retry", T0 + 700),
         call_back(20_101, STORY[1], 2, "failed", T0 + 1000),
         call_back(20_102, STORY[3], 1, "answered", T0 + 900)]  # fmt: skip
QUEUED = sorted(CALLS + STORY, key=lambda c: c.start)
PLAIN = 300  # CDRs that passed no queue
LOG = [
    ("1003", "available", "", T0),
    ("1003", "paused", "lunch", T0 + H),
    ("1003", "available", "", T0 + 2 * H),
    ("1003", "logged-out", "", T0 + 6 * H),
    ("1004", "available", "", T0 + 3 * H),
    ("1004", "logged-out", "", T0 + 5 * H),
]


def fill(env: SyncEnv) -> None:
    """The appliance's outboxes as the PBX and the contact centre leave them."""
    store = Store.open(env.root / "app" / "store")
    try:
        cdrs = [call.cdr() for call in QUEUED] + BACKS + [make_cdr(n) for n in range(PLAIN)]
        Outbox(store, "cdr").append_many(cdrs)
        changes = [AgentStateChange(agent=a, state=s, reason=r, at=at).pack()  # type: ignore[arg-type]
                   for a, s, r, at in LOG]  # fmt: skip
        Outbox(store, AGENT_OUTBOX).append_many([*changes, b"\xc1 not msgpack"])
    finally:
        store.close()


def hand_count(day: str) -> dict[str, dict[str, object]]:
    """Per queue: offered, answered, abandoned and the longest wait of calls on ``day``."""
    counted: dict[str, dict[str, object]] = {}
    for queue in ("support", "sales"):
        mine = [c for c in QUEUED if c.queue == queue and _day(c.start) == day]
        answered = [c for c in mine if c.outcome == "answered"]
        counted[queue] = {
            "offered": len(mine),
            "answered": len(answered),
            "abandoned": sum(c.outcome == "abandoned" for c in mine),
            "overflowed": sum(c.outcome == "overflowed" for c in mine),
            "asa_s": round(sum(c.wait_s for c in answered) / len(answered), 1),
            "longest_wait_s": max(c.wait_s for c in mine),
        }
    return counted


def _day(epoch_s: float) -> str:
    return "2025-11-24" if epoch_s < 1_764_028_800 else "2025-11-25"


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def synced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_server: str
) -> Iterator[SyncEnv]:
    """An aggregator that received the appliance's outboxes whole (one per database)."""

    def run(db_url: str | None) -> Iterator[SyncEnv]:
        env = make_env(tmp_path_factory.mktemp(request.param), db_url=db_url)
        fill(env)
        agg, app = start_aggregator(env), start_appliance(env)
        try:
            total = len(QUEUED) + len(BACKS) + PLAIN
            wait_for(lambda: env.ingested() == total, 120, f"{total} CDRs at HQ")
            wait_for(lambda: agents_logged(env) == {"1003", "1004"}, 60, "the agent log at HQ")
            wait_for(lambda: agent_log_pending(env) == 0, 60, "the agent log acknowledged")
            yield env
        finally:
            app.close()
            agg.close()

    if request.param == "sqlite":
        yield from run(None)
    else:
        with fresh_database(pg_server, "queues") as url:
            yield from run(url)


def agents_logged(env: SyncEnv) -> set[str]:
    rows = env.api("/api/v1/reports/agents", None, **SPAN)["rows"]
    return {row["agent"] for row in rows}


def agent_log_pending(env: SyncEnv) -> int:
    """Agent state changes in the appliance's outbox, not yet acknowledged by HQ."""
    text = httpx.get(f"{env.app_url}/metrics", timeout=5).text
    found = re.search(r'callmesh_outbox_pending\{outbox="agent-state"\} ([0-9.e+]+)', text)
    assert found, "no agent-state outbox metric"
    return int(float(found.group(1)))


def callmesh_hq(env: SyncEnv, *args: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLMESH_HQ_")}
    environ.update(PYTHONPATH=str(ROOT), HOME=str(env.root), CALLMESH_HQ_URL=env.agg_url,
                   CALLMESH_HQ_TOKEN=TOKEN)  # fmt: skip
    command = [sys.executable, "-m", "appliance.cli.main", "hq", *args]
    done = subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_queue_report_from_synced_cdrs_equals_a_hand_count(synced: SyncEnv) -> None:
    rows = json.loads(callmesh_hq(synced, "report", "queues", "--from", "2025-11-24",
                                  "--to", "2025-11-26", "--json"))  # fmt: skip
    for day in ("2025-11-24", "2025-11-25"):
        got = {row["queue"]: row for row in rows if row["period"] == day}
        for queue, figures in hand_count(day).items():
            assert {k: got[queue][k] for k in figures} == figures, (day, queue)
    hourly = {"interval": "hour", "queue": "sales", **SPAN}
    hours = synced.api("/api/v1/reports/queues", None, **hourly)["rows"]
    assert sum(row["offered"] for row in hours) == sum(c.queue == "sales" for c in QUEUED)


def test_answer_times_from_synced_cdrs_equal_a_hand_count(synced: SyncEnv) -> None:
    rows = json.loads(callmesh_hq(synced, "report", "answer-times", "--from", "2025-11-24",
                                  "--to", "2025-11-26", "--json"))  # fmt: skip
    for day in ("2025-11-24", "2025-11-25"):
        got = {row["queue"]: tuple(row[n] for n in BUCKET_COLUMNS) for row in rows
               if row["period"] == day}  # fmt: skip
        mine = [c for c in CALLS if _day(c.start) == day]
        assert got == migrated.bucket_hand_count(mine), day


def reached_by_hand(lost: QueuedCall) -> bool:
    """Whether an answered call of the same number followed within the hour (the calls of
    CALLS share one number), or an answered call back of a callback that number took."""
    if lost.caller is not None:
        return lost.caller == "+8610002"
    return any(c.outcome == "answered" and lost.start < c.start <= lost.start + H for c in CALLS)


def callback_by_hand(lost: QueuedCall) -> tuple[str, str, str]:
    """``callback_offered``, ``callback_tries``, ``callback_status`` as the CSV shows them."""
    return {"+8610001": ("True", "2", "failed"), "+8610002": ("False", "1", "answered")}.get(
        lost.caller or "", ("False", "", ""))  # fmt: skip


def test_lost_calls_from_synced_cdrs_with_their_callback_status(synced: SyncEnv) -> None:
    lost = [c for c in QUEUED if c.outcome in ("abandoned", "timeout")]
    out = callmesh_hq(synced, "report", "lost", "--from", "2025-11-24", "--to", "2025-11-26",
                      "--all", "--csv", "-", "-q")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(row["outcome"], float(row["wait_s"])) for row in rows] == [
        (c.outcome, c.wait_s) for c in lost]  # fmt: skip
    assert [row["reached"] == "True" for row in rows] == [reached_by_hand(c) for c in lost]
    assert [(row["callback_offered"], row["callback_tries"], row["callback_status"])
            for row in rows] == [callback_by_hand(c) for c in lost]  # fmt: skip
    page = synced.api("/api/v1/reports/queues/lost", None, queue="support", limit=5, **SPAN)
    assert len(page["calls"]) == 5
    assert page["next_cursor"] is not None
    by_callback = [c.caller for c, row in zip(lost, rows, strict=True)
                   if row["reached_by"] == "callback"]  # fmt: skip
    assert by_callback == ["+8610002"]


def test_agent_report_from_the_synced_log_and_queue_cdrs(synced: SyncEnv) -> None:
    rows = synced.api("/api/v1/reports/agents", None, **SPAN)
    by_agent = {row["agent"]: row for row in rows["rows"]}
    exported = callmesh_hq(synced, "report", "agents", "--from", "2025-11-24", "--to",
                           "2025-11-26", "--csv", "-")  # fmt: skip
    lines = list(csv.DictReader(io.StringIO(exported)))
    assert {line["agent"]: line["paused_by_reason.lunch"] for line in lines}["1003"] == "3600.0"
    answer = httpx.get(f"{synced.agg_url}/api/v1/reports/agents", timeout=10,
                       params={"from": "2025-11-24", "to": "2025-11-26", "format": "csv"},
                       headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    cells = {row["agent"]: row for row in csv.DictReader(io.StringIO(answer.text))}
    assert cells["1003"]["paused_by_reason"] == "lunch=3600.0"
    first, second = by_agent["1003"], by_agent["1004"]
    assert (first["logged_in_s"], first["paused_by_reason"], second["logged_in_s"]) == (
        6 * H, {"lunch": H}, 2 * H)  # fmt: skip
    for agent, row in by_agent.items():
        mine = [c for c in CALLS if c.outcome == "answered" and c.agent == agent]
        assert row["calls_answered"] == len(mine)
        assert row["talk_s"] == pytest.approx(sum(c.talk_s for c in mine), abs=0.1)


def test_the_upgrade_from_0003_back_fills_the_queue_rollups_on_postgres(pg_server: str) -> None:
    with fresh_database(pg_server, "migration") as url:
        migrated.at_revision_0003(url)
        engine, migration = migrated_engine(url)
        try:
            assert migration.before == "0003"
            expected = migrated.hand_count(migrated.CALLS)
            migrated.assert_close(migrated.sums(engine, queue_rollup), expected)
            migrated.assert_close(migrated.sums(engine, queue_rollup_daily), expected)
        finally:
            engine.dispose()


def test_the_upgrade_from_0007_back_fills_answer_times_on_partitioned_postgres(
    pg_server: str,
) -> None:
    with fresh_database(pg_server, "migration8") as url:
        migrated.at_revision_0003(url, then="0007")
        engine, migration = migrated_engine(url)
        try:
            assert (migration.before, migration.after) == ("0007", migrate.head())
            expected = migrated.bucket_hand_count(migrated.CALLS)
            assert migrated.bucket_sums(engine, queue_rollup) == expected
            assert migrated.bucket_sums(engine, queue_rollup_daily) == expected
            with engine.connect() as conn:
                kept = conn.scalar(sa.select(sa.func.count()).select_from(queue_unanswered))
            assert kept == sum(c.outcome != "answered" for c in migrated.CALLS)
        finally:
            engine.dispose()


def test_local_days_across_both_dst_changes_on_postgres_then_a_move(pg_server: str) -> None:
    with fresh_database(pg_server, "localdays") as url:
        engine = migrated_engine(url)[0]
        try:
            queue_local.check_local_days_across_dst(engine)
            queue_local.check_a_moved_site_reads_the_hourly_rollup(engine)
        finally:
            engine.dispose()


def test_the_upgrade_to_0010_fills_the_local_days_on_partitioned_postgres(pg_server: str) -> None:
    with fresh_database(pg_server, "migration10") as url:
        queue_local.check_revision_0010_fills_the_local_days(url)


def test_the_upgrade_from_0009_keeps_callbacks_on_partitioned_postgres(pg_server: str) -> None:
    with fresh_database(pg_server, "migration11") as url:
        migrated.assert_callbacks_back_filled(url)
