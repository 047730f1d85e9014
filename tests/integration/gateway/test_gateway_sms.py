"""SMS and USSD end to end: a SIM-gateway appliance on a simulated modem (ptys, the real
driver), a webhook receiver, and a real aggregator over the sync link."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from appliance.pbx.webhooks import signature
from drivers.modem.simulator import ModemSimulator, SimulatorConfig
from tests.integration.test_sync import start_aggregator, start_appliance
from tests.procs import free_port
from tests.sync_env import SyncEnv, make_env, wait_for

APP_TOKEN = "gateway-operator-token-01"
SECRET = "webhook-secret-0123456789"
LONG = "Your parcel is waiting at the depot on Main Street. " * 4  # two SMS parts


class Hooks(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def hooks() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (Hooks,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sms", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[ModemSimulator]:
    config = SimulatorConfig(profile="quectel-ec25", count=1, directory=str(tmp_path / "by-id"))
    with ModemSimulator(config) as sim:
        sim.wait_booted(30)
        yield sim


def gateway_env(tmp_path: Path, simulator: ModemSimulator, hook_url: str) -> SyncEnv:
    env = make_env(tmp_path)
    config = yaml.safe_load(env.app_config.read_text())
    modem = simulator.info()[0]
    config.update(
        profile="sim-gateway",
        api={"tokens": [{"name": "ops", "token": APP_TOKEN, "role": "operator"}]},
        sim={"status_interval_s": 1},
        compliance={"dnc": ["+4930999999"]},
        gateway={
            "ready_timeout_s": 30,
            "modems": [{"channel": "gsm-0", "port": modem["at_by_id"], "imei": modem["imei"]}],
            "sms": {"webhook": {"url": hook_url, "secret": SECRET}, "ussd_timeout_s": 5},
        },
    )
    env.app_config.write_text(yaml.safe_dump(config))
    return env


class Gateway:
    """The appliance's local API."""

    def __init__(self, env: SyncEnv) -> None:
        self.url = env.app_url
        self.headers = {"Authorization": f"Bearer {APP_TOKEN}"}

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=self.headers, timeout=40)

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=5)
        response.raise_for_status()
        return response.json()

    def status(self, sms_id: str) -> str:
        return str(self.get(f"/api/v1/sms/{sms_id}")["status"])

    def channels_ready(self) -> str:
        body = httpx.get(f"{self.url}/healthz", timeout=5).json()
        return str(body["checks"]["sim"]["detail"])


