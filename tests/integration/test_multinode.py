"""Two aggregator nodes on one PostgreSQL and one recordings store, and a site failing over."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from aggregator.store.schema import cdrs, recordings
from tests.integration.routing.test_routing_sync import directory, running_version
from tests.integration.test_sync import (
    queue_recordings,
    start_aggregator,
    start_appliance,
    stored_ids,
)
from tests.pg import fresh_database, postgres_server
from tests.procs import Service, free_port
from tests.sync_env import TOKEN, SyncEnv, make_env, wait_for

TOTAL = 30_000
RECORDINGS = 5


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def database(pg_url: str) -> Iterator[str]:
    """A new, empty database the nodes migrate at start; dropped afterwards."""
    with fresh_database(pg_url, "multinode") as url:
        yield url


def second_node(env: SyncEnv) -> SyncEnv:
    """Node 2: the same config, keys, database and data dir; its own HTTP and ingest ports."""
    node = replace(env, agg_port=free_port(), ingest=f"tcp://127.0.0.1:{free_port()}")
    config = yaml.safe_load(env.agg_config.read_text())
    config["http"]["port"] = node.agg_port
    config["ingest"]["bind"] = node.ingest
    (env.root / "aggregator-2.yaml").write_text(yaml.safe_dump(config))
    return node


def start_node_2(node: SyncEnv) -> Service:
    config = node.root / "aggregator-2.yaml"
    svc = Service(["aggregator", "run", "-c", str(config)], node.root / "agg-2.log")
    svc.wait_healthy(f"{node.agg_url}/healthz")
    return svc


def stored(db_url: str, table: sa.Table = cdrs) -> int:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()


def test_a_site_fails_over_to_node_2_when_node_1_is_killed_mid_stream(
    tmp_path: Path, database: str
) -> None:
    env = make_env(tmp_path, db_url=database)
    node = second_node(env)
    app_config = yaml.safe_load(env.app_config.read_text())
    app_config["sync"]["endpoints"] = [env.ingest, node.ingest]
    env.app_config.write_text(yaml.safe_dump(app_config))
    env.prefill(TOTAL)
    names = [f"r{n}" for n in range(RECORDINGS)]
    queue_recordings(env, *names)
    node_1 = start_aggregator(env)
    node_2 = start_node_2(node)
    app = start_appliance(env)
    try:
        wait_for(lambda: stored(database) > 1000, 60, "the stream to start", interval=0.02)
        assert stored(database) < TOTAL, "the stream ended before node 1 was killed"
        node_1.proc.send_signal(signal.SIGKILL)
        node_1.proc.wait(timeout=10)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"{node.agg_url}/api/v1/directory"
        answer = httpx.put(url, json=directory(), headers=headers, timeout=10)
        assert answer.json()["published"] == {"site-a": 1, "site-b": 1}
        wait_for(lambda: stored(database) == TOTAL, 120, f"{TOTAL} CDRs via node 2")
        wait_for(lambda: env.pending() == 0, 60, "an empty outbox")
        wait_for(lambda: running_version(env) == 1, 30, "the routing change at the site")
        assert node.ingested() == TOTAL
        wait_for(lambda: stored(database, recordings) == RECORDINGS, 60, "every recording")
    finally:
        app.close()
        node_1.close()
        node_2.close()
    assert sorted(stored_ids(env, database)) == list(range(TOTAL))
    sessions = [line for line in app.log.read_text().splitlines() if "sync session up" in line]
    store = env.root / "agg" / "recordings"
    assert len([p for p in store.glob("??/*") if p.is_file()]) == RECORDINGS
    assert not list(store.glob("incoming/*/*.part"))
    nodes = [line.split("endpoint=")[1] for line in sessions]
    assert nodes[0] == env.ingest
    assert set(nodes[1:]) == {node.ingest}
