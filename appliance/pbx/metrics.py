"""The PBX's Prometheus metrics, read at scrape time from the running component.

``callmesh_calls_active`` (calls in progress), ``callmesh_calls_total{disposition}``
(CDRs written since start, by disposition), ``callmesh_daemon_up{daemon}`` and
``callmesh_daemon_restarts_total{daemon}`` for Kamailio and rtpengine (from their
supervisors), and the routing chain's ``callmesh_route_decision_seconds`` histogram,
which the component observes for every route Kamailio asks for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from appliance.pbx.calls import CallService
from appliance.pbx.errors import PbxNotStartedError
from drivers.sync.limits import DISPOSITIONS

if TYPE_CHECKING:
    from appliance.pbx.exchange import BranchExchange

DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def decision_histogram() -> Histogram:
    """The routing chain's latency, unregistered until the composition root adds it."""
    return Histogram(
        "callmesh_route_decision_seconds",
        "Time the routing chain took to decide a call's route",
        buckets=DECISION_BUCKETS,
        registry=None,
    )


def calls_in_progress(pbx: BranchExchange) -> int:
    """Calls in progress; 0 before the PBX started."""
    try:
        return len(pbx.calls.live_calls())
    except PbxNotStartedError:
        return 0


class PbxCollector:
    """Calls in progress, calls by disposition, Kamailio and rtpengine supervision."""

    def __init__(self, pbx: BranchExchange) -> None:
        self._pbx = pbx

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        calls = self._calls()
        active = GaugeMetricFamily("callmesh_calls_active", "Calls in progress")
        active.add_metric([], calls_in_progress(self._pbx))
        yield active
        ended = CounterMetricFamily(
            "callmesh_calls",
            "Calls finished since start, by CDR disposition",
            labels=["disposition"],
        )
        for disposition in sorted(DISPOSITIONS):
            ended.add_metric([disposition], calls.ended[disposition] if calls is not None else 0)
        yield ended
        yield from self._daemons()

    def _calls(self) -> CallService | None:
        try:
            return self._pbx.calls
        except PbxNotStartedError:
            return None

    def _daemons(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "callmesh_daemon_up", "1 while the supervised daemon runs", labels=["daemon"]
        )
        restarts = CounterMetricFamily(
            "callmesh_daemon_restarts",
            "Restarts of the supervised daemon after it died",
            labels=["daemon"],
        )
        daemons = [self._pbx.kamailio.daemon]
        if self._pbx.settings.anchor_media:
            daemons.append(self._pbx.rtpengine.daemon)
        for daemon in daemons:
            up.add_metric([daemon.name], 0 if daemon.pid is None else 1)
            restarts.add_metric([daemon.name], daemon.restarts)
        yield up
        yield restarts
