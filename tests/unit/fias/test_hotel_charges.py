"""Call charges from rooms: which CDRs are charged, with which fields, and exactly once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from appliance.hotel.charges import ChargeService, charge_fields
from appliance.hotel.postings import PostingQueue
from appliance.hotel.rooms import RoomBook
from appliance.hotel.settings import ChargeSettings, Tariff, TimeBand
from appliance.hotel.tariffs import amount, tariff_for
from appliance.pbx.calls import INDEX
from appliance.store import Store

PMS = ChargeSettings()
LISBON = dt.timezone(dt.timedelta(hours=1))
NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC).timestamp()


def cdr(cdr_id: str = "c1", caller: str = "201", **changes: Any) -> dict[str, Any]:
    doc = {"cdr_id": cdr_id, "direction": "outbound", "start": "2026-12-07T11:58:01.250Z",
           "answer": "2026-12-07T11:58:05Z", "billable_s": 3725,
           "caller": {"number": caller, "extension": caller, "name": ""},
           "callee": {"number": "+49 30 1234567", "extension": None, "name": ""}}  # fmt: skip
    return doc | changes


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", map_size_mb=32)
    yield opened
    opened.close()


def service(store: Store, now: float = NOW) -> ChargeService:
    return ChargeService(RoomBook({"0330": "201"}, "international"), lambda: store, "UTC",
                         lambda: now)  # fmt: skip


def queued(store: Store) -> list[tuple[int, str, dict[str, str]]]:
    queue = PostingQueue(store)
    found: list[tuple[int, str, dict[str, str]]] = []
    skip: list[int] = []
    while (head := queue.head(skip)) is not None:
        number, posting = head
        found.append((number, posting.room, dict(posting.fields)))
        skip.append(number)
    return found


def test_an_answered_outside_call_is_posted_as_duration_for_the_pms_to_rate() -> None:
    assert charge_fields(cdr(), LISBON, PMS) == {
        "PT": "T", "DA": "261207", "TI": "125801", "DU": "010205", "DD": "49301234567",
    }  # fmt: skip


@pytest.mark.parametrize(
    "changes",
    [{"direction": "internal"}, {"answer": None}, {"billable_s": 0}, {"direction": "inbound"}],
)
def test_internal_unanswered_and_inbound_calls_are_not_charged(changes: dict[str, Any]) -> None:
    assert charge_fields(cdr(**changes), LISBON, PMS) is None


def test_a_cdr_offered_twice_is_queued_once_and_other_callers_not_at_all(store: Store) -> None:
    charges = service(store)
    charges.on_cdr(cdr())
    charges.on_cdr(cdr())
    charges.on_cdr(cdr("c2", caller="100"))
    assert queued(store) == [(1, "0330", charge_fields(cdr(), dt.UTC, PMS))]


def test_recovery_queues_the_indexed_charges_a_crash_left_behind_once(store: Store) -> None:
    first = service(store, now=NOW - 3600)
    assert first.recover() == 0
    with store.write() as txn:
        for doc in (cdr("old", start="2026-12-07T10:00:00Z"), cdr("c1"), cdr("c2")):
            txn.put(f"{doc['start']}|{doc['cdr_id']}".encode(), msgpack.packb(doc),
                    db=store.db(INDEX))  # fmt: skip
    service(store).on_cdr(cdr("c1"))
    assert service(store).recover() == 1
    assert service(store).recover() == 0
    assert [n for n, _, _ in queued(store)] == [1, 2]


def test_a_listener_error_is_logged_not_raised(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    service(store).on_cdr(cdr(start="not a time"))
    assert queued(store) == []
    assert "charge-not-queued" in [getattr(r, "error_id", None) for r in caplog.records]


TARIFFS = ChargeSettings(method="tariff", tariffs=[
    Tariff(prefix="", zone="Local", per_minute=10, minimum=20),
    Tariff(prefix="0", zone="National", per_minute=30,
           bands=[TimeBand(start="20:00", end="08:00", per_minute=15)]),
    Tariff(prefix="00", zone="International", per_minute=150, surcharge=50),
])  # fmt: skip


def test_the_longest_prefix_decides_the_tariff() -> None:
    zones = [tariff_for(TARIFFS.tariffs, d).zone for d in ("2123", "0301234", "00441234")]
    assert zones == ["Local", "National", "International"]


@pytest.mark.parametrize(
    ("dialled", "hour", "billed", "cents"),
    [
        ("2123", 12, 30, 20),  # one started minute is below the minimum
        ("2123", 12, 181, 40),  # four started minutes
        ("0301234", 12, 60, 30),
        ("0301234", 23, 60, 15),  # a band crossing midnight
        ("0301234", 7, 61, 30),
        ("0301234", 8, 60, 30),  # the band ends at 08:00
        ("00441234", 3, 120, 350),  # surcharge on top
    ],
)
def test_a_call_costs_its_started_minutes_at_its_band_price(
    dialled: str, hour: int, billed: int, cents: int
) -> None:
    start = dt.datetime(2026, 12, 7, hour, 0, 30, tzinfo=dt.UTC)
    assert amount(tariff_for(TARIFFS.tariffs, dialled), start, billed) == cents


def test_rated_by_the_pbx_a_call_is_posted_as_a_direct_charge() -> None:
    callee = {"number": "00441234", "extension": None, "name": ""}
    fields = charge_fields(cdr(billable_s=90, callee=callee), LISBON, TARIFFS)
    assert fields == {"PT": "C", "TA": 350, "CT": "International", "DA": "261207",
                      "TI": "125801", "DU": "000130", "DD": "00441234"}  # fmt: skip


def test_the_tariff_method_needs_a_catch_all_tariff() -> None:
    with pytest.raises(ValueError, match="catch-all"):
        ChargeSettings(method="tariff", tariffs=[Tariff(prefix="0", zone="N", per_minute=1)])
