"""Builds the PBX: its drivers from the settings, then the ``BranchExchange`` over them.

Called only from composition roots (``appliance/service.py``; the PBX test runner and
benchmark, which stand in for it). Nothing else constructs the PBX's drivers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from appliance.pbx.daemons import (
    PbxDrivers,
    kamailio_config,
    rtpengine_config,
    run_dir,
    spool_dir,
)
from appliance.pbx.exchange import BranchExchange
from appliance.pbx.media import MediaPool, gsm_worker_configs, worker_configs
from appliance.pbx.settings import PbxSettings
from appliance.routing.service import RoutingService
from appliance.store import Store
from drivers.sip.evapi import EvapiClient
from drivers.sip.kamailio import KamailioDriver
from drivers.sip.kamailio_config import LOOPBACK, Subscriber
from drivers.sip.routeserver import RouteServer
from drivers.sip.rtpengine import RtpengineDriver


def build_drivers(
    pbx: PbxSettings,
    domain: str,
    subscribers: Sequence[Subscriber],
    data_dir: Path,
    gsm_channels: Sequence[str] = (),
) -> PbxDrivers:
    """The PBX's drivers, not started; ``gsm_channels`` get GSM workers of their own."""
    run = run_dir(data_dir)
    workers = worker_configs(pbx.media, pbx.sip_host, pbx.sip_port, domain)
    workers += gsm_worker_configs(pbx.gsm, gsm_channels, pbx.sip_host, pbx.sip_port, domain)
    return PbxDrivers(
        route_server=RouteServer(LOOPBACK, pbx.route_port),
        rtpengine=RtpengineDriver(run, rtpengine_config(pbx, spool_dir(data_dir))),
        kamailio=KamailioDriver(run, kamailio_config(pbx, domain, run, bool(workers)), subscribers),
        events=EvapiClient(LOOPBACK, pbx.evapi_port),
        media=MediaPool(workers, run),
    )


def build_exchange(
    pbx: PbxSettings,
    site_id: str,
    domain: str,
    subscribers: Sequence[Subscriber],
    store: Callable[[], Store],
    data_dir: Path,
    routing: RoutingService | None = None,
    gsm_channels: Sequence[str] = (),
    timezone: str = "UTC",
) -> BranchExchange:
    """The PBX over freshly built drivers (raises DialPlanError for a bad dial plan)."""
    drivers = build_drivers(pbx, domain, subscribers, data_dir, gsm_channels)
    return BranchExchange(
        pbx, site_id, domain, subscribers, store, data_dir, drivers, routing, timezone
    )
