"""BranchExchange: starts rtpengine, Kamailio, the event listener and the recordings loop.

Start order: recover what an earlier run left (open calls become ``interrupted`` CDRs,
orphaned recordings are adopted), the dial-plan endpoint Kamailio asks for a call's
route (calls between local phones it decides from the local routes rendered into its
tables, ``local_routes``), rtpengine, the media workers, Kamailio, then the evapi listener. Stop
runs in reverse; Kamailio goes before rtpengine so calls drain from signalling first.
A Kamailio restart loses every dialog: open calls are closed as ``interrupted``. An
rtpengine restart loses media: open calls are flagged and end as ``interrupted``, and
their partial recordings are recovered. A media worker that dies takes its calls with
it: they end as ``interrupted``, Kamailio is told to send BYE to the other ends and to
skip the worker until it answers OPTIONS again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter

from appliance.ivr.routes import build_ivr_router
from appliance.ivr.store import FlowStore
from appliance.ivr.wiring import build_ivr
from appliance.pbx.api import build_router
from appliance.pbx.calls import CallService
from appliance.pbx.cdr import CdrBuilder
from appliance.pbx.control import CallControl
from appliance.pbx.daemons import PbxDrivers, kamailio_config, run_dir, spool_dir
from appliance.pbx.deciders import (
    MEDIA,
    ROUTE,
    TRUNK,
    UNSERVED,
    DecisionChain,
    DialPlanDecider,
    RecordingPolicy,
    RouteQuery,
    UnservedGsm,
)
from appliance.pbx.dialplan import DialPlan
from appliance.pbx.errors import CallControlError, PbxNotStartedError
from appliance.pbx.gsm import GsmTrunkService
from appliance.pbx.intersite import InterSite, PeerAdmission
from appliance.pbx.local_routes import local_routes
from appliance.pbx.media import MediaWorker, dispatcher_list, dispatcher_set
from appliance.pbx.metrics import decision_histogram
from appliance.pbx.originate import OriginationService
from appliance.pbx.recordings import RecordingService
from appliance.pbx.rooms import RoomPlacement, RoomService
from appliance.pbx.settings import PbxSettings
from appliance.pbx.webhooks import WebhookService
from appliance.routing.peers import PeerMonitor
from appliance.routing.service import RoutingService
from appliance.store import Store
from drivers.daemon.settings_base import ApiToken
from drivers.media.protocol import (
    ErrorEvent,
    Event,
    GsmLegEvent,
    GsmStats,
    GsmStatsEvent,
    IvrEvent,
    LegEvent,
    RoomEvent,
    RoomLinkEvent,
    TransferEvent,
    WorkerConfig,
)
from drivers.sip.errors import RpcError
from drivers.sip.events import Failover, Invite, KamailioEvent
from drivers.sip.kamailio import RELOAD_RPCS
from drivers.sip.kamailio_config import LocalRoutes, Subscriber
from drivers.sip.probe import sip_options_ok

log = logging.getLogger(__name__)

EVENTS_CONNECT_S = 3.0
GSM_STATS_S = 1.0


class MediaListener(Protocol):
    """A feature served by the media workers: their events of its kind, and their exits."""

    def on_event(self, worker: MediaWorker, event: Event) -> None: ...

    def worker_lost(self, worker: MediaWorker) -> None: ...


def _ready(_worker: MediaWorker) -> None:
    """A media worker is ready: nothing to do, Kamailio's dispatcher probes it itself."""


