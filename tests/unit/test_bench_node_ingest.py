"""The nodes benchmark: how sites list the nodes, and what it refuses to report as a result."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.harness import Incomplete
from bench.node_ingest import Profile, Run, check, spread

pytestmark = pytest.mark.unit

NODES = ["tcp://a:1", "tcp://b:2", "tcp://c:3"]
PROFILE = Profile("small batches", sites=6, cdrs_per_site=10, batch=1)
GOOD = Run(
    nodes=3,
    acked=60,
    seconds=2.0,
    node_cpu_s=(0.01, 0.01, 0.01),
    node_cdrs=(20, 20, 20),
    pg_cpu_s=0.01,
    sender_cpu_s=0.01,
    rows=60,
    distinct=60,
    duplicates=0,
)


def test_site_k_lists_every_node_once_starting_at_node_k_mod_n() -> None:
    lists = [spread(NODES, k) for k in range(6)]
    assert [endpoints[0] for endpoints in lists] == [*NODES, *NODES]
    assert all(sorted(endpoints) == sorted(NODES) for endpoints in lists)
    assert lists[4] == ("tcp://b:2", "tcp://c:3", "tcp://a:1")


def test_a_run_that_stored_every_cdr_once_over_all_nodes_passes() -> None:
    check(PROFILE, GOOD)


@pytest.mark.parametrize(
    "bad",
    [
        replace(GOOD, acked=59),
        replace(GOOD, rows=59),
        replace(GOOD, rows=61),
        replace(GOOD, distinct=59),
        replace(GOOD, duplicates=1),
        replace(GOOD, node_cdrs=(30, 30, 0)),
        replace(GOOD, node_cdrs=(20, 20, 19)),
    ],
    ids=["ack-lost", "row-lost", "row-twice", "key-twice", "duplicate", "idle-node", "node-sum"],
)
def test_a_run_that_lost_doubled_or_left_a_node_idle_is_not_a_result(bad: Run) -> None:
    with pytest.raises(Incomplete):
        check(PROFILE, bad)
