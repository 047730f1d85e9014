"""The HQ and appliance HTTP apps as their composition roots build them, for API tests.

Only the stores (and the appliance's compliance service, which lives on its store) are
started. On the appliance the PBX and the modems stay stopped, so
their routes answer 503 ``pbx-not-started`` / ``not-started`` after the role check; the
PBX's own routes are fuzzed against a running PBX in tests/integration/pbx/.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI

from aggregator import service as aggregator_service
from aggregator.settings import AggregatorSettings
from aggregator.store.cdrs import CdrStore
from aggregator.store.schema import recordings, sims, sites, sms_messages
from appliance import service as appliance_service
from appliance.compliance.service import ComplianceService
from appliance.settings import ApplianceSettings
from drivers.daemon.http import HttpServer
from drivers.daemon.lifecycle import Component
from tests.sync_env import T0, make_cdr

SITE = "site-a"
HQ_TOKENS = {
    "admin": "hq-admin-token-0123456789",
    "hq-viewer": "hq-viewer-token-0123456789",
    "site-viewer": "hq-site-token-0123456789",
}
LOCAL_TOKENS = {
    "admin": "local-admin-token-0123456789",
    "operator": "local-operator-token-0123456789",
    "viewer": "local-viewer-token-0123456789",
}
# Text a spreadsheet would run as a formula, as a caller could set it.
T0_MS = int(T0 * 1000)
FORMULA_NAME = '=HYPERLINK("http://x.invalid","click")'


def hq_settings(root: Path) -> AggregatorSettings:
    """An aggregator with one token per role; the site-viewer sees ``SITE`` only."""
    tokens = [
        {"name": role, "token": token, "role": role}
        | ({"sites": [SITE]} if role == "site-viewer" else {})
        for role, token in HQ_TOKENS.items()
    ]
    return AggregatorSettings.model_validate(
        {"data_dir": str(root / "hq"), "http": {"port": 0}, "api": {"tokens": tokens}}
    )


@contextlib.contextmanager
def hq_app(root: Path) -> Iterator[tuple[FastAPI, sa.Engine]]:
    """The aggregator's app over a started database holding a few CDRs of two sites."""
    components = aggregator_service.build(hq_settings(root))
    database = next(c for c in components if isinstance(c, aggregator_service.DatabaseComponent))
    with _started(components, database):
        _seed(database.engine())
        yield _app(components), database.engine()


def _seed(engine: sa.Engine) -> None:
    """CDRs, a SIM, an SMS and a recording at ``SITE`` and at ``site-b``."""
    store = CdrStore(engine)
    caller = {"number": "+4930100", "extension": "1001", "name": FORMULA_NAME}
    store.ingest(SITE, [(n + 1, make_cdr(n, caller=caller)) for n in range(20)])
    store.ingest("site-b", [(1, make_cdr(1))])
    with engine.begin() as conn:
        for n, site in enumerate((SITE, "site-b")):
            conn.execute(sa.insert(sites), {"site_id": site, "first_seen_ms": 0, "last_seen_ms": 0})
            conn.execute(
                sa.insert(sims),
                {"iccid": f"8949000000000000{n}", "site_id": site, "status": "active",
                 "limits": {}, "usage": {}, "updated_ms": 0},
            )  # fmt: skip
            conn.execute(
                sa.insert(sms_messages),
                {"site_id": site, "sms_id": f"sms-{n}", "direction": "in", "at_ms": T0_MS,
                 "text": FORMULA_NAME, "status": "received", "received_ms": T0_MS},
            )  # fmt: skip
            conn.execute(
                sa.insert(recordings),
                {"site_id": site, "recording_id": f"rec-{n}", "sha256": "0" * 64, "size": 0,
                 "path": "none.wav", "stored_ms": 0},
            )  # fmt: skip


@contextlib.contextmanager
def appliance_app(root: Path) -> Iterator[FastAPI]:
    """A SIM gateway with a PBX, one token per role; only its store is started."""
    tokens = [{"name": role, "token": token, "role": role} for role, token in LOCAL_TOKENS.items()]
    settings = ApplianceSettings.model_validate(
        {
            "data_dir": str(root / "appliance"),
            "site_id": SITE,
            "profile": "sim-gateway",
            "http": {"port": 0},
            "pbx": {"enabled": True},
            "gateway": {"modems": [{"channel": "gsm-0", "port": str(root / "no-modem")}]},
            "api": {"tokens": tokens},
        }
    )
    components = appliance_service.build(settings)
    store = next(c for c in components if isinstance(c, appliance_service.StoreComponent))
    compliance = next(c for c in components if isinstance(c, ComplianceService))
    with _started(components, store, compliance):
        yield _app(components)


@contextlib.contextmanager
def _started(components: list[Component], *parts: Component) -> Iterator[None]:
    for part in parts:
        asyncio.run(part.start())
    try:
        yield
    finally:
        for part in reversed(parts):
            asyncio.run(part.stop())
        asyncio.run(next(c for c in components if isinstance(c, HttpServer)).stop())


def _app(components: list[Component]) -> FastAPI:
    app: FastAPI = next(c for c in components if isinstance(c, HttpServer)).app
    return app