class BranchExchange:
    """The PBX as one lifecycle component of the appliance."""

    name = "pbx"

    def __init__(
        self,
        pbx: PbxSettings,
        site_id: str,
        domain: str,
        subscribers: Sequence[Subscriber],
        store: Callable[[], Store],
        data_dir: Path,
        drivers: PbxDrivers,
        routing: RoutingService | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.settings = pbx
        self.site_id = site_id
        names: Mapping[str, str] = {s.number: s.name for s in subscribers}
        self.gsm: GsmTrunkService | None = None
        self._gsm_stats: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._domain = domain
        self._run_dir = run_dir(data_dir)
        self.peers: PeerMonitor | None = None
        self.intersite: InterSite | None = None
        if routing is not None:
            self.peers = PeerMonitor(
                lambda: routing.table,
                self._probe,
                pbx.peering.probe_interval_s,
                pbx.peering.probe_timeout_s,
                pbx.peering.down_after,
            )
            self.intersite = InterSite(
                site_id, pbx.peering, lambda: routing.table, names, self.peers
            )
        self._extensions = set(names)
        self.ivr = build_ivr(pbx, lambda: self._extensions, data_dir, self._call_variables,
                             timezone)  # fmt: skip
        self.dialplan = DialPlan(pbx.dialplan, names, pbx.media, pbx.gsm, self.intersite,
                                 self.ivr.registry.names)  # fmt: skip
        recorded = pbx.record_calls and pbx.anchor_media
        self._recorded = recorded
        self.chain = self._chain(recorded)
        # Features that act on every stored CDR (hotel call charges) join before start.
        self.cdr_listeners: list[Callable[[dict[str, Any]], None]] = []
        # Features that place their own worker calls (hotel wake-ups) see every worker
        # event first; one that answers True has consumed it.
        self.media_hooks: list[Callable[[MediaWorker, Event], bool]] = []
        self.decision_seconds = decision_histogram()
        self._store = store
        self._builder = CdrBuilder(site_id, names, record=recorded)
        self._spool = spool_dir(data_dir)
        self._wav_dir = data_dir / "recordings"
        self._calls: CallService | None = None
        self._recordings: RecordingService | None = None
        self.route_server = drivers.route_server
        self.rtpengine = drivers.rtpengine
        self.kamailio = drivers.kamailio
        self.events = drivers.events
        self.media = drivers.media
        self._wire()
        self.rooms = RoomService(
            lambda: [w for w in self.media.workers if not w.config.gsm_channels]
        )
        self.originations = OriginationService(
            self.media, lambda: self.calls, lambda: self.dialplan, domain
        )
        self.control = CallControl(pbx, lambda: self.calls, self.events, self.rtpengine.ng,
                                   self.originations, self.gsm_channels)  # fmt: skip
        self.webhooks: WebhookService | None = None
        self.media_listeners: dict[str, MediaListener] = {}
        self._media_watch: asyncio.Task[None] | None = None
        hook = pbx.webhook
        if hook.url:
            self.webhooks = WebhookService(
                hook.url, hook.secret, site_id, hook.max_attempts, hook.timeout_s
            )

    def _wire(self) -> None:
        """Hand the drivers the PBX's callbacks: decisions, events, exits and restarts."""
        self.route_server.answer_with(self._decide)
        self.events.subscribe(self._on_event)
        self.kamailio.daemon.subscribe(self._kamailio_died)
        self.rtpengine.daemon.subscribe(self._rtpengine_died, self._rtpengine_restarted)
        self.media.subscribe(self._on_media_event, self._media_worker_exited, _ready)

    def _chain(self, recorded: bool) -> DecisionChain:
        """The PBX's own deciders; features add theirs at the composition root."""
        chain = DecisionChain()
        chain.add(PeerAdmission(self.intersite, lambda: self.dialplan), ROUTE)
        chain.add(DialPlanDecider(lambda: self.dialplan), ROUTE)
        chain.add(RoomPlacement(lambda: self.rooms), TRUNK)
        chain.add(UnservedGsm(), UNSERVED)
        chain.add(RecordingPolicy(lambda: self.dialplan, recorded), MEDIA)
        return chain

    @property
    def calls(self) -> CallService:
        """Open calls and CDRs (available while started)."""
        if self._calls is None:
            raise PbxNotStartedError("the PBX is not started")
        return self._calls

    @property
    def recordings(self) -> RecordingService:
        """The recordings index and converter (available while started)."""
        if self._recordings is None:
            raise PbxNotStartedError("the PBX is not started")
        return self._recordings

    async def start(self) -> None:
        """Recover, then start rtpengine, Kamailio, the event listener, the recordings loop."""
        store = self._store()
        self._calls = CallService(store, self._builder)
        self._recordings = RecordingService(store, self._calls, self._spool, self._wav_dir)
        if self.webhooks is not None:
            self._calls.on_change = self.webhooks.notify
        self._calls.cdr_listeners = self.cdr_listeners
        self.calls.interrupt_all("appliance-restart")
        self.recordings.adopt_orphans()
        self.ivr.registry.attach(FlowStore(store))
        if self.webhooks is not None:
            self.webhooks.start()
        try:
            await self.route_server.start()
            if self.settings.anchor_media:
                await self.rtpengine.start()
            self._run_dir.mkdir(parents=True, exist_ok=True)
            (self._run_dir / "dispatcher.list").write_text(dispatcher_list(self._workers()))
            await self.media.start()
            self.kamailio.local_routes = self._local_routes()
            await self.kamailio.start()
        except BaseException:
            await self._stop_helpers()
            raise
        if self.peers is not None:
            await self.peers.start()
        self.events.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.events.connected.wait(), EVENTS_CONNECT_S)
        if self.settings.anchor_media:
            self._media_watch = asyncio.create_task(self.control.watch_media(), name="media-watch")
        if self.settings.record_calls and self.settings.anchor_media:
            self.recordings.start()

    async def stop(self) -> None:
        """Stop in reverse order; open calls are closed on the next start."""
        if self._media_watch is not None:
            self._media_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._media_watch
            self._media_watch = None
        if self.peers is not None:
            await self.peers.stop()
        await self.events.stop()
        await self.kamailio.stop()
        await self._stop_helpers()
        if self._recordings is not None:
            await self._recordings.stop()
        if self._calls is not None:
            self._calls.flush()
        self._calls = self._recordings = None

    async def _stop_helpers(self) -> None:
        await self.media.stop()
        await self.ivr.stop()
        await self.rtpengine.stop()
        await self.route_server.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()

    def check(self) -> tuple[bool, str]:
        """Health for /healthz: both daemons running and the event stream connected."""
        k_ok, k_detail = self.kamailio.daemon.check()
        r_ok, r_detail = self.rtpengine.daemon.check()
        if not self.settings.anchor_media:
            r_ok, r_detail = True, "not used (anchor_media off)"
        e_ok = self.events.connected.is_set()
        m_ok, m_detail = self.media.check()
        detail = f"kamailio {k_detail}; rtpengine {r_detail}; {m_detail}; events "
        detail += "connected" if e_ok else "disconnected"
        return k_ok and r_ok and m_ok and e_ok, detail

    async def apply(self, domain: str, subscribers: Sequence[Subscriber]) -> bool:
        """Apply changed extensions or domain; returns whether Kamailio was restarted."""
        names = {s.number: s.name for s in subscribers}
        if self.intersite is not None:
            self.intersite.names = names
        self._extensions = set(names)
        self.dialplan = DialPlan(self.settings.dialplan, names, self.settings.media,
                                 self.settings.gsm, self.intersite,
                                 self.ivr.registry.names)  # fmt: skip
        config = kamailio_config(
            self.settings, domain, self.kamailio.run_dir, bool(self.media.workers)
        )
        self.kamailio.local_routes = self._local_routes()
        restarted = await self.kamailio.apply(config, subscribers)
        if restarted:
            self._kamailio_died()
        else:
            await self._reload_local_routes()
        return restarted

    def _workers(self) -> list[WorkerConfig]:
        return [worker.config for worker in self.media.workers]

    def _local_routes(self) -> LocalRoutes:
        return local_routes(self.dialplan, self.chain, self._recorded)

    async def _reload_local_routes(self) -> None:
        """Kamailio rereads the credentials and local routes; until it does, changed
        numbers ask the chain and changed passwords are not yet in force."""
        try:
            for method, table in RELOAD_RPCS:
                await self.events.rpc(method, table)
        except RpcError as err:
            log.warning(
                "credentials and local routes not reloaded, Kamailio keeps the old ones: %s", err
            )

    def router(self, tokens: Sequence[ApiToken]) -> APIRouter:
        """The local call and IVR flow API routes, to mount on the appliance's FastAPI app."""
        router = APIRouter()
        router.include_router(
            build_router(lambda: self.calls, lambda: self.recordings, self.control, tokens)
        )
        router.include_router(build_ivr_router(self.ivr.registry, tokens))
        return router

    def _decide(self, query: Mapping[str, str]) -> dict[str, object]:
        started = time.perf_counter()
        decision = self.chain.decide(RouteQuery.parse(query)).wire()
        self.decision_seconds.observe(time.perf_counter() - started)
        return decision

    def _on_media_event(self, worker: MediaWorker, event: Event) -> None:
        if any(hook(worker, event) for hook in self.media_hooks):
            return
        if isinstance(event, (LegEvent, TransferEvent)):
            self.originations.on_event(worker, event)
        elif isinstance(event, (RoomEvent, RoomLinkEvent)):
            self.rooms.on_event(worker, event)
        elif isinstance(event, IvrEvent):
            self.ivr.on_event(worker, event)
        elif isinstance(event, GsmLegEvent) and self.gsm is not None:
            self.gsm.on_worker_event(worker, event)
        elif isinstance(event, GsmStatsEvent):
            waiting = self._gsm_stats.pop(worker.config.name, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(event.channels)
        elif event.TYPE in self.media_listeners:
            self.media_listeners[event.TYPE].on_event(worker, event)
        elif isinstance(event, ErrorEvent):
            log.warning("media worker %s: %s", worker.config.name, event.message,
                        extra={"error_id": event.error_id or "media-command-failed"})  # fmt: skip

    def _media_worker_exited(self, worker: MediaWorker) -> None:
        self.originations.worker_lost(worker)
        self.ivr.worker_lost(worker)
        self.rooms.worker_lost(worker)
        for listener in self.media_listeners.values():
            listener.worker_lost(worker)
        if self.gsm is not None:
            self.gsm.worker_lost(worker)
        if self._calls is None:
            return
        lost = [c for c in self.calls.live_calls() if c.get("media_peer") == worker.address]
        self.calls.media_lost(worker.address, "media-worker-restart")
        asyncio.get_running_loop().create_task(self._release(worker, lost))

    async def _release(self, worker: MediaWorker, lost: list[dict[str, Any]]) -> None:
        with contextlib.suppress(RpcError):
            await self.events.rpc(
                "dispatcher.set_state", "ip", dispatcher_set(worker.config), worker.uri
            )
        for call in lost:
            if call.get("dialog"):
                with contextlib.suppress(RpcError):
                    await self.events.rpc("dlg.end_dlg", *call["dialog"])

    async def _probe(self, host: str, port: int, wait_s: float) -> bool:
        return await sip_options_ok(host, port, wait_s, local_host=self.settings.sip_host)

    def _on_event(self, event: KamailioEvent) -> None:
        if isinstance(event, Failover):
            if self.peers is not None:
                reason = f"sip-{event.code or 408}"
                self.peers.failed_over(event.route, event.target, reason)
            self.calls.failed_over(event)
            return
        if self.gsm is not None and isinstance(event, Invite):
            event = self.gsm.enrich(event)
        self.calls.handle(event)

    async def gsm_channels(self) -> list[dict[str, Any]]:
        """Every GSM channel with its call and its link's live frame counters."""
        if self.gsm is None:
            raise CallControlError(404, "gsm-not-configured", "this PBX has no GSM channels")
        loop = asyncio.get_running_loop()
        frames: dict[str, Any] = {}
        for worker in self.media.workers:
            if not worker.config.gsm_channels:
                continue
            waiting = self._gsm_stats[worker.config.name] = loop.create_future()
            if worker.send(GsmStats()):
                with contextlib.suppress(TimeoutError):
                    frames.update(await asyncio.wait_for(waiting, GSM_STATS_S))
            self._gsm_stats.pop(worker.config.name, None)
        return [{**c, "frames": frames.get(c["channel"])} for c in self.gsm.status()]

    def _call_variables(self, call_id: str, variables: dict[str, str]) -> None:
        """Flow variables of an IVR call: into its CDR, and pushed as screen-pop data."""
        if self._calls is None:
            return
        self._calls.update(call_id, variables=variables)
        call = self._calls.get(call_id)
        if call is not None and self.webhooks is not None:
            self.webhooks.notify("call.variables", call)

    def _kamailio_died(self) -> None:
        self.calls.interrupt_all("sip-proxy-restart")

    def _rtpengine_died(self) -> None:
        self.calls.mark_media_interrupted("media-relay-restart")

    async def _rtpengine_restarted(self) -> None:
        self.recordings.adopt_orphans()
