"""A bad site cannot hurt HQ: real aggregator and appliance processes, a hostile second site."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from appliance.store import Outbox, Store
from drivers.sync import keys
from drivers.sync.protocol import (
    MAX_WIRE,
    Ack,
    CdrBatch,
    ErrorReply,
    Hello,
    Message,
    Welcome,
    decode,
    encode,
)
from tests.procs import Service
from tests.sync_env import SyncEnv, admit_site, make_cdr, make_env, wait_for

BAD = "site-bad"


@pytest.fixture
def env(tmp_path: Path) -> SyncEnv:
    return make_env(tmp_path)


@pytest.fixture
def ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


def start(env: SyncEnv, argv: list[str], url: str, log: str) -> Service:
    svc = Service(argv, env.root / log)
    svc.wait_healthy(f"{url}/healthz", timeout=60)
    return svc


def dealer(env: SyncEnv, ctx: zmq.Context[zmq.Socket[bytes]], secret: Path) -> zmq.Socket[bytes]:
    public, secret_key = keys.load_secret(secret)
    sock = ctx.socket(zmq.DEALER)
    sock.curve_publickey, sock.curve_secretkey = public, secret_key
    sock.curve_serverkey = keys.load_public(env.root / "agg" / "keys" / "aggregator.key")
    sock.linger = 0
    sock.rcvtimeo = 5000
    sock.sndtimeo = 5000
    sock.connect(env.ingest)
    return sock


def next_reply(sock: zmq.Socket[bytes], kind: type[Message], timeout: float = 15) -> Message:
    """The next reply of type ``kind`` (pushed snapshots and commands are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = decode(sock.recv_multipart())
        if isinstance(message, kind):
            return message
    raise AssertionError(f"no {kind.TYPE} within {timeout}s")


def metric(env: SyncEnv, pattern: str) -> float:
    text = httpx.get(f"{env.agg_url}/metrics", timeout=5).text
    found = re.search(rf"^{pattern} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def refused(env: SyncEnv, site: str, stream: str, error_id: str) -> float:
    labels = f'error_id="{error_id}",site="{site}",stream="{stream}"'
    return metric(env, rf"callmesh_records_refused_total\{{{re.escape(labels)}\}}")


def test_invalid_cdrs_are_refused_alone_and_the_outbox_moves_on(
    env: SyncEnv, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    bad_key = admit_site(env, BAD)
    store = Store.open(env.root / "app" / "store")
    try:
        docs = [make_cdr(n) for n in range(100)]
        docs[10] = make_cdr(10, duration_s="sixty")
        docs[50] = make_cdr(50, start=1_772_445_600_000)
        Outbox(store, "cdr").append_many(docs)
    finally:
        store.close()
    agg = start(env, ["aggregator", "run", "-c", str(env.agg_config)], env.agg_url, "agg.log")
    try:
        hostile = dealer(env, ctx, bad_key)
        hostile.send_multipart(encode(Hello(BAD, "x")))
        next_reply(hostile, Welcome)
        garbage = [(n, make_cdr(n, duration_s="x")) for n in range(1, 500)]
        hostile.send_multipart(encode(CdrBatch([(0, make_cdr(7)), *garbage])))
        app = start(env, ["appliance", "run", "-c", str(env.app_config)], env.app_url, "app.log")
        try:
            ack = next_reply(hostile, Ack)
            assert ack == Ack("cdr", list(range(500)))
            wait_for(lambda: env.ingested() == 98, 60, "the 98 valid CDRs at HQ")
            wait_for(lambda: env.pending() == 0, 30, "the outbox past both invalid CDRs")
        finally:
            app.close()
        assert refused(env, "site-a", "cdr", "record-bad-field") == 1
        assert refused(env, "site-a", "cdr", "record-out-of-range") == 1
        assert refused(env, BAD, "cdr", "record-bad-field") == 499
        assert len(env.api("/api/v1/cdrs", site="site-a")["cdrs"]) == 98
    finally:
        agg.close()


def test_a_site_past_its_share_of_work_is_told_site_busy(
    env: SyncEnv, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    bad_key = admit_site(env, BAD, site_pending=2)
    agg = start(env, ["aggregator", "run", "-c", str(env.agg_config)], env.agg_url, "agg.log")
    try:
        hostile = dealer(env, ctx, bad_key)
        batch = encode(CdrBatch([(n, make_cdr(n)) for n in range(2000)]))
        for _ in range(40):
            hostile.send_multipart(batch)
        replies = [decode(hostile.recv_multipart()) for _ in range(40)]
        busy = [r for r in replies if isinstance(r, ErrorReply) and r.error_id == "site-busy"]
        assert busy
        assert len(busy) + sum(isinstance(r, Ack) for r in replies) == 40
        env.prefill(100)
        app = start(env, ["appliance", "run", "-c", str(env.app_config)], env.app_url, "app.log")
        try:
            wait_for(lambda: env.ingested() == 100, 60, "the good site's CDRs")
        finally:
            app.close()
    finally:
        agg.close()


def test_a_frame_over_the_libzmq_cap_drops_that_connection_and_nothing_else(
    env: SyncEnv, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    agg = start(env, ["aggregator", "run", "-c", str(env.agg_config)], env.agg_url, "agg.log")
    try:
        secret = env.root / "app" / "keys" / "site-a.key_secret"
        huge = dealer(env, ctx, secret)
        huge.send_multipart([b"\x00" * (MAX_WIRE + 1)])
        with pytest.raises(zmq.Again):
            huge.recv_multipart()
        huge.close()
        again = dealer(env, ctx, secret)
        again.send_multipart(encode(Hello("site-a", "x")))
        assert isinstance(next_reply(again, Welcome), Welcome)
        assert metric(env, r'callmesh_protocol_errors_total\{error_id="frame-too-large"\}') == 0
    finally:
        agg.close()


def test_a_site_that_spends_its_refusal_budget_is_dropped_undecoded(
    env: SyncEnv, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    bad_key = admit_site(env, BAD, refusal_burst=100, refusal_rate=0.01)
    agg = start(env, ["aggregator", "run", "-c", str(env.agg_config)], env.agg_url, "agg.log")
    try:
        hostile = dealer(env, ctx, bad_key)
        hostile.send_multipart(encode(Hello(BAD, "x")))
        next_reply(hostile, Welcome)
        hostile.send_multipart(encode(CdrBatch([(n, b"\xc1") for n in range(150)])))
        assert next_reply(hostile, Ack) == Ack("cdr", list(range(150)))
        hostile.send_multipart(encode(CdrBatch([(150, make_cdr(150))])))
        with pytest.raises(zmq.Again):
            next_reply(hostile, Ack)
        assert refused(env, BAD, "message", "site-throttled") == 1
        env.prefill(100)
        app = start(env, ["appliance", "run", "-c", str(env.app_config)], env.app_url, "app.log")
        try:
            wait_for(lambda: env.ingested() == 100, 60, "the good site's CDRs")
        finally:
            app.close()
        assert env.api(f"/api/v1/sites/{BAD}")["cdrs_received"] == 0
    finally:
        agg.close()


def events_until(monitor: zmq.Socket[bytes], wanted: int, timeout: float = 15) -> set[int]:
    """Monitor events seen until ``wanted`` is among them (fails after ``timeout``)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no monitor event {wanted} within {timeout}s (saw {seen})"
        if monitor.poll(int(left * 1000)):
            seen.add(recv_monitor_message(monitor)["event"])
    return seen


def welcomed(env: SyncEnv, ctx: zmq.Context[zmq.Socket[bytes]], secret: Path) -> bool:
    """Whether a new connection of the site is admitted and its hello answered."""
    sock = dealer(env, ctx, secret)
    try:
        sock.send_multipart(encode(Hello(BAD, "x")))
        return sock.poll(2000) != 0 and isinstance(decode(sock.recv_multipart()), Welcome)
    finally:
        sock.close(linger=0)


def flood_until_cut(sock: zmq.Socket[bytes], monitor: zmq.Socket[bytes], timeout: float) -> int:
    """Send garbage as fast as libzmq takes it until HQ cuts the connection; messages sent."""
    garbage = encode(CdrBatch([(n, make_cdr(n, duration_s="x")) for n in range(500)]))
    sent, deadline = 0, time.monotonic() + timeout
    while not monitor.poll(0):
        assert time.monotonic() < deadline, f"not cut after {sent} messages in {timeout}s"
        try:
            sock.send_multipart(garbage, flags=zmq.NOBLOCK)
            sent += 1
        except zmq.Again:
            time.sleep(0.001)
    return sent


def test_a_flooding_site_is_cut_and_banned_while_a_good_site_keeps_syncing(
    env: SyncEnv, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    bad_key = admit_site(env, BAD, refusal_burst=1000, ban_s=3)
    env.prefill(2000)
    agg = start(env, ["aggregator", "run", "-c", str(env.agg_config)], env.agg_url, "agg.log")
    try:
        app = start(env, ["appliance", "run", "-c", str(env.app_config)], env.app_url, "app.log")
        try:
            hostile = dealer(env, ctx, bad_key)
            monitor = hostile.get_monitor_socket(
                zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                | zmq.EVENT_HANDSHAKE_SUCCEEDED
            )  # fmt: skip
            events_until(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED)
            assert flood_until_cut(hostile, monitor, timeout=30) > 2
            banned_at = time.monotonic()
            events_until(monitor, zmq.EVENT_DISCONNECTED)
            events_until(monitor, zmq.EVENT_HANDSHAKE_FAILED_AUTH)
            wait_for(lambda: env.ingested() == 2000, 60, "the good site's CDRs")
            wait_for(lambda: env.pending() == 0, 30, "the good site's outbox drained")
        finally:
            app.close()
        banned = 'callmesh_sites_banned_total{reason="refusal-budget",site="site-bad"}'
        assert metric(env, re.escape(banned)) == 1
        assert metric(env, re.escape('callmesh_rejected_peers_total{reason="banned-site"}')) >= 1
        assert refused(env, "site-a", "message", "site-banned") == 0
        # The ban ends once ban_s is over and the refusals the flood ran up are paid off
        # (libzmq gave up the refused endpoint, so the site connects anew each try).
        wait_for(lambda: time.monotonic() > banned_at + 3, 10, "the end of the ban")
        wait_for(lambda: welcomed(env, ctx, bad_key), 40, "the site admitted again")
    finally:
        agg.close()


def test_a_site_past_its_byte_budget_is_cut_before_its_bytes_cost_more(
    env: SyncEnv, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    bad_key = admit_site(env, BAD, site_byte_burst_mb=1, site_byte_rate_mb=0.01, ban_s=60)
    agg = start(env, ["aggregator", "run", "-c", str(env.agg_config)], env.agg_url, "agg.log")
    try:
        hostile = dealer(env, ctx, bad_key)
        monitor = hostile.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        hostile.send_multipart(encode(Hello(BAD, "x")))
        next_reply(hostile, Welcome)
        batches = [
            encode(CdrBatch([(n, make_cdr(n)) for n in range(first, first + 1500)]))
            for first in range(0, 6000, 1500)
        ]
        assert 300_000 < sum(len(f) for f in batches[0]) < 600_000
        for batch in batches:
            hostile.send_multipart(batch)
        events_until(monitor, zmq.EVENT_DISCONNECTED)
        banned = 'callmesh_sites_banned_total{reason="byte-budget",site="site-bad"}'
        wait_for(lambda: metric(env, re.escape(banned)) == 1, 10, "the ban counted")
        assert env.api(f"/api/v1/sites/{BAD}")["cdrs_received"] < 6000
        env.prefill(100)
        app = start(env, ["appliance", "run", "-c", str(env.app_config)], env.app_url, "app.log")
        try:
            wait_for(lambda: env.ingested() == 100, 60, "the good site's CDRs")
        finally:
            app.close()
    finally:
        agg.close()
