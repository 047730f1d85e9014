"""The appliance's routing service: validate, store, swap; refuse without harm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.directory.compile import compile_tables
from appliance.routing.service import RoutingService
from appliance.store import Store
from drivers.sync.routing_changes import diff
from tests.unit.routing.samples import company, directory


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


async def started(store: Store) -> RoutingService:
    service = RoutingService(lambda: store)
    await service.start()
    return service


async def test_snapshot_is_applied_stored_and_reloaded(store: Store) -> None:
    service = await started(store)
    assert service.lookup("1042").reason == "no routing table"
    result = service.apply_snapshot(3, compile_tables(directory())["berlin"])
    assert (result.outcome, service.version) == ("applied", 3)
    assert service.lookup("1042").reason == "local extension"
    again = await started(store)
    assert again.version == 3
    assert again.lookup("2042").targets[0].site == "paris"


async def test_update_applies_only_on_its_base_version(store: Store) -> None:
    service = await started(store)
    old = compile_tables(directory())["berlin"]
    doc = company()
    doc["sites"][1]["extensions"] = ["2500"]
    new = compile_tables(directory(sites=doc["sites"]))["berlin"]
    service.apply_snapshot(1, old)
    assert service.apply_update(3, 2, diff(old, new)).outcome == "resync"
    assert service.apply_update(2, 1, diff(old, new)).outcome == "applied"
    assert service.lookup("2500").targets[0].site == "paris"
    assert service.apply_update(2, 1, diff(old, new)).outcome == "unchanged"


async def test_bad_snapshot_is_refused_and_the_previous_table_stays(store: Store) -> None:
    service = await started(store)
    good = compile_tables(directory())["berlin"]
    service.apply_snapshot(1, good)
    bad = {**good, "rule:germany": {**good["rule:germany"], "targets": [{"trunk": "gone"}]}}
    result = service.apply_snapshot(2, bad)
    assert result.refused
    assert (result.version, result.running) == (2, 1)
    assert "rule:germany" in result.reason
    assert service.version == 1
    assert service.lookup("00493012345").targets[0].trunk == "berlin-sip"
    assert (await started(store)).version == 1
    assert "version 2" in service.check()[1]


async def test_bad_update_is_refused(store: Store) -> None:
    service = await started(store)
    service.apply_snapshot(1, compile_tables(directory())["berlin"])
    result = service.apply_update(2, 1, {"set": {"ext:nowhere:7000": "7099"}, "delete": []})
    assert result.refused
    assert service.version == 1
    assert service.apply_update(2, 1, ["not", "changes"]).refused


async def test_empty_snapshot_from_hq_keeps_the_table(store: Store) -> None:
    service = await started(store)
    service.apply_snapshot(1, compile_tables(directory())["berlin"])
    assert service.apply_snapshot(0, None).outcome == "unchanged"
    assert service.version == 1
