"""The aggregator's composition root: database, ingest, HTTP API, web console and metrics.

Start-up order: HTTP socket bound, database connected (schema created), recording
receiver opened, ingest ROUTER bound, HTTP serving. Shutdown in reverse from SIGTERM/SIGINT.

The process hands the GIL between threads every 0.5 ms instead of 5 ms: the commit
thread gives it up for each SQLite statement and, under load, otherwise waits up to 5 ms
to get it back from the decode thread; ingest is about 7 % faster this way
(bench/RESULTS.md, "Sync link").
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import sqlalchemy as sa
from fastapi import FastAPI

from aggregator.api import mount_api
from aggregator.cdr_sync import CdrSync
from aggregator.console import mount_console
from aggregator.directory.sync import DirectorySync
from aggregator.doctor.sync import DoctorSync
from aggregator.enrolment.codes import EnrolledKeyReader
from aggregator.fleet.sync import FleetSync
from aggregator.hotel.sync import HotelSync
from aggregator.ingest import IngestServer
from aggregator.ingest_features import IngestFeatures
from aggregator.ingest_metrics import IngestMetrics
from aggregator.queues.agent_sync import STREAM, AgentStateSync
from aggregator.recording_sync import RecordingSync
from aggregator.refusals import Refusals
from aggregator.settings import AggregatorSettings
from aggregator.site_metrics import SiteCollector
from aggregator.site_sync import SiteSessions
from aggregator.sites.live_queues import log_refused
from aggregator.sites.queue_metrics import QueueCollector
from aggregator.sms_sync import SmsSync
from aggregator.store.db import DatabaseError, create_engine
from aggregator.store.partitions import drop_old_months, make_ahead
from drivers.daemon.http import HttpServer
from drivers.daemon.lifecycle import Component, run_until_signalled
from drivers.daemon.observability import (
    Health,
    HealthMonitor,
    add_observability_routes,
    new_registry,
)
from drivers.daemon.version import __version__
from drivers.sync.protocol import (
    AgentStateBatch,
    CommandResult,
    ComplianceBatch,
    DoctorReportMessage,
    Hello,
    HotelBatch,
    RecChunk,
    RecOffer,
    SimStatus,
    SmsBatch,
    SnapshotRequest,
    SnapshotResult,
    Status,
)

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005
RETENTION_INTERVAL_S = 86_400.0

__all__ = ["DatabaseError", "build", "run"]


class DatabaseComponent:
    """Owns the SQLAlchemy engine."""

    name = "database"

    def __init__(self, settings: AggregatorSettings) -> None:
        self._url = settings.database_url()
        self._data_dir = settings.data_dir
        self._engine: sa.Engine | None = None

    async def start(self) -> None:
        try:
            self._data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DatabaseError(f"cannot create data directory {self._data_dir}: {err}") from None
        self._engine = create_engine(self._url)

    async def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def engine(self) -> sa.Engine:
        """The engine; only valid between start and stop."""
        if self._engine is None:
            raise DatabaseError("database is not connected")
        return self._engine

    def check(self) -> tuple[bool, str]:
        """Health: a trivial query answers."""
        with self.engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True, self.engine().dialect.name


def build(settings: AggregatorSettings) -> list[Component]:
    """The aggregator's components in start-up order."""
    facts = {"version": __version__}
    registry = new_registry("aggregator", facts)
    health = Health("aggregator", facts)
    database = DatabaseComponent(settings)
    health.add_check("database", database.check)
    metrics = IngestMetrics(registry)
    budget = settings.ingest
    refusals = Refusals(metrics.records_refused, budget.refusal_rate, budget.refusal_burst)
    recordings, features = _sync_features(settings, database.engine, metrics, refusals)
    ingest = IngestServer(settings, metrics, refusals, features, EnrolledKeyReader(database.engine))
    app = FastAPI(title="callmesh aggregator", version=__version__)
    monitor = HealthMonitor(health, registry)
    add_observability_routes(app, monitor, registry)
    registry.register(SiteCollector(database.engine))
    registry.register(QueueCollector(database.engine))
    mount_api(app, settings, database.engine)
    mount_console(app, settings, database.engine)
    http = HttpServer(app, settings.http.host, settings.http.port, name="aggregator-http")
    return [database, recordings, ingest, monitor, http]


def _sync_features(
    settings: AggregatorSettings,
    engine: Callable[[], sa.Engine],
    metrics: IngestMetrics,
    refusals: Refusals,
) -> tuple[RecordingSync, IngestFeatures]:
    """What each feature handles on the sync link (aggregator/ingest_features.py)."""
    features = IngestFeatures()
    sites = SiteSessions(engine, metrics.backlog)
    features.handle(Hello, sites.hello)
    features.handle(Status, sites.status)
    features.group(CdrSync(engine, metrics, refusals).stream())
    recordings = RecordingSync(settings, engine, metrics)
    features.handle(RecOffer, recordings.offer)
    features.handle(RecChunk, recordings.chunk)
    features.every("recording sweep", settings.recordings.sweep_interval_s, recordings.sweep)
    fleet = FleetSync(engine, refusals, metrics.sim_records_refused)
    sites.on_hello(fleet.hello)
    features.handle(CommandResult, fleet.command_result)
    features.handle(SimStatus, fleet.sim_status)
    features.add_stream(ComplianceBatch, "compliance", fleet.store_refusals)
    directory = DirectorySync(engine)
    sites.on_hello(directory.hello)
    sites.on_status(directory.status)
    sites.on_status(log_refused)
    features.handle(SnapshotRequest, directory.request)
    features.handle(SnapshotResult, directory.result)
    features.push(directory.pusher.due)
    features.push(fleet.commands.due)
    features.add_stream(SmsBatch, "sms", SmsSync(engine, refusals).store)
    features.handle(DoctorReportMessage, DoctorSync(engine, refusals).report)
    features.every("CDR months ahead", RETENTION_INTERVAL_S, lambda: make_ahead(engine()))
    keep_months = settings.database.keep_months
    if keep_months is not None:
        features.every(
            "CDR retention", RETENTION_INTERVAL_S, lambda: drop_old_months(engine(), keep_months)
        )
    features.add_stream(AgentStateBatch, STREAM, AgentStateSync(engine, refusals).store)
    features.add_stream(HotelBatch, "hotel", HotelSync(engine, refusals).store)
    return recordings, features


async def run(settings: AggregatorSettings) -> None:
    """Run the aggregator until SIGTERM/SIGINT."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    await run_until_signalled(build(settings))
