"""PbxComponent: starts rtpengine, Kamailio, the event listener and the recordings loop.

Start order: recover what an earlier run left (open calls become ``interrupted`` CDRs,
orphaned recordings are adopted), the dial-plan endpoint Kamailio asks for every call's
route, rtpengine, Kamailio, then the evapi listener. Stop
runs in reverse; Kamailio goes before rtpengine so calls drain from signalling first.
A Kamailio restart loses every dialog: open calls are closed as ``interrupted``. An
rtpengine restart loses media: open calls are flagged and end as ``interrupted``, and
their partial recordings are recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from appliance.pbx.api import build_router
from appliance.pbx.calls import CallService
from appliance.pbx.cdr import CdrBuilder, conversation_id
from appliance.pbx.dialplan import Decision, DialPlan
from appliance.pbx.errors import PbxNotStartedError
from appliance.pbx.intersite import InterSite
from appliance.pbx.recordings import RecordingService
from appliance.pbx.settings import PbxSettings
from appliance.pbx.webhooks import WebhookService
from appliance.routing.peers import PeerMonitor
from appliance.routing.service import RoutingService
from appliance.store import Store
from drivers.runtime.settings_base import ApiToken
from drivers.sip.evapi import EvapiClient
from drivers.sip.kamailio import KamailioDriver, find_module_path
from drivers.sip.kamailio_config import KamailioConfig, Subscriber
from drivers.sip.probe import sip_options_ok
from drivers.sip.routeserver import RouteServer
from drivers.sip.rtpengine import RtpengineConfig, RtpengineDriver

log = logging.getLogger(__name__)

EVENTS_CONNECT_S = 3.0


def kamailio_config(pbx: PbxSettings, domain: str, run_dir: Path) -> KamailioConfig:
    """Kamailio's rendering inputs from the PBX settings."""
    return KamailioConfig(
        domain=domain,
        sip_host=pbx.sip_host,
        sip_port=pbx.sip_port,
        evapi_port=pbx.evapi_port,
        ng_port=pbx.rtpengine_ng_port,
        subscriber_db=str(run_dir / "subscriber.sqlite"),
        children=pbx.kamailio_children,
        fr_timer_ms=pbx.fr_timer_ms,
        fr_inv_timer_ms=pbx.no_answer_s * 1000,
        min_expires=pbx.min_expires_s,
        max_expires=pbx.max_expires_s,
        pike_window_s=pbx.pike_window_s,
        pike_requests=pbx.pike_requests,
        ban_seconds=pbx.ban_s,
        pike_exempt=pbx.pike_exempt,
        route_port=pbx.route_port,
        trunk_sources=tuple((t.host, t.port) for t in pbx.dialplan.trunks),
        anchor_media=pbx.anchor_media,
        record=pbx.record_calls and pbx.anchor_media,
        max_call_seconds=pbx.max_call_s,
        module_path=find_module_path(),
    )


