"""The PBX's drivers as one record, and their configuration from the PBX settings (pure).

The drivers are built at the composition root (``appliance/pbx/assembly.py``, called by
``appliance/service.py``) and handed to ``BranchExchange``, which only wires its
callbacks into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.pbx.media import MediaPool
from appliance.pbx.settings import PbxSettings
from drivers.sip.evapi import EvapiClient
from drivers.sip.kamailio import KamailioDriver, find_module_path, load_route_secret
from drivers.sip.kamailio_config import KamailioConfig, Registration
from drivers.sip.routeserver import RouteServer
from drivers.sip.rtpengine import RtpengineConfig, RtpengineDriver


def run_dir(data_dir: Path) -> Path:
    """Where the PBX's daemons keep their rendered files, logs and pid files."""
    return data_dir / "pbx" / "run"


def spool_dir(data_dir: Path) -> Path:
    """Where rtpengine writes the recordings' pcaps and metadata."""
    return data_dir / "pbx" / "spool"


@dataclass(frozen=True)
class PbxDrivers:
    """What the PBX drives: the route endpoint, rtpengine, Kamailio, evapi, media workers."""

    route_server: RouteServer
    rtpengine: RtpengineDriver
    kamailio: KamailioDriver
    events: EvapiClient
    media: MediaPool


def rtpengine_config(pbx: PbxSettings, spool: Path) -> RtpengineConfig:
    """rtpengine's options from the PBX settings; recordings go to ``spool``."""
    return RtpengineConfig(
        host=pbx.sip_host,
        ng_port=pbx.rtpengine_ng_port,
        port_min=pbx.rtp_port_min,
        port_max=pbx.rtp_port_max,
        recording_dir=spool,
        delete_delay_s=pbx.recording_delete_delay_s,
        threads=pbx.rtpengine_threads,
        media_timeout_s=pbx.media_timeout_s,
    )


def kamailio_config(
    pbx: PbxSettings, domain: str, run_dir: Path, workers: bool | None = None
) -> KamailioConfig:
    """Kamailio's rendering inputs from the PBX settings (``workers``: any media or GSM worker)."""
    if workers is None:
        workers = pbx.media.workers > 0
    return KamailioConfig(
        domain=domain,
        sip_host=pbx.sip_host,
        sip_port=pbx.sip_port,
        evapi_port=pbx.evapi_port,
        ng_port=pbx.rtpengine_ng_port,
        subscriber_db=str(run_dir / "subscriber.sqlite"),
        route_secret=load_route_secret(run_dir),
        children=pbx.kamailio_children,
        fr_timer_ms=pbx.fr_timer_ms,
        fr_inv_timer_ms=pbx.no_answer_s * 1000,
        min_expires=pbx.min_expires_s,
        max_expires=pbx.max_expires_s,
        pike_window_s=pbx.pike_window_s,
        pike_requests=pbx.pike_requests,
        ban_seconds=pbx.ban_s,
        pike_exempt=pbx.pike_exempt,
        auth_fail_limit=pbx.auth_fail_limit,
        auth_fail_window_s=pbx.auth_fail_window_s,
        scanner_agents=pbx.scanner_user_agents,
        scan_prefixes=pbx.scan_prefixes,
        route_port=pbx.route_port,
        trunk_sources=tuple((t.host, t.port) for t in pbx.dialplan.trunks),
        anchor_media=pbx.anchor_media,
        record=pbx.record_calls and pbx.anchor_media,
        max_call_seconds=pbx.max_call_s,
        max_calls=pbx.max_calls,
        retry_after_s=pbx.retry_after_s,
        dispatcher_list=str(run_dir / "dispatcher.list") if workers else "",
        trunk_credentials=tuple(
            (t.auth.username, t.auth.realm, t.auth.password)
            for t in pbx.dialplan.trunks
            if t.auth is not None
        ),
        registrations=tuple(
            Registration(
                t.name,
                t.auth.username,
                t.auth.password,
                t.auth.realm,
                f"{t.host}:{t.port}",
                t.auth.expires_s,
            )
            for t in pbx.dialplan.trunks
            if t.auth is not None and t.auth.registration
        ),
        module_path=find_module_path(),
    )
