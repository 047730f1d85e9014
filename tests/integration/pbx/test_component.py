"""The BranchExchange in-process: health, live subscriber reload, restart on cfg change."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from appliance.pbx.assembly import build_exchange
from appliance.pbx.settings import PbxSettings
from appliance.store import Store
from drivers.sip.kamailio_config import KamailioConfig, Subscriber, render_config
from drivers.sip.probe import sip_options_ok
from drivers.sip.register_probe import Account, register
from tests.integration.pbx.harness import free_udp_tcp_port, media, no_daemons_left, require_debs


@pytest.mark.parametrize(("anchor_media", "workers"), [(True, True), (False, False)])
def test_rendered_config_passes_kamailio_check(
    tmp_path: Path, anchor_media: bool, workers: bool
) -> None:
    require_debs()
    cfg = tmp_path / "kamailio.cfg"
    dispatcher = tmp_path / "dispatcher.list"
    dispatcher.write_text("1 sip:127.0.0.1:5990 0 0 duid=w0\n")
    cfg.write_text(render_config(KamailioConfig(
        domain="d.example", sip_host="127.0.0.1", sip_port=5999, evapi_port=5998, ng_port=5997,
        subscriber_db=str(tmp_path / "s.sqlite"), route_secret="0f" * 32, anchor_media=anchor_media,
        pike_exempt=("127.0.0.9",), dispatcher_list=str(dispatcher) if workers else "",
        trunk_credentials=(("branch-7", "carrier.example", "pw"),) if workers else (),
    )))  # fmt: skip
    check = subprocess.run(
        ["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=20, check=False
    )
    assert check.returncode == 0, check.stderr[-2000:]


async def test_subscribers_reload_live_and_cfg_changes_restart(tmp_path: Path) -> None:
    """A changed subscriber list takes effect in the running Kamailio (its credentials
    htable is reloaded): an added extension registers, a removed one no longer does."""
    require_debs()
    settings = PbxSettings(
        sip_port=free_udp_tcp_port(),
        evapi_port=free_udp_tcp_port(),
        rtpengine_ng_port=free_udp_tcp_port(),
        route_port=free_udp_tcp_port(),
        rtp_port_min=31000,
        rtp_port_max=31099,
        kamailio_children=1,
        media=media(1),
    )
    store = Store.open(tmp_path / "store", 16)
    subs = [Subscriber("1001", "secret-1001-pw", "Alice")]
    pbx = build_exchange(settings, "site-a", "a.example", subs, lambda: store, tmp_path)
    try:
        await pbx.start()
        ok, detail = pbx.check()
        assert ok, detail
        pid = pbx.kamailio.daemon.pid
        port = settings.sip_port
        alice = Account("1001", "secret-1001-pw", "a.example", "127.0.0.1", port)
        dave = Account("1004", "secret-1004-pw", "a.example", "127.0.0.1", port)
        assert await register(alice) == 200
        assert await register(dave) in (401, 403, 407)
        assert not await pbx.apply("a.example", [Subscriber("1004", "secret-1004-pw")])
        assert pbx.kamailio.daemon.pid == pid
        assert await register(dave) == 200
        assert await register(alice) in (401, 403, 407)
        assert not await pbx.apply("a.example", [*subs, Subscriber("1004", "secret-1004-pw")])
        assert pbx.kamailio.daemon.pid == pid
        assert await pbx.apply("b.example", subs)
        assert pbx.kamailio.daemon.pid not in (None, pid)
        assert await sip_options_ok("127.0.0.1", settings.sip_port)
        for _ in range(60):
            if pbx.check()[0]:
                break
            await asyncio.sleep(0.05)
        assert pbx.check()[0]
    finally:
        await pbx.stop()
        store.close()
    assert not pbx.check()[0]
    assert no_daemons_left(tmp_path)
