"""ZAP for the ingest socket: which CurveZMQ key belongs to which site.

Site keys come from HQ's YAML (``ingest.sites``) and from the database (sites that
enrolled with a one-time code, aggregator/enrolment). The database's keys are re-read
every ``enrolment.refresh_s``; a site whose enrolled key was revoked or replaced has its
connections cut then, and its old key is refused at the next handshake.

Only configured or enrolled, unrevoked site keys are admitted, and each connection is
named by its site id (the ZAP User-Id), so every message is attributed to the site its
key is bound to.
A site the ingest gate has banned (aggregator/site_gate.py) is refused until its ban ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Sequence

import sqlalchemy as sa
import zmq
import zmq.asyncio
from prometheus_client import Counter
from zmq.auth.asyncio import AsyncioAuthenticator

from aggregator.enrolment.codes import EnrolledKey
from aggregator.settings import AggregatorSettings
from aggregator.site_gate import SiteGate

log = logging.getLogger(__name__)

ZAP_DOMAIN = "callmesh"

# Every enrolled key, or None when nothing changed since the last call.
EnrolledKeys = Callable[[], Sequence[EnrolledKey] | None]


class SiteKeys:
    """Which CurveZMQ public key belongs to which site; revoked keys and bans are refused."""

    def __init__(self, settings: AggregatorSettings, rejected: Counter, gate: SiteGate) -> None:
        self._sites = {
            s.public_key.encode(): s.site_id for s in settings.ingest.sites if not s.revoked
        }
        self._revoked = {s.public_key.encode() for s in settings.ingest.sites if s.revoked}
        self._enrolled: dict[bytes, str] = {}
        self._enrolled_revoked: set[bytes] = set()
        self._refresh_s = settings.enrolment.refresh_s
        self._rejected = rejected
        self._gate = gate

    async def watch(self, read: EnrolledKeys, worker: concurrent.futures.Executor) -> None:
        """Every ``refresh_s``, re-read the enrolled keys (``read`` on ``worker``)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                found = await loop.run_in_executor(worker, read)
            except sa.exc.SQLAlchemyError as err:
                log.warning(
                    "cannot read enrolled site keys",
                    extra={"error_id": "site-keys-unreadable", "error": str(err)},
                )
            else:
                if found is not None:
                    self.apply(found)
            await asyncio.sleep(self._refresh_s)

    def apply(self, found: Sequence[EnrolledKey]) -> None:
        """Take ``found`` as the enrolled keys; cut sites whose key went away."""
        enrolled = {k.public_key.encode(): k.site_id for k in found if not k.revoked}
        for key, site_id in self._enrolled.items():
            if enrolled.get(key) != site_id:
                self._gate.cut(site_id, "key-revoked")
        self._enrolled = enrolled
        self._enrolled_revoked = {k.public_key.encode() for k in found if k.revoked}

    def callback(self, _domain: str, key: bytes) -> bool:
        """ZAP: admit known, unrevoked keys of sites not banned; count the rest."""
        site_id = self.site_of(key)
        if site_id is not None:
            if not self._gate.banned(site_id):
                return True
            # Logged once when banned; a banned site retries every reconnect interval.
            self._rejected.labels(reason="banned-site").inc()
            return False
        revoked = key in self._revoked or key in self._enrolled_revoked
        reason = "revoked-key" if revoked else "unknown-key"
        self._rejected.labels(reason=reason).inc()
        log.warning(
            "refused a peer", extra={"error_id": reason, "reason": reason, "key": key.decode()}
        )
        return False

    def site_of(self, z85_key: bytes) -> str | None:
        return self._sites.get(z85_key) or self._enrolled.get(z85_key)


class SiteAuthenticator(AsyncioAuthenticator):
    def __init__(self, context: zmq.asyncio.Context, site_keys: SiteKeys) -> None:
        super().__init__(context)
        self._site_keys = site_keys

    def curve_user_id(self, client_public_key: bytes) -> str:
        key = zmq.utils.z85.encode(client_public_key)
        return self._site_keys.site_of(key) or ""
