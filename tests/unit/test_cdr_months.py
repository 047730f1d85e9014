"""The months CDR partitions are named and bounded by."""

from __future__ import annotations

import datetime

from aggregator.store.partitions import Month


def test_month_arithmetic_crosses_years() -> None:
    december = Month(2026, 12)
    assert december.plus(1) == Month(2027, 1)
    assert december.plus(-12) == Month(2025, 12)
    first = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    assert december.plus(1).start_ms == int(first.timestamp() * 1000)
    assert Month.of(december.plus(1).start_ms - 1) == december
    assert Month.named("cdrs_p202612") == december
    assert Month.named("cdrs_staging") is None
