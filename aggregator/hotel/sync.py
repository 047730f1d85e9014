"""The hotel on the sync link at HQ: each ``hotel-batch`` stored by (site id, record id)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from aggregator.hotel.store import store_hotel
from aggregator.refusals import Refusals
from drivers.sync.records import RecordError

STREAM = "hotel"


class HotelSync:
    """Stores hotel batches; each invalid record refused alone. On the ingest worker thread."""

    def __init__(self, engine: Callable[[], sa.Engine], refusals: Refusals) -> None:
        self._engine = engine
        self._refusals = refusals

    def store(self, site_id: str, records: list[tuple[int, bytes]]) -> None:
        """Store a batch; a repeated batch changes nothing."""

        def refused(_seq: int, err: RecordError) -> None:
            self._refusals.refused(site_id, STREAM, err.error_id, err.message)

        with self._engine().begin() as conn:
            store_hotel(conn, site_id, records, refused)
