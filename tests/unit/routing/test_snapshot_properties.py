"""Any snapshot or update HQ sends is applied or refused; a refusal keeps the last good table."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.directory.compile import compile_tables
from appliance.compliance.service import ComplianceService
from appliance.routing.service import RoutingService
from appliance.settings import ComplianceSettings
from appliance.store import Store
from tests.unit.routing.samples import directory

GOOD = compile_tables(directory())["berlin"]
OUTCOMES = {"applied", "refused", "unchanged", "resync"}

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=15,
)
# Garbage near the real shape: a good table with entries replaced, added or broken.
entry_keys = st.sampled_from(sorted(GOOD)) | st.text(max_size=12)
near_tables = st.dictionaries(entry_keys, values, max_size=4).map(lambda e: {**GOOD, **e})
snapshots = values | near_tables
changes = values | st.fixed_dictionaries(
    {},
    optional={
        "set": st.dictionaries(entry_keys, values, max_size=3) | values,
        "delete": st.lists(entry_keys | values, max_size=3) | values,
    },
)
versions = st.integers(min_value=-3, max_value=2**63 - 1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = Store.open(Path(tmp_path_factory.mktemp("routing")) / "store", 64)
    yield opened
    opened.close()


def routing_with_good_table(store: Store) -> RoutingService:
    service = RoutingService(lambda: store)
    asyncio.run(service.start())
    service.apply_snapshot(service.version + 1, GOOD)
    return service


def assert_last_good_kept(service: RoutingService, version: int) -> None:
    assert service.version == version
    assert service.lookup("1042").reason == "local extension"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=versions, data=snapshots)
def test_any_snapshot_is_applied_or_refused_and_a_refusal_keeps_the_table(
    store: Store, version: int, data: Any
) -> None:
    service = routing_with_good_table(store)
    good_version = service.version
    result = service.apply_snapshot(version, data)
    assert result.outcome in OUTCOMES
    if result.outcome != "applied":
        assert_last_good_kept(service, good_version)
        reloaded = RoutingService(lambda: store)
        asyncio.run(reloaded.start())
        assert_last_good_kept(reloaded, good_version)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(step=st.integers(min_value=-1, max_value=2), delta=changes)
def test_any_update_is_applied_or_refused_and_a_refusal_keeps_the_table(
    store: Store, step: int, delta: Any
) -> None:
    service = routing_with_good_table(store)
    good_version = service.version
    result = service.apply_update(good_version + 1, good_version + step, delta)
    assert result.outcome in OUTCOMES
    if result.outcome != "applied":
        assert_last_good_kept(service, good_version)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=versions, data=values | st.dictionaries(st.text(max_size=12), values))
def test_any_company_dnc_snapshot_is_applied_or_refused_and_a_refusal_keeps_the_list(
    store: Store, version: int, data: Any
) -> None:
    compliance = ComplianceService(ComplianceSettings(), "Europe/Berlin", lambda: store)
    asyncio.run(compliance.start())
    compliance.apply_company_dnc(7, {"+4917099": "asked"})
    ok, reason = compliance.apply_company_dnc(version, data)
    if not ok:
        assert reason
        assert compliance.company_version == 7
        assert compliance.listed("+4917099") is not None
