"""The fleet and SMS storage cases of tests/unit/sim/test_fleet_store.py and
test_sms.py, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from aggregator.store.db import create_engine
from tests.pg import postgres_server
from tests.unit.sim.test_fleet_store import (
    test_a_repeated_status_changes_nothing_and_a_newer_one_replaces_it,
    test_another_sites_report_of_a_sim_is_refused_until_an_operator_moves_it,
    test_commands_issued_during_a_session_are_pushed_once,
    test_refusals_are_stored_once_and_unreadable_ones_skipped,
    test_the_company_dnc_list_is_one_shared_snapshot_every_site_sees,
)
from tests.unit.sim.test_sms import test_hq_stores_sms_once_per_site_and_id

__all__ = [
    "test_a_repeated_status_changes_nothing_and_a_newer_one_replaces_it",
    "test_another_sites_report_of_a_sim_is_refused_until_an_operator_moves_it",
    "test_commands_issued_during_a_session_are_pushed_once",
    "test_hq_stores_sms_once_per_site_and_id",
    "test_refusals_are_stored_once_and_unreadable_ones_skipped",
    "test_the_company_dnc_list_is_one_shared_snapshot_every_site_sees",
]


@pytest.fixture(scope="module")
def engine() -> Iterator[sa.Engine]:
    with postgres_server() as url:
        eng = create_engine(url)
        yield eng
        eng.dispose()
