"""The ingest's shortcuts for the usual CDR equal the field-by-field rules they skip."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from aggregator.store.cdr_rows import HOUR_MS, CdrRow, hourly_totals, new_totals
from drivers.sync.records import Party, RecordError, parse_party, text

# For each field: absent, empty, usual, one over the cap, far over it, wrong types.
_NUMBERS = [None, "", "+4930100", "9" * 64, "9" * 65, 7, b"+49"]
_EXTENSIONS = [None, "", "1001", "1" * 32, "1" * 33, 1001.0]
_NAMES = [None, "", "Desk", "n" * 128, "n" * 129, ["Desk"]]


def _field_by_field(value: dict[str, Any]) -> Party:
    """The party as each field's own rule reads it (records.text)."""
    return Party(
        text(value, "number", 64), text(value, "extension", 32) or None, text(value, "name", 128)
    )


def _outcome(read: Any, value: dict[str, Any]) -> Party | str:
    try:
        party: Party = read(value)
    except RecordError as err:
        return err.error_id
    return party


@pytest.mark.parametrize("extension", _EXTENSIONS)
def test_a_party_reads_as_its_fields_rules_read_it(extension: Any) -> None:
    for number, name in itertools.product(_NUMBERS, _NAMES):
        value = {"number": number, "extension": extension, "name": name}
        shown = {k: v for k, v in value.items() if v is not None}
        for party in (value, shown):
            fast = _outcome(lambda v: parse_party({"caller": v}, "caller"), party)
            assert fast == _outcome(_field_by_field, party), party


def _row(cdr_id: str, started_ms: int, **fields: Any) -> CdrRow:
    values: dict[str, Any] = {
        "site_id": "s1",
        "cdr_id": cdr_id,
        "conversation_id": None,
        "direction": "outbound",
        "caller_number": "",
        "caller_extension": "",
        "caller_name": "",
        "callee_number": "",
        "callee_extension": "",
        "callee_name": "",
        "trunk": "",
        "started_ms": started_ms,
        "answered_ms": None,
        "ended_ms": None,
        "duration_s": 0.0,
        "billable_s": 0.0,
        "disposition": "answered",
        "hangup_cause": "",
        "hangup_side": "",
        "recording_id": None,
        "doc": b"",
        "received_ms": 0,
    }
    return CdrRow(**(values | fields))


def _row_by_row(rows: list[CdrRow], continued: set[str]) -> dict[Any, list[float]]:
    """Each row added to each of its dimensions, one after the other."""
    totals = new_totals()
    for row in rows:
        keys = {("site", "")}
        keys |= {("extension", e) for e in (row.caller_extension, row.callee_extension) if e}
        keys |= {("trunk", row.trunk)} if row.trunk else set()
        for dim, key in keys:
            t = totals[(row.site_id, row.started_ms - row.started_ms % HOUR_MS, dim, key)]
            new = row.cdr_id not in continued
            t[0] += new
            t[1] += new and row.disposition == "answered"
            t[2] += row.duration_s
            t[3] += row.billable_s
    return dict(totals)


def test_hourly_totals_equal_each_row_added_to_each_dimension() -> None:
    extensions, trunks = ["", "1001", "1002"], ["", "gsm-1"]
    rows = [
        _row(
            f"c{i}",
            (i % 3) * HOUR_MS + i,
            site_id=f"s{i % 2}",
            caller_extension=extensions[i % 3],
            callee_extension=extensions[(i // 3) % 3],
            trunk=trunks[i % 2],
            duration_s=float(i % 7 * 10),
            billable_s=float(i % 5 * 10),
            disposition="answered" if i % 4 else "no-answer",
        )
        for i in range(200)
    ]
    continued = {f"c{i}" for i in range(0, 200, 9)}
    assert dict(hourly_totals(rows, continued)) == _row_by_row(rows, continued)
    assert dict(hourly_totals(rows)) == _row_by_row(rows, set())
