"""The directory store keeps shared entries once and only the recent updates."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.directory.model import Directory
from aggregator.directory.store import SHARED, DirectoryStore, full_table
from aggregator.store.db import create_engine
from aggregator.store.schema import snapshot_updates, snapshots
from tests.unit.routing.samples import company


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    yield eng
    eng.dispose()


def with_extension(extension: str) -> Directory:
    doc = company()
    doc["sites"][2]["extensions"] = [extension]
    return Directory.model_validate(doc)


def test_shared_entries_are_stored_once_and_overlaid_per_site(engine: sa.Engine) -> None:
    DirectoryStore(lambda: engine).change(lambda _: with_extension("3000"))
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(snapshots.c.site_id, snapshots.c.data)).all())
        version, table = full_table(conn, "paris", "routing") or (0, {})
    assert "ext:lyon:3000" in rows[SHARED]
    assert not any(k.startswith("ext:") for k in rows["paris"])
    assert version == 1
    assert table["meta"]["site"] == "paris"
    assert table["ext:lyon:3000"] == "3000"


def replaced_by(new: Directory, _old: Directory) -> Directory:
    return new


def test_only_the_most_recent_updates_are_kept(engine: sa.Engine) -> None:
    store = DirectoryStore(lambda: engine, keep_updates=2)
    for n in range(5):
        store.change(functools.partial(replaced_by, with_extension(f"300{n}")))
    with engine.connect() as conn:
        kept = conn.execute(
            sa.select(snapshot_updates.c.version, snapshot_updates.c.base_version)
            .where(snapshot_updates.c.site_id == "berlin")
            .order_by(snapshot_updates.c.version)
        ).all()
    assert [tuple(r) for r in kept] == [(4, 3), (5, 4)]
