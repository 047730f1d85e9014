"""ZAP for the ingest socket: which CurveZMQ key belongs to which site.

Only configured, unrevoked site keys are admitted, and each connection is named by its
site id (the ZAP User-Id), so every message is attributed to the site its key is bound to.
A site the ingest gate has banned (aggregator/site_gate.py) is refused until its ban ends.
"""

from __future__ import annotations

import logging

import zmq
import zmq.asyncio
from prometheus_client import Counter
from zmq.auth.asyncio import AsyncioAuthenticator

from aggregator.settings import AggregatorSettings
from aggregator.site_gate import SiteGate

log = logging.getLogger(__name__)

ZAP_DOMAIN = "callmesh"


class SiteKeys:
    """Which CurveZMQ public key belongs to which site; revoked keys and bans are refused."""

    def __init__(self, settings: AggregatorSettings, rejected: Counter, gate: SiteGate) -> None:
        self._sites = {
            s.public_key.encode(): s.site_id for s in settings.ingest.sites if not s.revoked
        }
        self._revoked = {s.public_key.encode() for s in settings.ingest.sites if s.revoked}
        self._rejected = rejected
        self._gate = gate

    def callback(self, _domain: str, key: bytes) -> bool:
        """ZAP: admit known, unrevoked keys of sites not banned; count the rest."""
        site_id = self._sites.get(key)
        if site_id is not None:
            if not self._gate.banned(site_id):
                return True
            # Logged once when banned; a banned site retries every reconnect interval.
            self._rejected.labels(reason="banned-site").inc()
            return False
        reason = "revoked-key" if key in self._revoked else "unknown-key"
        self._rejected.labels(reason=reason).inc()
        log.warning("refused a peer", extra={"reason": reason, "key": key.decode()})
        return False

    def site_of(self, z85_key: bytes) -> str | None:
        return self._sites.get(z85_key)


class SiteAuthenticator(AsyncioAuthenticator):
    def __init__(self, context: zmq.asyncio.Context, site_keys: SiteKeys) -> None:
        super().__init__(context)
        self._site_keys = site_keys

    def curve_user_id(self, client_public_key: bytes) -> str:
        key = zmq.utils.z85.encode(client_public_key)
        return self._site_keys.site_of(key) or ""
