"""Migration 0005 (hotel tables) from the previous head, with data, on SQLite and PostgreSQL;
then the hotel's ingest, search and report run on the upgraded database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic import command

from aggregator.hotel.queries import HotelFilter, hotel_report, search_postings
from aggregator.hotel.store import store_hotel
from aggregator.store import migrate
from aggregator.store.db import driver_url, migrated_engine
from aggregator.store.partitions import schema_differences
from aggregator.store.schema import cdrs, hotel_postings, metadata, site_keys, sms_messages
from drivers.sync.hotel import HotelPosting, pack_hotel_record
from drivers.sync.records import RecordError
from tests.first_release import make_first_release_db
from tests.pg import fresh_database, postgres_server
from tests.sync_env import T0

PREVIOUS_HEAD = "0004"  # the head before the hotel tables
UTC = ZoneInfo("UTC")


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'agg.db'}"
        return
    with fresh_database(request.getfixturevalue("pg_server"), "hotel_migration") as made:
        yield made


def at_previous_head_with_data(url: str) -> int:
    """A database at 0003 holding CDRs, an SMS and an enrolled key; returns the CDR count."""
    before = make_first_release_db(url, cdrs=50)
    engine = sa.create_engine(driver_url(url))
    with engine.begin() as conn:
        command.upgrade(migrate._config(conn), PREVIOUS_HEAD)
        conn.execute(
            sa.insert(sms_messages),
            {"site_id": "site-a", "sms_id": "sms-1", "direction": "in", "at_ms": int(T0 * 1000),
             "status": "received", "received_ms": int(T0 * 1000)},
        )  # fmt: skip
        conn.execute(
            sa.insert(site_keys),
            {"site_id": "hotel-a", "public_key": "k" * 40, "enrolled_ms": 1},
        )
    engine.dispose()
    return before.cdrs


def test_the_hotel_tables_are_added_to_a_database_at_the_previous_head(url: str) -> None:
    stored = at_previous_head_with_data(url)
    engine, migration = migrated_engine(url)
    try:
        assert (migration.before, migration.after) == (PREVIOUS_HEAD, migrate.head())
        with engine.connect() as conn:
            assert schema_differences(conn, metadata) == []
            assert conn.scalar(sa.select(sa.func.count()).select_from(cdrs)) == stored
            assert conn.scalar(sa.select(sms_messages.c.sms_id)) == "sms-1"
            assert conn.scalar(sa.select(site_keys.c.site_id)) == "hotel-a"
        record = HotelPosting(id="P1-1", room="0330", posting_number=1, posting_type="C",
                              amount=1050, answer="OK", queued_at=T0,
                              answered_at=T0 + 1)  # fmt: skip

        def refused(_seq: int, err: RecordError) -> None:
            raise AssertionError(err)

        for _ in range(2):
            with engine.begin() as conn:
                store_hotel(conn, "hotel-a", [(1, pack_hotel_record(record))], refused)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(hotel_postings.c.room, hotel_postings.c.amount)).all()
            found = search_postings(conn, HotelFilter(room="0330"), UTC, 10)
            report = hotel_report(conn, None, int(T0 * 1000), int((T0 + 86400) * 1000), UTC)
        assert [tuple(r) for r in rows] == [("0330", 1050)]
        assert [p["id"] for p in found] == ["P1-1"]
        assert [(r["site_id"], r["postings"], r["amount"]) for r in report] == [
            ("hotel-a", 1, 1050)
        ]
    finally:
        engine.dispose()
