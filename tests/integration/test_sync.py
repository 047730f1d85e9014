"""The sync link between real aggregator and appliance processes, under failure."""

from __future__ import annotations

import hashlib
import random
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgpack
import pytest
import sqlalchemy as sa
import yaml
import zmq

from aggregator.store.schema import cdrs, recordings
from appliance.store import Outbox, Store
from appliance.sync.recordings import register_recording
from drivers.sync import keys
from drivers.sync.protocol import Hello, RecChunk, RecDone, RecOffer, RecResume, decode, encode
from tests.procs import Service, service
from tests.sync_env import SyncEnv, make_env, wait_for


def start_aggregator(env: SyncEnv, log: str = "agg.log") -> Service:
    svc = Service(["aggregator", "run", "-c", str(env.agg_config)], env.root / log)
    svc.wait_healthy(f"{env.agg_url}/healthz")
    return svc


def start_appliance(env: SyncEnv, log: str = "app.log") -> Service:
    svc = Service(["appliance", "run", "-c", str(env.app_config)], env.root / log)
    svc.wait_healthy(f"{env.app_url}/healthz")
    return svc


def kill(svc: Service) -> None:
    svc.proc.send_signal(signal.SIGKILL)
    svc.proc.wait(timeout=10)
    svc.close()


def stored_ids(env: SyncEnv, db_url: str | None = None) -> list[int]:
    """The ``n`` of every stored CDR, in insertion order."""
    engine = sa.create_engine(db_url or f"sqlite:///{env.root / 'agg' / 'aggregator.db'}")
    with engine.connect() as conn:
        docs = conn.scalars(sa.select(cdrs.c.doc).order_by(cdrs.c.id)).all()
    engine.dispose()
    return [msgpack.unpackb(d)["n"] for d in docs]


@pytest.fixture
def env(tmp_path: Path) -> SyncEnv:
    return make_env(tmp_path)


def test_cdrs_reach_hq_and_leave_the_outbox(env: SyncEnv) -> None:
    env.prefill(5000)
    with (
        service(["aggregator", "run", "-c", str(env.agg_config)], env.root / "a.log") as agg,
        service(["appliance", "run", "-c", str(env.app_config)], env.root / "b.log") as app,
    ):
        agg.wait_healthy(f"{env.agg_url}/healthz")
        app.wait_healthy(f"{env.app_url}/healthz")
        wait_for(lambda: env.ingested() == 5000, 60, "5000 CDRs at HQ")
        wait_for(lambda: env.pending() == 0, 30, "an empty outbox")
        site = env.api(f"/api/v1/sites/{env.site_id}")
        assert site["status"] == "online"
        metrics = httpx.get(f"{env.agg_url}/metrics", timeout=5).text
        assert 'callmesh_cdrs_ingested_total{site="site-a"} 5000.0' in metrics
        assert agg.signal(signal.SIGTERM) == 0
        assert app.signal(signal.SIGTERM) == 0
    assert stored_ids(env) == list(range(5000))


@pytest.mark.parametrize("victim", ["aggregator", "appliance"])
def test_kill_9_mid_stream_stores_exactly_100000(env: SyncEnv, victim: str) -> None:
    env.prefill(100_000)
    agg, app = start_aggregator(env), start_appliance(env)
    try:
        wait_for(lambda: env.ingested() > 5000, 60, "the stream to start", interval=0.02)
        if victim == "aggregator":
            kill(agg)
            agg = start_aggregator(env, "agg2.log")
        else:
            kill(app)
            app = start_appliance(env, "app2.log")
        assert 0 < env.ingested() < 100_000 or victim == "appliance"
        wait_for(lambda: env.ingested() == 100_000, 120, "100000 CDRs at HQ")
        wait_for(lambda: env.pending() == 0, 60, "an empty outbox")
    finally:
        app.close()
        agg.close()
    ids = stored_ids(env)
    assert len(ids) == 100_000
    assert sorted(ids) == list(range(100_000))


def test_backlog_drains_in_order_when_hq_returns(env: SyncEnv) -> None:
    env.prefill(20_000)
    app = start_appliance(env)
    try:
        time.sleep(2)
        assert env.pending() == 20_000
        metrics = httpx.get(f"{env.app_url}/metrics", timeout=5).text
        assert "callmesh_sync_connected 0.0" in metrics
        agg = start_aggregator(env)
        try:
            wait_for(lambda: env.pending() == 0, 60, "the backlog to drain")
            metrics = httpx.get(f"{env.app_url}/metrics", timeout=5).text
            assert "callmesh_sync_connected 1.0" in metrics
            assert "callmesh_cdrs_acked_total 20000.0" in metrics
        finally:
            agg.close()
    finally:
        app.close()
    assert stored_ids(env) == list(range(20_000))


@pytest.fixture
def running_aggregator(env: SyncEnv) -> Iterator[Service]:
    agg = start_aggregator(env)
    yield agg
    agg.close()


