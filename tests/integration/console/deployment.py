"""A real aggregator and a real SIM-gateway appliance syncing to it, for console tests.

The appliance's outbox is filled before it starts with CDRs of site-a (one naming a
two-channel recording, queued for upload too), so everything the console shows has come
through the ingest path: CDRs, the recording, the SIMs and the site's status.
"""

from __future__ import annotations

import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.store import Outbox, Store
from appliance.sync.recordings import register_recording
from tests.integration.sim.gateway import ICCIDS
from tests.integration.sim.test_sim_gateway import APP_TOKEN, start_aggregator, start_gateway
from tests.procs import Service
from tests.sync_env import T0, TOKEN, SyncEnv, make_cdr, make_env, wait_for

CDR_COUNT = 42
QUEUED = range(30, 40)
CALLBACK, CALL_BACK = 40, 41  # the caller took a callback offer; its one try failed
NOT_ANSWERED = {CALL_BACK}  # besides every fourth CDR (make_cdr's no-answer)
PLAYED = 7  # the CDR whose call was recorded
RECORDING_ID = "rec-played"
RECORDING_S = 3
TOKENS = {
    "admin": TOKEN,
    "hq-viewer": "console-hq-viewer-token-0123",
    "site-viewer": "console-site-b-viewer-token-0123",
}
OTHER_SITE = "site-b"


@dataclass
class Deployment:
    """The running processes and what the tests look for."""

    env: SyncEnv
    services: list[Service]

    @property
    def console(self) -> str:
        return f"{self.env.agg_url}/console"

    @property
    def played_number(self) -> str:
        return f"+49170{PLAYED:04d}"

    def close(self) -> None:
        for svc in reversed(self.services):
            svc.close()


def start(root: Path) -> Deployment:
    """Configure, fill and start both processes; return once HQ holds everything."""
    env = make_env(root)
    _configure(env)
    _fill_outbox(env)
    deployment = Deployment(env, [start_aggregator(env)])
    try:
        deployment.services.append(start_gateway(env))
        _wait_synced(env)
    except BaseException:
        deployment.close()
        raise
    return deployment


def _configure(env: SyncEnv) -> None:
    agg = yaml.safe_load(env.agg_config.read_text())
    agg["api"]["tokens"] += [
        {"name": "viewer", "token": TOKENS["hq-viewer"], "role": "hq-viewer"},
        {
            "name": "branch-b",
            "token": TOKENS["site-viewer"],
            "role": "site-viewer",
            "sites": [OTHER_SITE],
        },
    ]
    env.agg_config.write_text(yaml.safe_dump(agg))
    app = yaml.safe_load(env.app_config.read_text())
    app.update(
        profile="sim-gateway",
        sim={"strategy": "fixed-order", "status_interval_s": 1, "evaluate_interval_s": 0.2},
        doctor={"first_run_s": 0},
        api={"tokens": [{"name": "ops", "token": APP_TOKEN, "role": "operator"}]},
    )
    env.app_config.write_text(yaml.safe_dump(app))


def _fill_outbox(env: SyncEnv) -> None:
    folder = env.root / "app" / "recordings"
    folder.mkdir(parents=True)
    wav = folder / f"{RECORDING_ID}.wav"
    write_two_channel_wav(wav, RECORDING_S)
    store = Store.open(env.root / "app" / "store")
    try:
        extra = {PLAYED: {"recording_id": RECORDING_ID}} | queued_calls() | failed_callback()
        docs = [make_cdr(n, **extra.get(n, {})) for n in range(CDR_COUNT)]
        Outbox(store, "cdr").append_many(docs)
        meta = {"cdr_id": "played"}
        register_recording(Outbox(store, "recording"), RECORDING_ID, wav, meta)
    finally:
        store.close()


def queued_calls() -> dict[int, dict[str, Any]]:
    """CDRs 30-39 passed the queue `support`: even ones answered after 0, 14, 28, 42 and
    56 s, odd ones abandoned (the reports page's queue tables)."""
    calls = {}
    for n in QUEUED:
        fields = {"queue": "support", "queue_entered": f"{T0 + n + 1:.3f}",
                  "queue_outcome": "answered" if n % 2 == 0 else "abandoned"}  # fmt: skip
        if n % 2 == 0:
            fields |= {"queue_wait_s": f"{(n - 30) * 7:.1f}", "queue_agent": "1003"}
        calls[n] = {"variables": fields}
    return calls


def failed_callback() -> dict[int, dict[str, Any]]:
    """CDR 40: the caller of the lost calls took a callback offer; CDR 41: its only try,
    not answered (the reports page's callback status)."""
    fields = {"queue": "support", "queue_entered": f"{T0 + CALLBACK + 1:.3f}",
              "queue_outcome": "callback", "queue_wait_s": "20.0"}  # fmt: skip
    back = {"callback_of": "queued-40", "callback_queue": "support", "callback_try": "1",
            "callback_status": "failed"}  # fmt: skip
    return {
        CALLBACK: {"variables": fields, "call_id": "queued-40"},
        CALL_BACK: {"variables": back, "call_id": "back-41", "disposition": "no-answer",
                    "answer": None, "billable_s": 0.0},
    }  # fmt: skip


def write_two_channel_wav(path: Path, seconds: int) -> None:
    """8 kHz 16-bit stereo: a 440 Hz tone on the caller's channel, 660 Hz on the callee's."""
    rate = 8000
    frames = bytearray()
    for i in range(rate * seconds):
        left = int(8000 * math.sin(2 * math.pi * 440 * i / rate))
        right = int(8000 * math.sin(2 * math.pi * 660 * i / rate))
        frames += struct.pack("<hh", left, right)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))


def _wait_synced(env: SyncEnv) -> None:
    wait_for(lambda: env.ingested() == CDR_COUNT, 60, "every CDR at HQ")

    def played_recording_stored() -> bool:
        found = env.api("/api/v1/cdrs", number=f"+49170{PLAYED:04d}")["cdrs"]
        return bool(found) and (found[0].get("recording") or {}).get("state") == "available"

    wait_for(played_recording_stored, 60, "the recording at HQ")

    def sims() -> set[str]:
        return {s["iccid"] for s in env.api("/api/v1/fleet/sims")["sims"]}

    wait_for(lambda: ICCIDS[0] in sims(), 30, "the gateway's SIMs at HQ")
