"""Prometheus export of peer health and per-route failovers (read from the PeerMonitor)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from appliance.routing.peers import PeerMonitor


class PeerCollector:
    """``callmesh_peer_up{peer_site}`` (1 up, 0 down, -1 not yet known) and
    ``callmesh_route_failovers_total{route,target,reason}``."""

    def __init__(self, peers: PeerMonitor) -> None:
        self._peers = peers

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "callmesh_peer_up", "Peer site answers OPTIONS", labels=["peer_site"]
        )
        for site, state in sorted(self._peers.peers.items()):
            up.add_metric([site], -1 if state.up is None else int(state.up))
        yield up
        failovers = CounterMetricFamily(
            "callmesh_route_failovers",
            "Calls moved past a target (peer down, timeout, 5xx)",
            labels=["route", "target", "reason"],
        )
        for (route, target, reason), count in sorted(self._peers.failovers.items()):
            failovers.add_metric([route, target, reason], count)
        yield failovers
