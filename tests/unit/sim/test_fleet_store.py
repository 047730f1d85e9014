"""The SIM fleet at HQ: idempotent status and refusal storage, DNC publishing, command pushes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import sqlalchemy as sa

from aggregator.directory.store import full_table
from aggregator.fleet import store as fleet
from aggregator.fleet.push import CommandPusher
from aggregator.store.db import create_engine
from aggregator.store.schema import (
    compliance_events,
    dnc_numbers,
    sim_switches,
    sim_usage_days,
    sims,
)
from drivers.sync.protocol import Command
from drivers.sync.records import SimCommand, parse_sim_command

ICCID = "8949000000000000011"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'hq.db'}")
    yield eng
    eng.dispose()


def record(**extra: object) -> dict[str, object]:
    return {
        "iccid": ICCID,
        "channel": "gsm-1",
        "slot": 0,
        "status": "active",
        "group": "default",
        "limits": {"calls_per_day": 5},
        "usage": {"calls_today": 2},
        "days": {"2026-03-01": [4, 3, 180.0, 2], "2026-03-02": [2, 1, 60.0, 1]},
        **extra,
    }


SWITCH = {"id": "s1", "at_ms": 1, "channel": "gsm-1", "from_slot": 0, "to_slot": 1, "reason": "x"}


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_repeated_status_changes_nothing_and_a_newer_one_replaces_it(engine: sa.Engine) -> None:
    for _ in range(2):
        with engine.begin() as conn:
            result = fleet.store_status(conn, "site-a", [record(), "junk"], [SWITCH, {}])
            assert result == fleet.StatusResult(1, {})
    assert (count(engine, sims), count(engine, sim_usage_days), count(engine, sim_switches)) == (
        1,
        2,
        1,
    )
    with engine.begin() as conn:
        fleet.store_status(conn, "site-a", [record(days={"2026-03-02": [3, 2, 90.0, 2]})], [])
        day = conn.execute(
            sa.select(sim_usage_days).where(sim_usage_days.c.day == "2026-03-02")
        ).one()
    assert (day.calls, day.answered, day.site_id) == (3, 2, "site-a")
    with engine.connect() as conn, pytest.raises(fleet.FleetError, match="no site has reported"):
        fleet.sim_site(conn, "0000")


def test_another_sites_report_of_a_sim_is_refused_until_an_operator_moves_it(
    engine: sa.Engine,
) -> None:
    with engine.begin() as conn:
        fleet.store_status(conn, "site-a", [record()], [])
        taken = fleet.store_status(conn, "site-b", [record(channel="gsm-9", days={})], [])
    assert taken == fleet.StatusResult(0, {ICCID: "site-a"})
    with engine.connect() as conn:
        row = fleet.sim_site(conn, ICCID)
    assert (row.site_id, row.channel) == ("site-a", "gsm-1")

    with engine.begin() as conn:
        with pytest.raises(fleet.FleetError, match="no site 'site-x'"):
            fleet.move_sim(conn, ICCID, "site-x", ["site-a", "site-b"])
        assert fleet.move_sim(conn, ICCID, "site-b", ["site-a", "site-b"]) == "site-a"
        assert fleet.sim_site(conn, ICCID).status == "moved"
        assert fleet.store_status(conn, "site-a", [record()], []).refused == {ICCID: "site-b"}
        assert fleet.store_status(conn, "site-b", [record(channel="gsm-9")], []).stored == 1
        row = fleet.sim_site(conn, ICCID)
    assert (row.site_id, row.channel, row.status) == ("site-b", "gsm-9", "active")


def test_refusals_are_stored_once_and_unreadable_ones_skipped(engine: sa.Engine) -> None:
    event = {"id": "e1", "at": 1.5, "destination": "+4930", "error_id": "dnc-site", "message": "m"}
    batch = [(1, msgpack.packb(event)), (2, b"\xc1")]
    for _ in range(2):
        with engine.begin() as conn:
            assert fleet.store_refusals(conn, "site-a", batch) == 1
    assert count(engine, compliance_events) == 1


def test_the_company_dnc_list_is_one_shared_snapshot_every_site_sees(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(dnc_numbers).values(number="+4930999", reason="r", added_ms=1))
        assert fleet.publish_dnc(conn, ["site-a"]) == 1
        fleet.ensure_dnc_row(conn, "site-b")
        assert full_table(conn, "site-a", "dnc") == (1, {"+4930999": "r"})
        assert full_table(conn, "site-b", "dnc") == (1, {"+4930999": "r"})
        assert fleet.publish_dnc(conn, []) == 2
        assert full_table(conn, "site-b", "dnc") == (2, {"+4930999": "r"})


def test_commands_issued_during_a_session_are_pushed_once(engine: sa.Engine) -> None:
    pusher = CommandPusher(lambda: engine)
    with engine.begin() as conn:
        early = fleet.issue(conn, "site-a", SimCommand("sim-disable", ICCID))
    pusher.on_hello("site-a", [early])
    assert pusher.due(["site-a", "site-b"]) == []
    with engine.begin() as conn:
        later = fleet.issue(conn, "site-a", SimCommand("sim-enable", ICCID))
    assert pusher.due(["site-a"]) == [("site-a", Command(later, "sim-enable", {"iccid": ICCID}))]
    assert pusher.due(["site-a"]) == []


@pytest.mark.parametrize(
    "command",
    [
        SimCommand("sim-set-limits", ICCID, limits={"calls_per_day": 5}),
        SimCommand("sim-set-group-limits", group="vip", limits={}),
        SimCommand("sim-set-group", ICCID, group="vip"),
        SimCommand("sim-select-slot", ICCID, channel="gsm-1", slot=1),
        SimCommand("sim-disable", ICCID),
        SimCommand("sim-enable", ICCID),
        SimCommand("sim-retire", ICCID),
        SimCommand("sim-clear-review", ICCID),
    ],
)
def test_every_command_hq_issues_is_pushed_as_the_record_the_site_parses(
    engine: sa.Engine, command: SimCommand
) -> None:
    pusher = CommandPusher(lambda: engine)
    pusher.on_hello("site-a", [])
    with engine.begin() as conn:
        fleet.issue(conn, "site-a", command)
    [(_, pushed)] = pusher.due(["site-a"])
    assert isinstance(pushed, Command)
    assert parse_sim_command(pushed.kind, pushed.args) == command
