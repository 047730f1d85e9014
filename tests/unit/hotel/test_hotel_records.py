"""Hotel records on the sync link: golden frames, round trips, and any bytes parse or refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sync.hotel import pack_hotel_record, parse_hotel_record
from drivers.sync.records import RecordError

FRAMES = Path(__file__).parent / "frames"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FRAMES / "expected.json").read_text())


def test_every_frame_has_an_expectation() -> None:
    assert sorted(p.stem for p in FRAMES.glob("*.msgpack")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_golden_frame_parses_to_its_record_or_is_refused_with_its_error(name: str) -> None:
    raw = (FRAMES / f"{name}.msgpack").read_bytes()
    expected = EXPECTED[name]
    if "error_id" in expected:
        with pytest.raises(RecordError) as refused:
            parse_hotel_record(raw)
        assert refused.value.error_id == expected["error_id"]
        return
    record = parse_hotel_record(raw)
    assert record.model_dump() == expected["record"]
    assert pack_hotel_record(record) == raw


def test_unknown_keys_from_a_newer_site_are_ignored() -> None:
    doc = msgpack.unpackb((FRAMES / "posting-ptt-ok.msgpack").read_bytes())
    record = parse_hotel_record(msgpack.packb({**doc, "business_unit": "spa"}))
    assert record.id == "P17-1796624880000"


def parses_or_refuses(raw: bytes) -> bool:
    """True when ``raw`` parses, or is refused with a record error id; anything else raises."""
    try:
        parse_hotel_record(raw)
    except RecordError as err:
        return err.error_id.startswith("record-")
    return True


ints = st.integers(-(2**63), 2**63 - 1)
values = st.one_of(
    st.none(), st.booleans(), ints, st.floats(), st.text(max_size=80),
    st.binary(max_size=20), st.lists(ints, max_size=3),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from([n for n in sorted(EXPECTED) if "record" in EXPECTED[n]]),
    key=st.text(min_size=1, max_size=20),
    value=values,
)
def test_a_record_with_any_field_replaced_parses_or_is_refused(
    name: str, key: str, value: Any
) -> None:
    doc = msgpack.unpackb((FRAMES / f"{name}.msgpack").read_bytes())
    doc[key] = value
    raw = msgpack.packb(doc, use_bin_type=True)
    assert parses_or_refuses(raw)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused(raw: bytes) -> None:
    assert parses_or_refuses(raw)
