"""The company do-not-call list as a sync topic, and the refused calls as an outbox stream."""

from __future__ import annotations

import asyncio

from appliance.compliance.service import OUTBOX, TOPIC, ComplianceService
from drivers.sync.protocol import (
    ComplianceBatch,
    Message,
    Snapshot,
    SnapshotRequest,
    SnapshotResult,
    Update,
)
from drivers.sync.session import BatchStream

REFUSALS = BatchStream(OUTBOX, ComplianceBatch)


class DncTopic:
    """Topic ``dnc``: the company list comes whole; an update asks for the full list."""

    name = TOPIC

    def __init__(self, compliance: ComplianceService) -> None:
        self._compliance = compliance

    def version(self) -> int:
        """The company list's version in force."""
        return self._compliance.company_version

    async def receive(self, message: Snapshot | Update) -> list[Message]:
        """Apply a new company list off the loop and say whether it was taken."""
        running = self._compliance.company_version
        if isinstance(message, Update):
            return [SnapshotRequest(TOPIC, running)]
        if message.version in (0, running):
            return []
        ok, reason = await asyncio.to_thread(
            self._compliance.apply_company_dnc, message.version, message.data
        )
        running = self._compliance.company_version
        return [SnapshotResult(TOPIC, message.version, ok, running, reason)]