class PbxComponent:
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
        routing: RoutingService | None = None,
    ) -> None:
        self.settings = pbx
        self.site_id = site_id
        run_dir = data_dir / "pbx" / "run"
        spool = data_dir / "pbx" / "spool"
        names: Mapping[str, str] = {s.number: s.name for s in subscribers}
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
        self.dialplan = DialPlan(pbx.dialplan, names, self.intersite)
        self.route_server = RouteServer(pbx.sip_host, pbx.route_port, self._decide)
        recorded = pbx.record_calls and pbx.anchor_media
        self._store = store
        self._builder = CdrBuilder(site_id, names, record=recorded)
        self._spool = spool
        self._wav_dir = data_dir / "recordings"
        self._calls: CallService | None = None
        self._recordings: RecordingService | None = None
        self.rtpengine = RtpengineDriver(
            run_dir,
            RtpengineConfig(
                host=pbx.sip_host,
                ng_port=pbx.rtpengine_ng_port,
                port_min=pbx.rtp_port_min,
                port_max=pbx.rtp_port_max,
                recording_dir=spool,
                delete_delay_s=pbx.recording_delete_delay_s,
                threads=pbx.rtpengine_threads,
            ),
            on_exit=self._rtpengine_died,
            on_restart=self._rtpengine_restarted,
        )
        self.kamailio = KamailioDriver(
            run_dir,
            kamailio_config(pbx, domain, run_dir),
            subscribers,
            on_exit=self._kamailio_died,
        )
        self.events = EvapiClient(pbx.sip_host, pbx.evapi_port, self._on_event)
        self.webhooks: WebhookService | None = None
        hook = pbx.webhook
        if hook.url:
            self.webhooks = WebhookService(
                hook.url, hook.secret, site_id, hook.max_attempts, hook.timeout_s
            )

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
        self.calls.interrupt_all("appliance-restart")
        self.recordings.adopt_orphans()
        if self.webhooks is not None:
            self.webhooks.start()
        try:
            await self.route_server.start()
            if self.settings.anchor_media:
                await self.rtpengine.start()
            await self.kamailio.start()
        except BaseException:
            await self._stop_helpers()
            raise
        if self.peers is not None:
            await self.peers.start()
        self.events.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.events.connected.wait(), EVENTS_CONNECT_S)
        if self.settings.record_calls and self.settings.anchor_media:
            self.recordings.start()

    async def stop(self) -> None:
        """Stop in reverse order; open calls are closed on the next start."""
        if self.peers is not None:
            await self.peers.stop()
        await self.events.stop()
        await self.kamailio.stop()
        await self._stop_helpers()
        if self._recordings is not None:
            await self._recordings.stop()
        self._calls = self._recordings = None

    async def _stop_helpers(self) -> None:
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
        detail = f"kamailio {k_detail}; rtpengine {r_detail}; events "
        detail += "connected" if e_ok else "disconnected"
        return k_ok and r_ok and e_ok, detail

    async def apply(self, domain: str, subscribers: Sequence[Subscriber]) -> bool:
        """Apply changed extensions or domain; returns whether Kamailio was restarted."""
        names = {s.number: s.name for s in subscribers}
        if self.intersite is not None:
            self.intersite.names = names
        self.dialplan = DialPlan(self.settings.dialplan, names, self.intersite)
        config = kamailio_config(self.settings, domain, self.kamailio.run_dir)
        restarted = await self.kamailio.apply(config, subscribers)
        if restarted:
            self._kamailio_died()
        return restarted

    def router(self, tokens: Sequence[ApiToken]) -> APIRouter:
        """The local call API routes, to mount on the appliance's FastAPI app."""
        return build_router(lambda: self.calls, lambda: self.recordings, tokens)

    def _decide(self, query: Mapping[str, str]) -> dict[str, object]:
        caller, dialled = query.get("caller", ""), query.get("dialled", "")
        call_id = query.get("call_id", "")
        decision: Decision
        if query.get("peer") == "1":
            if self.intersite is None:
                log.warning("call from another site refused: no routing here")
                decision = Decision("reject", code=403, reason="peering-disabled")
            else:
                decision = self.intersite.admit(self.dialplan, query)
        else:
            decision = self.dialplan.decide(caller, dialled, query.get("trunk") == "1", call_id)
        wire = decision.wire()
        if not wire["conversation"] and call_id:
            wire["conversation"] = conversation_id(self.site_id, call_id)
        return wire

    async def _probe(self, host: str, port: int, wait_s: float) -> bool:
        return await sip_options_ok(host, port, wait_s, local_host=self.settings.sip_host)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "failover":
            if self.peers is not None:
                reason = f"sip-{event.get('code') or 408}"
                self.peers.failed_over(str(event.get("route")), str(event.get("target")), reason)
            self.calls.failed_over(event)
            return
        self.calls.handle(event)

    def _kamailio_died(self) -> None:
        self.calls.interrupt_all("sip-proxy-restart")

    def _rtpengine_died(self) -> None:
        self.calls.mark_media_interrupted("media-relay-restart")

    async def _rtpengine_restarted(self) -> None:
        self.recordings.adopt_orphans()
