"""The appliance's composition root: builds drivers and services from settings and runs them.

Start-up order: HTTP socket bound (fails fast on a busy port), network applied (when
managed, so routes and the tunnel to HQ are up first), store opened, routing table loaded
from the store, compliance (before the PBX, whose routing chain and originations ask it),
PBX (Kamailio, rtpengine, CDRs) when enabled, the store pruner (its own periodic task, so
the store stays bounded with recording off), the gateway's modems and SIM policy, sync
client (when enabled), the health monitor (re-evaluates every check every few seconds for
/metrics), HTTP serving. Shutdown runs in reverse from SIGTERM/SIGINT, closing the store
last.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, Metric

from appliance.compliance.calls import CallCompliance, ComplianceDecider
from appliance.compliance.routes import build_compliance_router, install_error_handler
from appliance.compliance.service import ComplianceService
from appliance.compliance.sync import REFUSALS, DncTopic
from appliance.console import mount_agent_pages
from appliance.contact.remote_codes import forward_agent_codes
from appliance.contact.state_log import AGENT_STATES
from appliance.contact.wiring import ContactCentre, build_contact
from appliance.doctor_upload import (
    DoctorReportPublisher,
    DoctorSchedule,
    LatestReport,
    build_doctor_router,
)
from appliance.gateway.channels import ModemChannel, ModemCollector, ModemPool, modem_config
from appliance.gateway.diagnostics import build_diagnostics_router
from appliance.gateway.routes import build_sms_router
from appliance.gateway.sms import SmsService
from appliance.gateway.sms_store import OUTBOX as SMS_OUTBOX
from appliance.hotel.settings import PmsSettings
from appliance.pbx.assembly import build_exchange
from appliance.pbx.deciders import POLICY, TRUNK
from appliance.pbx.errors import PbxNotStartedError
from appliance.pbx.exchange import BranchExchange
from appliance.pbx.gsm import GsmDecider, GsmTrunkService
from appliance.pbx.metrics import PbxCollector, calls_in_progress
from appliance.pbx.webhooks import WebhookService
from appliance.routing import RoutingService
from appliance.routing.metrics import PeerCollector
from appliance.routing.sync import RoutingTopic
from appliance.settings import ApplianceSettings
from appliance.sim import SimChannel, SimService
from appliance.sim.metrics import SimCollector
from appliance.sim.sync import SimStatusPublisher, sim_commands
from appliance.store import Outbox, Store, StoreError
from appliance.store.alarm import alarm_detail, store_alarms, used_percent
from appliance.store.pruning import Pruner
from appliance.sync.client import SyncClient
from appliance.sync.features import OutboxStream, SyncFeatures
from appliance.sync.metrics import SyncMetrics
from appliance.upgrade import UpgradeStatus
from drivers.daemon.http import HttpServer
from drivers.daemon.lifecycle import Component, run_until_signalled
from drivers.daemon.observability import (
    Health,
    HealthMonitor,
    add_observability_routes,
    new_registry,
)
from drivers.daemon.version import __version__
from drivers.media.tts import EspeakTts
from drivers.modem.driver import ModemDriver
from drivers.sip.kamailio_config import Subscriber
from drivers.sync.protocol import CdrBatch, SmsBatch
from drivers.sync.session import BatchStream

log = logging.getLogger(__name__)

OUTBOXES = ("cdr", "recording", "compliance", "sms", "agent-state", "hotel")


class StoreComponent:
    """Owns the process's single LMDB environment."""

    name = "store"

    def __init__(self, settings: ApplianceSettings) -> None:
        self._settings = settings
        self.store: Store | None = None
        self.outboxes: dict[str, Outbox] = {}

    async def start(self) -> None:
        self.store = Store.open(self._settings.data_dir / "store", self._settings.store.map_size_mb)
        self.outboxes = {name: Outbox(self.store, name) for name in OUTBOXES}

    async def stop(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def get(self) -> Store:
        """The open store; only valid between start and stop."""
        if self.store is None:
            raise StoreError("store is not open")
        return self.store

    def pending(self, outbox: str) -> int:
        """Entries waiting in ``outbox`` (0 while the store is closed)."""
        return self.outboxes[outbox].pending() if outbox in self.outboxes else 0

    def check(self) -> tuple[bool, str]:
        """Health: the store is open and below its high-water mark."""
        if self.store is None:
            return False, "not open"
        percent = used_percent(self.store.usage())
        return not self.alarms(), alarm_detail(percent, self._settings.store.alarm_percent)

    def alarms(self) -> list[str]:
        """The store's alarms now (``store-high-water`` past ``store.alarm_percent``)."""
        if self.store is None:
            return []
        return store_alarms(used_percent(self.store.usage()), self._settings.store.alarm_percent)


def build(
    settings: ApplianceSettings, sim_channels: Sequence[SimChannel] | None = None
) -> list[Component]:
    """The appliance's components in start-up order.

    A SIM gateway drives the modems in ``settings.gateway`` unless ``sim_channels`` are
    given (tests and the demo's tooling put their own channels there).
    """
    facts = {"site_id": settings.site_id, "profile": settings.profile, "version": __version__}
    registry = new_registry("appliance", facts)
    health = Health("appliance", facts)
    store = StoreComponent(settings)
    health.add_check("store", store.check)
    _outbox_metrics(store, registry)
    app = FastAPI(title="callmesh appliance", version=__version__)
    monitor = HealthMonitor(health, registry)
    add_observability_routes(app, monitor, registry)
    http = HttpServer(app, settings.http.host, settings.http.port, name="appliance-http")
    routing = RoutingService(store.get)
    health.add_check("routing", routing.check)
    compliance = ComplianceService(settings.compliance, settings.site.timezone, store.get)
    install_error_handler(app)
    app.include_router(build_compliance_router(settings.api.tokens, compliance))
    components: list[Component] = [*_network(settings, health), store, routing, compliance]
    pruner = Pruner(settings.store.prune_interval_s)
    pbx = None
    contact = None
    if settings.pbx.enabled:
        pbx = _pbx(settings, store, health, app, routing)
        _call_compliance(settings, pbx, compliance)
        if pbx.peers is not None:
            registry.register(PeerCollector(pbx.peers))
        _pbx_metrics(pbx, registry)
        components.append(pbx)
        if settings.contact.queues:
            contact = build_contact(settings.contact, pbx, store.get, settings.data_dir)
            app.include_router(contact.router(settings.api.tokens))
            mount_agent_pages(app, contact, settings.api.tokens, settings.site.timezone)
            components.append(contact)
        agents = contact.service.acd.agents if contact is not None else {}
        forward_agent_codes(settings.contact.agent_codes, pbx, agents.__contains__)
        registry.register(CdrWriteCollector(pbx))
        pruner.add("calls", functools.partial(_prune_calls, pbx))
    components.append(pruner)
    sim = None
    if settings.profile == "sim-gateway":
        parts, sim, pool = _gateway(settings, store, health, registry, sim_channels)
        components += parts
        if pbx is not None and pool is not None:
            components.append(_gsm_trunks(settings, pbx, pool, sim))
        if pool is not None:
            sms = _sms(settings, store, sim, compliance, pool)
            app.include_router(build_sms_router(settings.api.tokens, sms))
            app.include_router(build_diagnostics_router(settings.api.tokens, pool, sim))
            components.append(sms)
    if settings.hotel.pms is not None:
        components += _hotel(settings.hotel.pms, settings, store, health, app, pbx)
    late: list[Component] = []
    doctor = LatestReport() if settings.sync.enabled else None
    app.include_router(build_doctor_router(settings.api.tokens, doctor))
    if doctor is not None:
        sync = _sync(settings, store, registry, routing, compliance, sim, pbx, contact, doctor)
        health.add_check("sync", sync.check)
        health.add_check("recording-uploads", sync.recordings_check)
        components.append(sync)
        if settings.doctor.upload:
            late.append(DoctorSchedule(settings, doctor))
    return [*components, monitor, http, *late]


def _sync(
    settings: ApplianceSettings,
    store: StoreComponent,
    registry: CollectorRegistry,
    routing: RoutingService,
    compliance: ComplianceService,
    sim: SimService | None,
    pbx: BranchExchange | None,
    contact: ContactCentre | None,
    doctor: LatestReport,
) -> SyncClient:
    """The link to HQ and what each feature sends and receives over it."""
    metrics = SyncMetrics(registry)
    metrics.routing_version.set_function(lambda: routing.version)
    features = SyncFeatures()
    cdrs = BatchStream("cdr", CdrBatch, settings.sync.window, settings.sync.batch_size)
    features.add_stream(OutboxStream(cdrs, metrics.sent.inc, metrics.acked.inc))
    routing_topic = RoutingTopic(routing, metrics.routing_messages)
    features.add_topic(routing_topic)
    features.add_status(routing_topic.status)
    features.add_status(UpgradeStatus(settings.data_dir))
    if pbx is not None:
        if pbx.peers is not None:
            features.add_status(pbx.peers.report)
        features.add_live_status(lambda: {"calls_active": calls_in_progress(pbx)})
    if contact is not None:
        features.add_live_status(contact.service.live_stats)
    if sim is not None:
        features.add_commands(sim_commands(sim), "sim")
        features.add_publisher(SimStatusPublisher(sim, settings.sim.status_interval_s))
        features.add_stream(OutboxStream(BatchStream(SMS_OUTBOX, SmsBatch)))
    features.add_topic(DncTopic(compliance))
    features.add_stream(OutboxStream(REFUSALS))
    features.add_publisher(DoctorReportPublisher(doctor))
    # Also without queues configured: changes logged before they were removed still go up.
    features.add_stream(OutboxStream(AGENT_STATES))
    if settings.hotel.pms is not None:
        from appliance.hotel.reports import STREAM as HOTEL_STREAM

        features.add_stream(OutboxStream(HOTEL_STREAM))
    return SyncClient(settings, store.get, metrics, features)


def _pbx(
    settings: ApplianceSettings,
    store: StoreComponent,
    health: Health,
    app: FastAPI,
    routing: RoutingService,
) -> BranchExchange:
    """Kamailio, rtpengine, CDRs and recordings; raises DialPlanError for a bad dial plan."""
    subscribers = [Subscriber(e.number, e.password, e.name) for e in settings.sip.extensions]
    gsm_channels = [m.channel for m in settings.gateway.modems]
    pbx = build_exchange(
        settings.pbx,
        settings.site_id,
        settings.sip.domain,
        subscribers,
        store.get,
        settings.data_dir,
        routing,
        gsm_channels if settings.profile == "sim-gateway" else (),
        timezone=settings.site.timezone,
    )
    health.add_check("pbx", pbx.check)
    app.include_router(pbx.router(settings.api.tokens))
    return pbx


def _call_compliance(
    settings: ApplianceSettings, pbx: BranchExchange, compliance: ComplianceService
) -> None:
    """Compliance joins the routing chain and checks every API origination."""
    calls = CallCompliance(compliance, settings.compliance.extensions)
    pbx.chain.add(ComplianceDecider(calls), POLICY)
    pbx.originations.add_check(calls.originate)


class CdrWriteCollector:
    """``callmesh_cdr_write_failures_total``: CDRs the store refused (logged whole)."""

    def __init__(self, pbx: BranchExchange) -> None:
        self._pbx = pbx

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            failures = self._pbx.calls.write_failures
        except PbxNotStartedError:
            failures = 0
        yield CounterMetricFamily(
            "callmesh_cdr_write_failures",
            "CDRs the store refused (each logged whole with error_id cdr-write-failed)",
            value=failures,
        )


def _prune_calls(pbx: BranchExchange, now: float) -> int:
    """Finished calls and old CDR index entries, recording or not."""
    return pbx.calls.prune(now)


def _hotel(
    pms_settings: PmsSettings,
    settings: ApplianceSettings,
    store: StoreComponent,
    health: Health,
    app: FastAPI,
    pbx: BranchExchange | None,
) -> list[Component]:
    """The FIAS link to the hotel's PMS, its durable postings and the rooms it keeps.

    With the PBX on, the rooms join the routing chain, their calls are charged and wake-up
    calls are placed through the media workers. Imported here: a site without a PMS link
    does not load the hotel.
    """
    from appliance.hotel.business_date import BusinessDate
    from appliance.hotel.charges import ChargeService
    from appliance.hotel.lamps import MessageLamps
    from appliance.hotel.pms_link import PmsLinkService
    from appliance.hotel.reports import HqReports
    from appliance.hotel.rooms import RoomBook
    from appliance.hotel.routes import build_hotel_router
    from appliance.hotel.wakeup_calls import WakeUpCallService
    from appliance.hotel.wakeups import WakeUpBook
    from appliance.hotel.wiring import build_client, join_routing_chain

    hotel, timezone = settings.hotel, settings.site.timezone
    rooms = RoomBook({r.room: r.extension for r in hotel.rooms}, hotel.checked_in_cos)
    reports = HqReports(store.get, timezone) if settings.sync.enabled else None
    client = build_client(pms_settings, timezone)
    business = BusinessDate(store.get, timezone, time.time)
    postings = reports.postings if reports else None
    pms = PmsLinkService(pms_settings, store.get, client, rooms, postings, business, hotel.dnd)
    health.add_check("pms", pms.check)
    book = None
    if pbx is not None:
        book = WakeUpBook(store.get, reports.wake_up if reports else None)
    app.include_router(build_hotel_router(settings.api.tokens, pms, book))
    if pbx is None or book is None:
        return [pms]
    exchange = pbx
    wake_ups = WakeUpCallService(
        hotel.wake_up, book, rooms, pms, lambda: exchange.media,
        EspeakTts(settings.data_dir / "hotel" / "tts"), time.time, timezone,
    )  # fmt: skip
    pms.record_listeners.append(wake_ups.on_record)
    lamps = MessageLamps(rooms, exchange.events.rpc, settings.sip.domain)
    pms.record_listeners.append(lamps.on_record)
    exchange.media_hooks.append(wake_ups.on_media_event)
    alert = exchange.webhooks.notify if exchange.webhooks is not None else None
    pms.alert = wake_ups.alert = alert
    join_routing_chain(
        exchange.chain, lambda: exchange.dialplan, hotel, rooms, pms, timezone, wake_ups, alert
    )
    charges = ChargeService(rooms, store.get, timezone, time.time, hotel.charges, business.current)
    exchange.cdr_listeners.append(charges.on_cdr)
    return [pms, charges, wake_ups]


def _gsm_trunks(
    settings: ApplianceSettings, pbx: BranchExchange, pool: ModemPool, sim: SimService
) -> GsmTrunkService:
    """The gateway's modems as PBX trunks: their media workers, groups and inbound routes."""
    gsm = GsmTrunkService(
        settings.pbx.gsm, pool.channels, sim, pbx.media, lambda: pbx.calls, lambda: pbx.dialplan
    )
    pbx.gsm = gsm
    pbx.chain.add(GsmDecider(gsm), TRUNK)
    return gsm


def _network(settings: ApplianceSettings, health: Health) -> list[Component]:
    """The managed network; pyroute2 (about 8 MiB) is loaded only when it is managed."""
    if not settings.network.manage:
        return []
    from drivers.net.component import NetworkComponent
    from drivers.net.netlink import NetlinkDriver

    network = NetworkComponent(
        settings.network.desired(), NetlinkDriver(), settings.network.dry_run
    )
    health.add_check("network", network.check)
    return [network]


def _gateway(
    settings: ApplianceSettings,
    store: StoreComponent,
    health: Health,
    registry: CollectorRegistry,
    channels: Sequence[SimChannel] | None,
) -> tuple[list[Component], SimService, ModemPool | None]:
    """The modems (unless channels are given) and the SIM policy, in start-up order."""
    parts: list[Component] = []
    pool = None
    if channels is None:
        pool = ModemPool(settings.gateway, _modem_channels(settings))
        health.add_check("modems", pool.check)
        registry.register(ModemCollector(pool))
        parts.append(pool)
        channels = pool.channels
    sim = SimService(settings.sim, settings.site.timezone, store.get, channels)
    health.add_check("sim", sim.check)
    registry.register(SimCollector(sim))
    if pool is not None:
        pool.on_change = sim.report
    return [*parts, sim], sim, pool


def _modem_channels(settings: ApplianceSettings) -> list[ModemChannel]:
    """One driver per configured modem (bridged to the PBX's GSM workers when it runs)."""
    return [
        ModemChannel(entry, ModemDriver(modem_config(entry, settings.pbx.enabled)))
        for entry in settings.gateway.modems
    ]


def _sms(
    settings: ApplianceSettings,
    store: StoreComponent,
    sim: SimService,
    compliance: ComplianceService,
    pool: ModemPool,
) -> SmsService:
    """SMS and USSD over the pool's modems, received SMS to the webhook when configured."""
    sms = settings.gateway.sms
    hook = sms.webhook
    webhooks = None
    if hook.url:
        webhooks = WebhookService(
            hook.url, hook.secret, settings.site_id, hook.max_attempts, hook.timeout_s
        )
    modems = {c.channel: c.driver for c in pool.channels}
    return SmsService(sms, store.get, modems, sim, compliance, webhooks)


def _outbox_metrics(store: StoreComponent, registry: Any) -> None:
    pending = Gauge(
        "callmesh_outbox_pending",
        "Entries waiting for the aggregator's ack",
        ["outbox"],
        registry=registry,
    )
    for name in OUTBOXES:
        pending.labels(outbox=name).set_function(functools.partial(store.pending, name))
    used = Gauge("callmesh_store_used_bytes", "Bytes used in the LMDB map", registry=registry)
    used.set_function(lambda: store.store.usage()["used_bytes"] if store.store else 0)
    size = Gauge("callmesh_store_map_size_bytes", "Size of the LMDB map", registry=registry)
    size.set_function(lambda: store.store.usage()["map_size_bytes"] if store.store else 0)
    alarm = Gauge(
        "callmesh_store_alarm",
        "1 while the LMDB map is past store.alarm_percent (store-high-water)",
        registry=registry,
    )
    alarm.set_function(lambda: len(store.alarms()))


def _pbx_metrics(pbx: BranchExchange, registry: CollectorRegistry) -> None:
    """Calls, Kamailio and rtpengine supervision, and the routing chain's latency."""
    registry.register(PbxCollector(pbx))
    registry.register(pbx.decision_seconds)


async def run(settings: ApplianceSettings) -> None:
    """Run the appliance until SIGTERM/SIGINT."""
    await run_until_signalled(build(settings))