def dealer(
    env: SyncEnv, ctx: zmq.Context[zmq.Socket[bytes]], secret_file: Path
) -> zmq.Socket[bytes]:
    public, secret = keys.load_secret(secret_file)
    sock = ctx.socket(zmq.DEALER)
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.curve_serverkey = keys.load_public(env.root / "agg" / "keys" / "aggregator.key")
    sock.linger = 0
    sock.rcvtimeo = 3000
    sock.connect(env.ingest)
    return sock


def metric(env: SyncEnv, name: str) -> float:
    text = httpx.get(f"{env.agg_url}/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_bad_peers_are_refused_counted_and_harmless(
    env: SyncEnv, running_aggregator: Service, tmp_path: Path
) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        _, stranger = keys.generate(tmp_path / "stranger", "stranger")
        intruder = dealer(env, ctx, stranger)
        intruder.send_multipart(encode(Hello("site-a", "x")))
        with pytest.raises(zmq.Again):
            intruder.recv_multipart()
        wait_for(
            lambda: metric(env, 'callmesh_rejected_peers_total{reason="unknown-key"}') >= 1,
            10,
            "the unknown key to be counted",
        )

        site = dealer(env, ctx, env.root / "app" / "keys" / "site-a.key_secret")
        site.send_multipart(encode(Hello("site-b", "x")))
        assert decode(site.recv_multipart()).error_id == "site-mismatch"  # type: ignore[attr-defined]
        for garbage, error_id in [
            ([b"\xc1\xc1"], "bad-msgpack"),
            ([msgpack.packb({"v": 9, "t": "hello"})], "unsupported-version"),
            ([encode(Hello("site-a", "x"))[0][:5]], "bad-msgpack"),
            ([b"\x00" * (9 * 1024 * 1024)], "frame-too-large"),
            ([random.Random(7).randbytes(64)], "bad-msgpack"),
        ]:
            site.send_multipart(garbage)
            assert decode(site.recv_multipart()).error_id == error_id  # type: ignore[attr-defined]
        assert metric(env, 'callmesh_protocol_errors_total{error_id="bad-msgpack"}') >= 3
        site.close()
        intruder.close()
    finally:
        ctx.term()
    env.prefill(100)
    app = start_appliance(env)
    try:
        wait_for(lambda: env.ingested() == 100, 30, "a good site to be unaffected")
    finally:
        app.close()


def test_a_recording_that_cannot_be_written_is_refused_then_stored_on_retry(
    env: SyncEnv, running_aggregator: Service
) -> None:
    payload = random.Random(3).randbytes(100_000)
    offer = RecOffer("rec-2", len(payload), hashlib.sha256(payload).hexdigest(), {})
    # A file where the site's incoming directory belongs: the aggregator cannot write there.
    blocker = env.root / "agg" / "recordings" / "incoming" / "site-a"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        site = dealer(env, ctx, env.root / "app" / "keys" / "site-a.key_secret")
        site.send_multipart(encode(offer))
        refusal = decode(site.recv_multipart())
        assert (refusal.error_id, refusal.ref) == ("storage-unavailable", "rec-offer")  # type: ignore[attr-defined]
        assert metric(env, 'callmesh_protocol_errors_total{error_id="storage-unavailable"}') == 1
        blocker.unlink()
        site.send_multipart(encode(offer))
        assert decode(site.recv_multipart()) == RecResume("rec-2", 0, 16)
        site.send_multipart(encode(RecChunk("rec-2", 0, payload)))
        assert decode(site.recv_multipart()) == RecDone("rec-2", True, "stored")
        site.close()
    finally:
        ctx.term()
    stored = env.root / "agg" / "recordings" / offer.sha256[:2] / offer.sha256
    assert stored.read_bytes() == payload


def test_chunks_that_need_no_answer_free_their_rooms_without_further_traffic(
    env: SyncEnv, running_aggregator: Service
) -> None:
    # Rooms of messages without replies are freed by a timer of HQ's event loop, not by
    # a wake-up per chunk: three chunks (credit comes back after eight) and then silence
    # must still leave nothing pending.
    payload = random.Random(4).randbytes(10 * 4096)
    offer = RecOffer("rec-q", len(payload), hashlib.sha256(payload).hexdigest(), {})
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        site = dealer(env, ctx, env.root / "app" / "keys" / "site-a.key_secret")
        site.send_multipart(encode(offer))
        assert decode(site.recv_multipart()) == RecResume("rec-q", 0, 16)
        for offset in range(0, 3 * 4096, 4096):
            site.send_multipart(encode(RecChunk("rec-q", offset, payload[offset : offset + 4096])))
        received = "callmesh_recording_received_bytes_total"
        wait_for(lambda: metric(env, received) == 3 * 4096, 10, "the chunks to be written")
        wait_for(lambda: metric(env, "callmesh_ingest_pending") == 0, 10, "rooms freed")
        site.close()
    finally:
        ctx.term()


