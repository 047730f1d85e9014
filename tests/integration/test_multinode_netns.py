"""Three aggregator nodes in network namespaces, one killed mid-sync: nothing lost or doubled."""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest
import sqlalchemy as sa

from aggregator.store.schema import cdrs, recordings
from tests.integration.hq_netns import HqNetwork, Node, NsSite, socket_url
from tests.integration.routing.test_routing_sync import directory
from tests.pg import fresh_database, postgres_server

TOTAL = 20_000
RECORDINGS = 3
RECORDING_BYTES = 1_000_000
SITES = ["site-a", "site-b"]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def hq(tmp_path: Path, pg_url: str) -> Iterator[tuple[HqNetwork, sa.Engine]]:
    """Namespaces, three nodes and two sites on a fresh database; all removed afterwards."""
    with fresh_database(pg_url, "netns") as tcp_url:
        database = sa.make_url(tcp_url).database or ""
        net = HqNetwork(tmp_path, socket_url(tcp_url, database), SITES)
        engine = sa.create_engine(tcp_url)
        try:
            net.build()
            net.write_configs()
            net.fill_outboxes(TOTAL, RECORDINGS, RECORDING_BYTES)
            net.start_nodes()
            yield net, engine
        finally:
            engine.dispose()
            net.close()


def stored(engine: sa.Engine, site_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(cdrs).where(cdrs.c.site_id == site_id)
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def stored_ns(engine: sa.Engine, site_id: str) -> list[int]:
    query = sa.select(cdrs.c.doc).where(cdrs.c.site_id == site_id)
    with engine.connect() as conn:
        return sorted(msgpack.unpackb(doc)["n"] for doc in conn.scalars(query))


def check_acks_follow_commits(net: HqNetwork, engine: sa.Engine) -> list[int]:
    """Every CDR that left an outbox (acknowledged) is in the database; the counts stored.

    The outbox is read first and the table second: a CDR acknowledged before that read and
    missing from the later count would be one acknowledged before its commit.
    """
    counts = []
    for site in net.sites:
        acked = TOTAL - net.pending(site)
        count = stored(engine, site.id)
        assert count >= acked, f"{site.id}: {acked} acknowledged but only {count} stored"
        counts.append(count)
    return counts


def run_until(
    net: HqNetwork, engine: sa.Engine, done: Callable[[list[int]], bool], timeout: float
) -> None:
    """Check the ack invariant every 50 ms until ``done(counts)``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done(check_acks_follow_commits(net, engine)):
            return
        time.sleep(0.05)
    logs = "\n".join(s.process.output() for s in net.sites)
    raise AssertionError(f"timed out after {timeout}s; stored {stored_all(net, engine)}\n{logs}")


def stored_all(net: HqNetwork, engine: sa.Engine) -> dict[str, int]:
    return {s.id: stored(engine, s.id) for s in net.sites}


def current_node(net: HqNetwork, site: NsSite) -> Node:
    return net.node_at(site.sessions()[-1])


def recording_hashes(site: NsSite) -> set[str]:
    return {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (site.root / "recordings").glob("*")
    }


def stored_recordings(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r.site_id, r.sha256) for r in conn.execute(sa.select(recordings))]


def test_a_node_killed_mid_sync_loses_and_doubles_nothing(
    hq: tuple[HqNetwork, sa.Engine],
) -> None:
    net, engine = hq
    hashes = {site.id: recording_hashes(site) for site in net.sites}
    net.start_sites()
    site_a = net.sites[0]
    run_until(net, engine, lambda counts: counts[0] > 1000, 90)
    victim = current_node(net, site_a)
    assert stored(engine, site_a.id) < TOTAL, "the stream ended before a node was killed"
    assert victim.process.proc is not None
    victim.process.proc.send_signal(signal.SIGKILL)
    victim.process.proc.wait(timeout=10)
    other = next(n for n in net.nodes if n is not victim and n is not net.nodes[1])
    assert net.hq(other, "PUT", "/api/v1/directory", directory()).status_code == 200
    dnc = net.hq(other, "PUT", "/api/v1/fleet/dnc/+4930999", {"reason": "complaint"})
    assert dnc.json()["version"] == 1, dnc.text

    run_until(net, engine, lambda counts: counts == [TOTAL] * len(SITES), 180)
    run_until(net, engine, lambda _: all(net.pending(s) == 0 for s in net.sites), 60)
    for site in net.sites:
        assert stored_ns(engine, site.id) == list(range(TOTAL)), site.id
        net.wait_healthy(net.sites_ns, f"{site.url}/healthz", site.process)
    deadline = time.monotonic() + 120
    while len(stored_recordings(engine)) < RECORDINGS * len(SITES):
        assert time.monotonic() < deadline, f"recordings: {stored_recordings(engine)}"
        time.sleep(0.2)
    rows = stored_recordings(engine)
    for site in net.sites:
        assert sorted(sha for sid, sha in rows if sid == site.id) == sorted(hashes[site.id])
    store = net.root / "hq" / "recordings"
    files = [p for p in store.glob("??/*") if p.is_file()]
    assert len(files) == RECORDINGS * len(SITES)
    assert not list(store.glob("incoming/*/*.part"))
    for site in net.sites:
        wait_routing_and_dnc(net, site)
    sessions = site_a.sessions()
    assert sessions[0] == victim.ingest
    assert victim.ingest not in sessions[1:]


def wait_routing_and_dnc(net: HqNetwork, site: NsSite) -> None:
    """The routing table and DNC list published through another node are running at ``site``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        routing = net.metric(site, "callmesh_routing_version")
        company = net.site_get(site, "/api/v1/compliance/dnc").json().get("company_version")
        if (routing, company) == (1, 1):
            return
        time.sleep(0.2)
    raise AssertionError(f"{site.id}: routing {routing}, DNC {company}\n{site.process.output()}")
