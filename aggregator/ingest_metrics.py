"""The ingest side's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    """The ingest side's Prometheus metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.cdrs = Counter(
            "callmesh_cdrs_ingested", "CDRs newly stored", ["site"], registry=registry
        )
        self.duplicates = Counter(
            "callmesh_cdrs_duplicate",
            "CDRs received again (already held)",
            ["site"],
            registry=registry,
        )
        self.rejected_records = Counter(
            "callmesh_cdrs_rejected", "Unreadable CDRs kept aside", ["site"], registry=registry
        )
        self.records_refused = Counter(
            "callmesh_records_refused",
            "Records and messages refused, per site, stream (cdr, sms, compliance, sim, "
            "message) and error id",
            ["site", "stream", "error_id"],
            registry=registry,
        )
        self.pending = Gauge(
            "callmesh_ingest_pending", "Messages received and not yet answered", registry=registry
        )
        self.latency = Histogram(
            "callmesh_ingest_latency_seconds",
            "Batch receive to durable commit",
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
        )
        self.backlog = Gauge(
            "callmesh_site_backlog",
            "CDRs a site reports waiting to be sent",
            ["site"],
            registry=registry,
        )
        self.peers_rejected = Counter(
            "callmesh_rejected_peers", "Connections refused by ZAP", ["reason"], registry=registry
        )
        self.sites_banned = Counter(
            "callmesh_sites_banned",
            "Bans of a site that spent its refusal or byte budget (connections cut)",
            ["site", "reason"],
            registry=registry,
        )
        self.protocol_errors = Counter(
            "callmesh_protocol_errors", "Messages refused", ["error_id"], registry=registry
        )
        self.sim_records_refused = Counter(
            "callmesh_sim_records_refused",
            "SIM records a site sent that HQ refused",
            ["site", "reason"],
            registry=registry,
        )
        self.db_errors = Counter(
            "callmesh_db_errors", "Database failures during ingest", registry=registry
        )
        self.recording_bytes = Counter(
            "callmesh_recording_received_bytes", "Recording bytes received", registry=registry
        )
        self.recordings_refused = Counter(
            "callmesh_recordings_refused",
            "Recording offers refused (size cap, site quota)",
            ["site", "reason"],
            registry=registry,
        )
        self.uploads_expired = Counter(
            "callmesh_recording_uploads_expired",
            "Unfinished recording uploads closed after going idle",
            registry=registry,
        )
        self.recordings_expired = Counter(
            "callmesh_recordings_expired",
            "Recordings deleted by retention",
            registry=registry,
        )
