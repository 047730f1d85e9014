"""The SIM policy's Prometheus metrics, one series per GSM channel and its selected SIM.

Labels are ``channel`` and ``iccid`` (empty while the slot is empty), so the series are
bounded by the modems present. Read at scrape time from the SimService's channel states.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from appliance.sim.service import SimService

LABELS = ["channel", "iccid"]


class SimCollector:
    """Registration, signal, review flag and today's usage of every channel's SIM."""

    def __init__(self, sim: SimService) -> None:
        self._sim = sim

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        registered = GaugeMetricFamily(
            "callmesh_sim_registered", "1 while the SIM is registered on a network", labels=LABELS
        )
        signal = GaugeMetricFamily(
            "callmesh_sim_signal_dbm", "Received signal strength (dBm) as the modem reports it",
            labels=LABELS,
        )  # fmt: skip
        review = GaugeMetricFamily(
            "callmesh_sim_review_flagged",
            "1 while the SIM is flagged for review (its answer rate collapsed)",
            labels=LABELS,
        )
        calls = GaugeMetricFamily("callmesh_sim_calls_today", "Calls placed today", labels=LABELS)
        connected = GaugeMetricFamily(
            "callmesh_sim_connected_today_seconds", "Connected call time today", labels=LABELS
        )
        for channel, state in sorted(self._sim.states.items()):
            iccid = state.sim.iccid if state.sim is not None else ""
            labels = [channel, iccid]
            registered.add_metric(labels, int(state.registered))
            if state.signal_dbm is not None:
                signal.add_metric(labels, state.signal_dbm)
            if state.sim is not None:
                usage = self._sim.view(iccid).usage
                review.add_metric(labels, int(bool(usage.review)))
                calls.add_metric(labels, usage.calls_today)
                connected.add_metric(labels, usage.connected_s_today)
        yield from (registered, signal, review, calls, connected)