def hq_sms(env: SyncEnv, direction: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = env.api("/api/v1/sms", direction=direction)["sms"]
    return rows


def test_sms_sent_received_webhooked_synced_and_ussd_answered(
    tmp_path: Path, simulator: ModemSimulator, hooks: tuple[str, list[Any]]
) -> None:
    hook_url, received = hooks
    env = gateway_env(tmp_path, simulator, hook_url)
    sim_info = simulator.info()[0]["sims"][0]  # type: ignore[index]
    iccid = sim_info["iccid"].rstrip("F")
    agg = start_aggregator(env)
    app = start_appliance(env)
    gw = Gateway(env)
    try:
        wait_for(lambda: gw.channels_ready().startswith("1 of 1"), 30, "the channel to be usable")
        answer = gw.post("/api/v1/sms", {"to": "+49 30 123456", "text": LONG})
        assert answer.status_code == 202, answer.text
        queued = answer.json()
        assert queued["status"] == "queued"
        wait_for(lambda: gw.status(queued["id"]) == "sent", 30, "the SMS to be sent")
        done = gw.get(f"/api/v1/sms/{queued['id']}")
        assert done["channel"] == "gsm-0"
        assert done["iccid"] == iccid
        assert len(done["refs"]) == 2
        parts = simulator.record(0).sent_sms
        assert {number for number, _ in parts} == {"+4930123456"}
        assert "".join(text for _, text in parts) == LONG

        for body, status, error in (
            ({"to": "call me", "text": "x"}, 422, "bad-number"),
            ({"to": "+4930123456", "text": "x" * 1600}, 422, "text-too-long"),
            ({"to": "+4930123456", "text": "x", "channel": "gsm-9"}, 404, "unknown-channel"),
            ({"to": "+4930999999", "text": "x"}, 403, "dnc-site"),
        ):
            refused = gw.post("/api/v1/sms", body)
            assert (refused.status_code, refused.json()["error_id"]) == (status, error)

        simulator.deliver_sms(0, "+4917099", "Balance low: top up soon")
        wait_for(lambda: gw.get("/api/v1/sms", direction="in")["sms"], 20, "the stored SMS")
        stored = gw.get("/api/v1/sms", direction="in")["sms"][0]
        assert (stored["from"], stored["text"], stored["iccid"]) == (
            "+4917099",
            "Balance low: top up soon",
            iccid,
        )
        wait_for(lambda: received, 20, "the webhook")
        headers, raw = received[0]
        stamp = headers["X-Callmesh-Timestamp"]
        assert headers["X-Callmesh-Signature"] == signature(SECRET, stamp, raw)
        hook = json.loads(raw)
        assert hook["event"] == "sms.received"
        assert hook["data"]["from"] == "+4917099"
        assert hook["data"]["iccid"] == iccid
        assert hook["data"]["sim_number"] == sim_info["number"]

        wait_for(lambda: hq_sms(env, "in") and hq_sms(env, "out"), 30, "both SMS at HQ")
        assert hq_sms(env, "in")[0]["text"] == "Balance low: top up soon"
        out = hq_sms(env, "out")[0]
        assert (out["id"], out["status"], out["number"]) == (queued["id"], "sent", "+4930123456")
        wait_for(lambda: env.api("/api/v1/fleet/sims")["sims"], 30, "the SIM at HQ")
        fleet = env.api(f"/api/v1/fleet/sims/{iccid}")
        assert fleet["sms"] == {"received": 1, "sent": 1, "failed": 0}

        simulator.set_ussd_reply(0, "*100#", "Your balance is 4.20 EUR")
        reply = gw.post("/api/v1/ussd", {"channel": "gsm-0", "code": "*100#"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["reply"] == "Your balance is 4.20 EUR"
        for body, status, error in (
            ({"channel": "gsm-9", "code": "*100#"}, 404, "unknown-channel"),
            ({"channel": "gsm-0", "code": "AT+CFUN=0"}, 422, "bad-ussd-code"),
        ):
            refused = gw.post("/api/v1/ussd", body)
            assert (refused.status_code, refused.json()["error_id"]) == (status, error)
    finally:
        app.close()
        agg.close()


def test_sms_queued_while_no_network_is_sent_after_a_restart(
    tmp_path: Path, simulator: ModemSimulator, hooks: tuple[str, list[Any]]
) -> None:
    env = gateway_env(tmp_path, simulator, hooks[0])
    agg = start_aggregator(env)
    app = start_appliance(env)
    gw = Gateway(env)
    try:
        wait_for(lambda: gw.channels_ready().startswith("1 of 1"), 30, "the channel to be usable")
        simulator.set_network(0, False)
        wait_for(lambda: gw.channels_ready().startswith("0 of 1"), 30, "the network to be gone")
        queued = gw.post("/api/v1/sms", {"to": "+4930123456", "text": "kept across restart"})
        assert queued.status_code == 202
        sms_id = queued.json()["id"]
        assert app.signal(signal.SIGTERM) == 0
        app.close()
        assert simulator.record(0).sent_sms == []
        simulator.set_network(0, True)
        app = start_appliance(env, "app2.log")
        wait_for(lambda: gw.status(sms_id) == "sent", 30, "the queued SMS to be sent")
        assert simulator.record(0).sent_sms == [("+4930123456", "kept across restart")]
        wait_for(lambda: hq_sms(env, "out"), 30, "the outcome at HQ")
    finally:
        app.close()
        agg.close()
