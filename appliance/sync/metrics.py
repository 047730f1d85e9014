"""The sync client's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SyncMetrics:
    """The sync client's Prometheus metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connected = Gauge(
            "callmesh_sync_connected", "1 while a session with HQ is up", registry=registry
        )
        self.sent = Counter("callmesh_cdrs_sent", "CDRs sent (repeats included)", registry=registry)
        self.acked = Counter(
            "callmesh_cdrs_acked", "CDRs acknowledged and removed", registry=registry
        )
        self.reconnects = Counter(
            "callmesh_sync_sessions_lost", "Sessions lost", ["reason"], registry=registry
        )
        self.restarts = Counter(
            "callmesh_sync_restarts",
            "Sync client restarts after an unexpected error",
            registry=registry,
        )
        self.protocol_errors = Counter(
            "callmesh_sync_protocol_errors",
            "Bad or refused messages",
            ["error_id"],
            registry=registry,
        )
        self.store_full = Gauge(
            "callmesh_store_used_ratio", "Fraction of the LMDB map in use", registry=registry
        )
        self.routing_version = Gauge(
            "callmesh_routing_version", "Version of the routing table in force", registry=registry
        )
        self.routing_messages = Counter(
            "callmesh_routing_messages",
            "Routing snapshots and updates by outcome",
            ["message", "outcome"],
            registry=registry,
        )
        self.recordings_quarantined = Counter(
            "callmesh_recordings_quarantined",
            "Recordings set aside after they could not be uploaded",
            ["reason"],
            registry=registry,
        )
