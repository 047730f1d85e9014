"""The routing table as a sync topic: HQ's snapshots and updates applied, the outcome said."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter

from appliance.routing.service import TOPIC, ApplyResult, RoutingService
from drivers.sync.protocol import Message, Snapshot, SnapshotRequest, SnapshotResult, Update


class RoutingTopic:
    """Topic ``routing``; ``outcomes`` counts messages by type and outcome."""

    name = TOPIC

    def __init__(self, routing: RoutingService, outcomes: Counter) -> None:
        self._routing = routing
        self._outcomes = outcomes

    def version(self) -> int:
        """The table version in force."""
        return self._routing.version

    async def receive(self, message: Snapshot | Update) -> list[Message]:
        """Apply off the loop (a big table takes a while to build); report the outcome."""
        result: ApplyResult
        if isinstance(message, Snapshot):
            result = await asyncio.to_thread(
                self._routing.apply_snapshot, message.version, message.data
            )
        else:
            result = await asyncio.to_thread(
                self._routing.apply_update, message.version, message.base_version, message.changes
            )
        self._outcomes.labels(message=message.TYPE, outcome=result.outcome).inc()
        if result.outcome == "resync":
            return [SnapshotRequest(TOPIC, result.running)]
        if result.outcome in ("applied", "refused"):
            ok = not result.refused
            return [SnapshotResult(TOPIC, result.version, ok, result.running, result.reason)]
        return []

    def status(self) -> dict[str, object]:
        """The table version in force and the refusals, for HQ's routing report."""
        return {
            "snapshots": {TOPIC: self._routing.version},
            "routing_refused": self._routing.refused,
        }
