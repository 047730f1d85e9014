"""A two-process sync deployment for tests: keys, configs, CDR generation, probes."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
import yaml

from appliance.pbx.cdr import time_ordered_id
from appliance.store import Outbox, Store
from drivers.sync import keys
from tests.procs import free_port, write_yaml

TOKEN = "test-admin-token-0123456789"
T0 = 1_764_000_000.0  # 2025-11-24T16:00:00Z


def make_cdr(n: int, **extra: Any) -> bytes:
    """A CDR document numbered ``n`` (``n`` also orders it in time)."""
    doc = {
        "id": time_ordered_id(int(T0 * 1000) + n, n.to_bytes(10, "big")),
        "n": n,
        "conversation_id": f"conv-{n}",
        "direction": "outbound",
        "caller": {"number": "+4930100", "extension": f"10{n % 3:02d}", "name": "Desk"},
        "callee": {"number": f"+49170{n % 1000:04d}"},
        "trunk": "gsm-1" if n % 2 else "sip-1",
        "start": T0 + n,
        "answer": T0 + n + 5 if n % 4 else None,
        "end": T0 + n + 65,
        "duration_s": 65.0,
        "billable_s": 60.0 if n % 4 else 0.0,
        "disposition": "answered" if n % 4 else "no-answer",
        "hangup_cause": "normal",
        "hangup_side": "caller",
    }
    doc.update(extra)
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed


@dataclass
class SyncEnv:
    """Paths and ports of one aggregator and one appliance."""

    root: Path
    agg_port: int
    app_port: int
    ingest: str
    site_id: str = "site-a"

    @property
    def agg_config(self) -> Path:
        return self.root / "aggregator.yaml"

    @property
    def app_config(self) -> Path:
        return self.root / "appliance.yaml"

    @property
    def agg_url(self) -> str:
        return f"http://127.0.0.1:{self.agg_port}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    def prefill(self, count: int, start: int = 0) -> None:
        store = Store.open(self.root / "app" / "store")
        try:
            outbox = Outbox(store, "cdr")
            for first in range(start, start + count, 5000):
                last = min(first + 5000, start + count)
                outbox.append_many([make_cdr(n) for n in range(first, last)])
        finally:
            store.close()

    def api(self, path: str, client: httpx.Client | None = None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        get = httpx.get if client is None else client.get
        response = get(f"{self.agg_url}{path}", params=params, headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def ingested(self, client: httpx.Client | None = None) -> int:
        """CDRs the aggregator holds for the site (0 before it first connected).

        Pollers pass one ``client`` for all their calls: a new one per call costs
        milliseconds of CPU (TLS set-up), which a benchmark would take from what it measures.
        """
        try:
            found = self.api(f"/api/v1/sites/{self.site_id}", client)
        except httpx.HTTPError:
            return -1
        return int(found["cdrs_received"])

    def pending(self, client: httpx.Client | None = None) -> int:
        """CDRs waiting in the appliance's outbox, read from its /metrics."""
        get = httpx.get if client is None else client.get
        text = get(f"{self.app_url}/metrics", timeout=5).text
        match = re.search(r'callmesh_outbox_pending\{outbox="cdr"\} ([0-9.e+]+)', text)
        assert match, "no outbox metric"
        return int(float(match.group(1)))


def make_env(root: Path, db_url: str | None = None, **sync: Any) -> SyncEnv:
    """Keys and configs for an aggregator and one appliance on loopback."""
    env = SyncEnv(root, free_port(), free_port(), f"tcp://127.0.0.1:{free_port()}")
    agg_pub, _ = keys.generate(root / "agg" / "keys", "aggregator")
    site_pub, _ = keys.generate(root / "app" / "keys", env.site_id)
    write_yaml(
        env.agg_config,
        {
            "data_dir": str(root / "agg"),
            "http": {"port": env.agg_port},
            "database": {"url": db_url},
            "api": {"tokens": [{"name": "t", "token": TOKEN, "role": "admin"}]},
            "ingest": {
                "bind": env.ingest,
                "sites": [
                    {"site_id": env.site_id, "public_key": keys.load_public(site_pub).decode()}
                ],
            },
        },
    )
    write_yaml(
        env.app_config,
        {
            "site_id": env.site_id,
            "profile": "branch",
            "data_dir": str(root / "app"),
            "http": {"port": env.app_port},
            "sync": {
                "enabled": True,
                "endpoint": env.ingest,
                "server_public_key": keys.load_public(agg_pub).decode(),
                "ack_timeout_s": 3,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 1,
                "status_interval_s": 1,
                **sync,
            },
            "recordings": {"retention_days": 0, "min_free_mb": 0},
        },
    )
    return env


def admit_site(env: SyncEnv, site_id: str, **ingest: object) -> Path:
    """Admit another site's key at HQ (and set ``ingest`` options); its secret key file."""
    public, secret = keys.generate(env.root / site_id, site_id)
    config = yaml.safe_load(env.agg_config.read_text())
    config["ingest"]["sites"].append(
        {"site_id": site_id, "public_key": keys.load_public(public).decode()}
    )
    config["ingest"].update(ingest)
    env.agg_config.write_text(yaml.safe_dump(config))
    return secret


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
