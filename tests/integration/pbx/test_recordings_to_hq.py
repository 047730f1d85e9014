"""A recorded call reaches HQ: the appliance (PBX and sync client) and the aggregator run
as real processes, two pjsua2 phones talk through Kamailio and rtpengine, and the WAV is
downloaded from HQ with the recording id HQ's CDR gives."""

from __future__ import annotations

import contextlib
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.pbx.audio import dominant, read_channels
from tests.integration.pbx.harness import (
    DOMAIN,
    EXTENSIONS,
    Phone,
    connect_call,
    free_udp_tcp_port,
    no_daemons_left,
    password,
    require_debs,
)
from tests.procs import Service, write_yaml
from tests.sync_env import TOKEN, SyncEnv, make_env, wait_for

TONES = [300.0, 600.0, 1000.0, 1500.0]


class Branch:
    """The SIP side of the appliance under test, as the test phones need it."""

    def __init__(self, sip_port: int) -> None:
        self.sip_port = sip_port


def with_pbx(env: SyncEnv) -> Branch:
    """Turn the sync test appliance into a branch PBX on free ports."""
    config: dict[str, Any] = yaml.safe_load(env.app_config.read_text())
    rtp = random.randrange(30000, 59000, 200)
    pbx: dict[str, Any] = {
        "enabled": True,
        "sip_port": free_udp_tcp_port(),
        "evapi_port": free_udp_tcp_port(),
        "rtpengine_ng_port": free_udp_tcp_port(),
        "route_port": free_udp_tcp_port(),
        "rtp_port_min": rtp,
        "rtp_port_max": rtp + 199,
        "kamailio_children": 2,
        "media": {"workers": 0},
    }
    extensions = [{"number": n, "password": password(n), "name": name}
                  for n, name in EXTENSIONS.items()]  # fmt: skip
    config.update(pbx=pbx, sip={"domain": DOMAIN, "extensions": extensions})
    write_yaml(env.app_config, config)
    return Branch(pbx["sip_port"])


@contextlib.contextmanager
def running(env: SyncEnv) -> Iterator[Service]:
    """Aggregator and appliance, healthy; the appliance is stopped with SIGTERM."""
    agg = Service(["aggregator", "run", "-c", str(env.agg_config)], env.root / "agg.log")
    app: Service | None = None
    try:
        agg.wait_healthy(f"{env.agg_url}/healthz")
        app = Service(["appliance", "run", "-c", str(env.app_config)], env.root / "app.log")
        app.wait_healthy(f"{env.app_url}/healthz", timeout=60)
        yield app
    finally:
        if app is not None:
            with contextlib.suppress(Exception):
                app.signal(signal.SIGTERM, timeout=30)
            app.close()
        agg.close()


def hq_cdr_with_recording(env: SyncEnv, app: Service) -> dict[str, Any]:
    """The answered CDR at HQ once its recording is available there."""
    found: list[dict[str, Any]] = []

    def available() -> bool:
        cdrs = env.api("/api/v1/cdrs", site=env.site_id)["cdrs"]
        found[:] = [c for c in cdrs if (c.get("recording") or {}).get("state") == "available"]
        return bool(found)

    try:
        wait_for(available, 60, "the recording to be available at HQ", interval=0.5)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{app.output()[-4000:]}") from None
    return found[0]


@pytest.fixture
def env(tmp_path: Path) -> SyncEnv:
    require_debs()
    return make_env(tmp_path)


def test_a_recorded_call_is_downloadable_at_hq_with_each_voice_on_its_channel(
    env: SyncEnv, tmp_path: Path
) -> None:
    branch = with_pbx(env)
    with running(env) as app:
        alice, bob = Phone(branch, "1001", 1000, tmp_path), Phone(branch, "1002", 600, tmp_path)
        try:
            assert alice.registered() == 200
            assert bob.registered() == 200
            connect_call(alice, bob)
            time.sleep(3)
            alice.send("hangup")
            bob.state("DISCONNECTED")
        finally:
            alice.close()
            bob.close()
        cdr = hq_cdr_with_recording(env, app)
        assert cdr["caller_number"] == "1001"
        assert cdr["callee_number"] == "1002"
        assert cdr["recording"]["url"] == f"/api/v1/recordings/{env.site_id}/{cdr['recording_id']}"
        response = httpx.get(
            f"{env.agg_url}{cdr['recording']['url']}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        metrics = httpx.get(f"{env.app_url}/metrics", timeout=5).text
        assert 'callmesh_outbox_pending{outbox="recording"} 0.0' in metrics
    assert no_daemons_left(env.root)
    wav = tmp_path / "from-hq.wav"
    wav.write_bytes(response.content)
    rate, channels = read_channels(wav)
    assert len(channels) == 2
    left, right = channels
    assert dominant(left, rate, TONES) == 1000.0, "the caller's voice is on the left"
    assert dominant(right, rate, TONES) == 600.0, "the callee's voice is on the right"
