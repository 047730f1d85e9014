"""The directory store and snapshot pushes on PostgreSQL (same code as on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from aggregator.directory.model import Directory
from aggregator.directory.push import SnapshotPusher
from aggregator.directory.store import DirectoryStore
from aggregator.directory.validate import DirectoryError
from aggregator.store.db import create_engine
from drivers.sync.protocol import Snapshot, SnapshotResult, Update
from tests.pg import postgres_server
from tests.unit.routing.samples import company


@pytest.fixture(scope="module")
def engine() -> Iterator[sa.Engine]:
    with postgres_server() as url:
        eng = create_engine(url)
        yield eng
        eng.dispose()


def test_directory_writes_publish_and_push_on_postgres(engine: sa.Engine) -> None:
    store = DirectoryStore(lambda: engine)
    assert store.change(lambda _: Directory.model_validate(company())).versions == {
        "berlin": 1,
        "paris": 1,
        "lyon": 1,
    }
    pusher = SnapshotPusher(lambda: engine)
    with engine.begin() as conn:
        pusher.on_hello(conn, "paris", {"routing": 0})
        [full] = pusher.on_request(conn, "paris", "routing", 0)
    assert isinstance(full, Snapshot)
    assert full.version == 1
    with engine.begin() as conn:
        pusher.on_result(conn, "paris", SnapshotResult("routing", 1, True, 1))

    doc = company()
    doc["sites"][0]["extensions"] = ["1200", "1300"]
    published = store.change(lambda _: Directory.model_validate(doc))
    assert published.revision == 2
    [(site, update)] = pusher.due(["paris"])
    assert site == "paris"
    assert update == Update("routing", 2, 1, {"set": {"ext:berlin:1300": "1300"}, "delete": []})
    assert pusher.due(["paris"]) == []

    bad = company()
    bad["trunks"][0]["site"] = "rome"
    with pytest.raises(DirectoryError, match="unknown-site"):
        store.change(lambda _: Directory.model_validate(bad))
    directory, revision = store.read()
    assert revision == 2
    assert directory.sites[0].extensions == ("1200", "1300")
    assert store.snapshot_states()[1] == {
        "site_id": "lyon",
        "version": 2,
        "applied_version": 0,
        "refused_reason": "",
    }
