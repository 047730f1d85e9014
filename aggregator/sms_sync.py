"""SMS on the sync link: each ``sms-batch`` stored by (site id, SMS id)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from aggregator.refusals import Refusals
from aggregator.store.sms import store_sms
from drivers.sync.records import RecordError


class SmsSync:
    """Stores SMS batches; each invalid record refused alone. On the ingest worker thread."""

    def __init__(self, engine: Callable[[], sa.Engine], refusals: Refusals) -> None:
        self._engine = engine
        self._refusals = refusals

    def store(self, site_id: str, records: list[tuple[int, bytes]]) -> None:
        """Store a batch; a repeated batch changes nothing."""

        def refused(_seq: int, err: RecordError) -> None:
            self._refusals.refused(site_id, "sms", err.error_id, err.message)

        with self._engine().begin() as conn:
            store_sms(conn, site_id, records, refused)
