"""Recordings on the sync link: the receiver of offers and chunks, as a lifecycle component.

The receiver lives from start to stop; its handlers and its sweep run on the ingest
worker thread, which is the only thread that touches uploads.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from aggregator.ingest_metrics import IngestMetrics
from aggregator.recordings import RecordingReceiver
from aggregator.settings import AggregatorSettings
from drivers.sync.protocol import Message, RecChunk, RecOffer


class RecordingSync:
    """Owns the recording receiver; a lifecycle component started before ingest."""

    name = "recordings"

    def __init__(
        self,
        settings: AggregatorSettings,
        engine: Callable[[], sa.Engine],
        metrics: IngestMetrics,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._metrics = metrics
        self.receiver: RecordingReceiver | None = None

    async def start(self) -> None:
        self.receiver = RecordingReceiver(
            self._engine(),
            self._settings.recordings_dir(),
            self._settings.ingest.chunk_credit,
            self._settings.recordings,
            self._metrics,
        )

    async def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.close()

    def _receiver(self) -> RecordingReceiver:
        assert self.receiver is not None, "recordings are handled only between start and stop"
        return self.receiver

    def offer(self, site_id: str, offer: Message) -> list[Message]:
        """``rec-offer``: already stored, or where to resume."""
        assert isinstance(offer, RecOffer)
        return [self._receiver().offer(site_id, offer)]

    def chunk(self, site_id: str, chunk: Message) -> list[Message]:
        """``rec-chunk``: written; more credit or the verdict when it is due."""
        assert isinstance(chunk, RecChunk)
        self._metrics.recording_bytes.inc(len(chunk.data))
        reply = self._receiver().chunk(site_id, chunk)
        return [] if reply is None else [reply]

    def sweep(self) -> tuple[int, int]:
        """Expire idle uploads and old recordings."""
        return self._receiver().sweep()
