"""Compiling per-site tables, and entry-by-entry changes between versions."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.directory.compile import compile_tables
from drivers.sync.protocol import SnapshotResult, decode, encode
from drivers.sync.routing_changes import ChangesError, apply, diff
from tests.unit.routing.samples import company, directory


def test_every_site_gets_a_table_with_all_sites_and_extensions() -> None:
    tables = compile_tables(directory())
    assert sorted(tables) == ["berlin", "lyon", "paris"]
    berlin = tables["berlin"]
    assert berlin["meta"] == {
        "site": "berlin",
        "timezone": "Europe/Berlin",
        "flat": True,
        "site_prefix": "8",
    }
    assert berlin["site:paris"] == {"name": "Paris", "address": "10.2.0.10:5060", "code": "20"}
    assert berlin["ext:berlin:1000"] == "1099"
    assert berlin["ext:paris:2000"] == "2099"
    assert berlin["ext:berlin:1200"] == "1200"


def test_only_own_trunks_and_applicable_rules_are_compiled() -> None:
    tables = compile_tables(directory())
    assert sorted(k for k in tables["berlin"] if k.startswith("trunk:")) == ["trunk:berlin-sip"]
    assert "rule:international" not in tables["paris"]
    assert tables["berlin"]["rule:germany"]["targets"] == [
        {
            "trunk": "berlin-sip",
            "cost": 0,
            "strip": 4,
            "prepend": "+49",
            "caller_id": "+49301234501",
        }
    ]


def test_targets_are_cheapest_first_and_remote_trunks_become_site_hops() -> None:
    tables = compile_tables(directory())
    assert tables["berlin"]["rule:international"]["targets"] == [
        {"site": "paris", "cost": 1},
        {"trunk": "berlin-sip", "cost": 5, "strip": 2, "prepend": "+", "caller_id": "+49301234500"},
    ]
    assert tables["paris"]["rule:germany"]["targets"] == [
        {
            "site": "berlin",
            "cost": 0,
            "via": "berlin-sip",
            "strip": 4,
            "prepend": "+49",
            "caller_id": "+49301234501",
        }
    ]


def test_a_target_at_the_tables_own_site_is_dropped() -> None:
    doc = company()
    doc["rules"].append({"id": "to-paris", "prefix": "07", "targets": [{"site": "paris"}]})
    tables = compile_tables(directory(rules=doc["rules"]))
    assert "rule:to-paris" not in tables["paris"]
    assert tables["lyon"]["rule:to-paris"]["targets"] == [{"site": "paris", "cost": 0}]


def test_consecutive_explicit_extensions_are_merged_into_ranges() -> None:
    doc = company()
    doc["sites"][2]["extensions"] = ["3001", "3000", "3002", "3005", "301"]
    table = compile_tables(directory(sites=doc["sites"]))["lyon"]
    exts = {k: v for k, v in table.items() if k.startswith("ext:lyon:")}
    assert exts == {"ext:lyon:3000": "3002", "ext:lyon:3005": "3005", "ext:lyon:301": "301"}


def test_compile_is_deterministic() -> None:
    assert compile_tables(directory()) == compile_tables(directory())


def test_one_extension_change_is_a_one_entry_update() -> None:
    doc = company()
    before = compile_tables(directory())["berlin"]
    doc["sites"][1]["extensions"] = ["2500"]
    after = compile_tables(directory(sites=doc["sites"]))["berlin"]
    changes = diff(before, after)
    assert changes == {"set": {"ext:paris:2500": "2500"}, "delete": []}
    assert apply(before, changes) == after


def test_changes_delete_removed_entries() -> None:
    changes = diff({"a": 1, "b": 2}, {"a": 1})
    assert changes == {"set": {}, "delete": ["b"]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
tables = st.dictionaries(st.text(max_size=6), json_values, max_size=12)


@settings(max_examples=300, deadline=None)
@given(tables, tables)
def test_apply_of_diff_gives_the_new_table(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert apply(old, diff(old, new)) == new


def test_random_directory_edits_round_trip() -> None:
    rng = random.Random(3)
    doc = company()
    old = compile_tables(directory())
    for n in range(20):
        site = rng.randrange(3)
        doc["sites"][site]["extensions"] = [f"{site + 5}{rng.randrange(1000):03d}"]
        new = compile_tables(directory(sites=doc["sites"]))
        for site_id, table in new.items():
            assert apply(old[site_id], diff(old[site_id], table)) == table, n
        old = new


@pytest.mark.parametrize(
    "changes",
    [[["add", "1001"]], {"set": [], "delete": []}, {"set": {}, "drop": []}, {"delete": [1]}],
)
def test_malformed_changes_are_refused(changes: Any) -> None:
    with pytest.raises(ChangesError):
        apply({}, changes)


def test_snapshot_result_round_trips() -> None:
    for message in (
        SnapshotResult("routing", 4, True, 4),
        SnapshotResult("routing", 5, False, 4, "rule:x: unknown trunk 'y'"),
    ):
        assert decode(encode(message)) == message
