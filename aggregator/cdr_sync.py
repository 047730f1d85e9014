"""CDRs on the sync link: batches parsed alone, stored by group commits, counted per site."""

from __future__ import annotations

import collections
from collections.abc import Callable

import sqlalchemy as sa

from aggregator.ingest_features import GroupedStream
from aggregator.ingest_metrics import IngestMetrics
from aggregator.refusals import Refusals
from aggregator.store.cdr_rows import ParsedBatch, parse_batch
from aggregator.store.cdrs import CdrStore
from drivers.sync.protocol import CdrBatch


class CdrSync:
    """Parses on the decode thread and stores on the worker thread."""

    def __init__(
        self, engine: Callable[[], sa.Engine], metrics: IngestMetrics, refusals: Refusals
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._refusals = refusals

    def stream(self) -> GroupedStream[ParsedBatch]:
        """The ``cdr`` stream, to register with the ingest server."""
        return GroupedStream(CdrBatch, "cdr", self.parse, self.store)

    def parse(self, site_id: str, records: list[tuple[int, bytes]]) -> ParsedBatch:
        """Parse a batch and charge its refusals to the site now,
        so a site sending garbage is throttled before its next batches are decoded."""
        batch = parse_batch(site_id, records)
        for error_id, count in collections.Counter(batch.error_ids).items():
            self._refusals.refused(site_id, "cdr", error_id, "invalid CDR", count)
        for error_id, count in collections.Counter(batch.queue_errors).items():
            detail = "CDR stored without its queue figures"
            self._refusals.refused(site_id, "cdr-queue", error_id, detail, count)
        return batch

    def store(self, batches: list[ParsedBatch]) -> None:
        """Store parsed batches in one commit and count what each site sent."""
        results = CdrStore(self._engine()).store_many(batches)
        for batch, result in zip(batches, results, strict=True):
            self._metrics.cdrs.labels(site=batch.site_id).inc(result.inserted)
            self._metrics.duplicates.labels(site=batch.site_id).inc(result.duplicates)
            self._metrics.rejected_records.labels(site=batch.site_id).inc(result.rejected)