def test_recording_upload_survives_repeated_interruptions(env: SyncEnv) -> None:
    wav = env.root / "app" / "recordings" / "rec-1.wav"
    wav.parent.mkdir(parents=True)
    payload = random.Random(1).randbytes(24 * 1024 * 1024)
    wav.write_bytes(payload)
    store = Store.open(env.root / "app" / "store")
    register_recording(Outbox(store, "recording"), "rec-1", wav, {"cdr_id": "c-1"})
    store.close()
    rng = random.Random(5)
    incoming = env.root / "agg" / "recordings" / "incoming" / "site-a" / "rec-1.part"
    agg = start_aggregator(env)
    app = start_appliance(env)
    try:
        for round_no in range(3):
            wait_for(
                lambda: incoming.exists() and incoming.stat().st_size > 0,
                30,
                "the upload to start",
                interval=0.01,
            )
            time.sleep(rng.uniform(0.0, 0.05))
            if round_no % 2:
                kill(app)
                app = start_appliance(env, f"app{round_no}.log")
            else:
                kill(agg)
                agg = start_aggregator(env, f"agg{round_no}.log")
            if not incoming.exists():
                break
        url = f"sqlite:///{env.root / 'agg' / 'aggregator.db'}"

        def stored() -> bool:
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                row = conn.execute(sa.select(recordings)).first()
            engine.dispose()
            return row is not None

        wait_for(stored, 60, "the recording to be stored")
        response = httpx.get(
            f"{env.agg_url}/api/v1/recordings/site-a/rec-1",
            timeout=30,
            headers={"Authorization": "Bearer test-admin-token-0123456789"},
        )
        assert response.status_code == 200
        assert response.content == payload
        wait_for(lambda: not wav.exists(), 20, "local deletion after confirmation")
    finally:
        app.close()
        agg.close()


def queue_recordings(env: SyncEnv, *names: str) -> Path:
    """Queue a 200 kB recording per name in the appliance's outbox; returns their folder."""
    folder = env.root / "app" / "recordings"
    folder.mkdir(parents=True)
    rng = random.Random(7)
    store = Store.open(env.root / "app" / "store")
    try:
        for name in names:
            wav = folder / f"{name}.wav"
            wav.write_bytes(rng.randbytes(200_000))
            register_recording(Outbox(store, "recording"), name, wav, {"cdr_id": f"c-{name}"})
    finally:
        store.close()
    return folder


def stored_recordings(env: SyncEnv) -> set[str]:
    engine = sa.create_engine(f"sqlite:///{env.root / 'agg' / 'aggregator.db'}")
    try:
        with engine.connect() as conn:
            return set(conn.scalars(sa.select(recordings.c.recording_id)))
    except sa.exc.OperationalError:
        return set()
    finally:
        engine.dispose()


def test_recordings_that_cannot_be_uploaded_are_quarantined_and_later_ones_arrive(
    env: SyncEnv,
) -> None:
    folder = queue_recordings(env, "gone", "changed", "good")
    (folder / "gone.wav").unlink()
    (folder / "changed.wav").write_bytes(random.Random(8).randbytes(200_000))
    agg, app = start_aggregator(env), start_appliance(env)
    try:
        wait_for(lambda: stored_recordings(env) == {"good"}, 60, "the good recording at HQ")
        detail = httpx.get(f"{env.app_url}/healthz", timeout=5).json()["checks"]
        uploads = detail["recording-uploads"]["detail"]
        assert "2 quarantined" in uploads
        assert "gone (file-missing)" in uploads
        assert "changed (sha256-changed)" in uploads
        text = httpx.get(f"{env.app_url}/metrics", timeout=5).text
        for reason in ("file-missing", "sha256-changed"):
            assert f'callmesh_recordings_quarantined_total{{reason="{reason}"}} 1.0' in text
        assert 'callmesh_outbox_pending{outbox="recording"} 0.0' in text

        def reported() -> bool:
            health = env.api(f"/api/v1/sites/{env.site_id}")["health"] or {}
            return bool(health.get("recordings_quarantined") == 2)

        wait_for(reported, 20, "HQ's site status to count the quarantined recordings")
        assert (folder / "changed.wav").exists(), "a quarantined file is kept for a person"
    finally:
        app.close()
        agg.close()


def test_revoked_site_key_is_refused_and_counted(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    config = yaml.safe_load(env.agg_config.read_text())
    config["ingest"]["sites"][0]["revoked"] = True
    env.agg_config.write_text(yaml.safe_dump(config))
    env.prefill(10)
    agg, app = start_aggregator(env), start_appliance(env)
    try:
        wait_for(
            lambda: metric(env, 'callmesh_rejected_peers_total{reason="revoked-key"}') >= 1,
            20,
            "the revoked key to be refused",
        )
        assert env.ingested() == -1
        assert env.pending() == 10
    finally:
        app.close()
        agg.close()


def test_full_disk_warning_names_what_to_do(tmp_path: Path) -> None:
    env = make_env(tmp_path, disk_warn_percent=0.001)
    app = start_appliance(env)
    try:
        wait_for(lambda: "storage is filling up" in app.output(), 20, "the storage warning")
        assert "restore the link to HQ" in app.output()
    finally:
        app.close()
