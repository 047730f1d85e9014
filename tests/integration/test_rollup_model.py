"""The benchmark's generated rollups (bench/rollup_model.py) against the same calls stored
through HQ's real ingest: every rollup row equal, so the 100-million-CDR benchmark measures
the rows ingest would have written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from aggregator.store.db import create_engine
from bench.rollup_model import ROLLUPS, Model, generate, ingest_calls, rollup_differences
from tests.pg import fresh_database, postgres_server

pytestmark = pytest.mark.timeout(300)
# Two days, so Europe/Berlin's local days split the UTC ones; calls per site not a multiple
# of the hours, so a site's hours hold two different numbers of calls.
MODEL = Model(cdrs=20_011, sites=3, hours=48)


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[sa.Engine, sa.Engine]]:
    with (
        postgres_server() as url,
        fresh_database(url, "ingested") as ingested,
        fresh_database(url, "generated") as generated,
    ):
        pair = create_engine(ingested), create_engine(generated)
        yield pair
        for engine in pair:
            engine.dispose()


def test_generated_rollups_equal_those_the_ingest_writes(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    ingested, generated = engines
    ingest_calls(ingested, MODEL)
    counts = generate(generated, MODEL)
    assert rollup_differences(ingested, generated) == dict.fromkeys(ROLLUPS, 0)
    assert all(counts.values()), counts
    with generated.connect() as conn:
        calls = conn.exec_driver_sql("SELECT sum(calls) FROM cdr_rollup WHERE dim = 'site'")
        assert calls.scalar_one() == MODEL.cdrs
        assert conn.exec_driver_sql("SELECT count(*) FROM cdrs").scalar_one() == 0
    with ingested.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM cdrs").scalar_one() == MODEL.cdrs
