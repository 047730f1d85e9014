"""The benchmark's generated rollups (bench/rollup_model.py) against the same calls stored
through HQ's real ingest: every rollup row equal, so the 100-million-CDR benchmark measures
the rows ingest would have written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from aggregator import reports
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


@pytest.fixture(scope="module")
def month(engines: tuple[sa.Engine, sa.Engine]) -> Iterator[sa.Engine]:
    """A month of 1,000,000 calls of 20 sites, rollups generated: 10 rollup rows an hour."""
    url = engines[1].url.render_as_string(hide_password=False)
    with fresh_database(url, "month") as month_url:
        engine = create_engine(month_url)
        generate(engine, Model(cdrs=1_000_000))
        yield engine
        engine.dispose()


def explained(conn: sa.Connection, run: Callable[[], object]) -> list[dict[str, Any]]:
    """The plan nodes of every statement ``run`` sends on ``conn`` (EXPLAIN ANALYZE)."""
    sent: list[tuple[str, Any]] = []

    def record(_c: object, _cur: object, statement: str, parameters: Any, *_: object) -> None:
        sent.append((statement, parameters))

    sa.event.listen(conn, "before_cursor_execute", record)
    run()
    sa.event.remove(conn, "before_cursor_execute", record)
    nodes: list[dict[str, Any]] = []
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    for statement, parameters in sent:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        todo = [cursor.fetchone()[0][0]["Plan"]]
        while todo:
            node = todo.pop()
            nodes.append(node)
            todo += node.get("Plans", [])
    return nodes


def test_the_month_summaries_read_the_site_rows_from_their_index_alone(month: sa.Engine) -> None:
    utc = ZoneInfo("UTC")
    span = (reports.parse_time("2025-11-01", utc), reports.parse_time("2025-12-01", utc))
    with month.connect() as conn:
        for run in (
            lambda: reports.summary(conn, None, *span, utc, "day"),
            lambda: reports.hour_of_day_calls(conn, None, *span, utc),
        ):
            scans = [n for n in explained(conn, run) if "Relation Name" in n]
            assert [(n["Node Type"], n["Index Name"], n["Heap Fetches"]) for n in scans] == [
                ("Index Only Scan", "ix_rollup_site_hour", 0)
            ]
            assert scans[0]["Actual Rows"] == 20 * 720
