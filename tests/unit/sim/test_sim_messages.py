"""The sync messages the SIM gateway adds: round trips and exact errors."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sync.protocol import (
    Ack,
    ComplianceBatch,
    ProtocolError,
    SimStatus,
    decode,
    encode,
)

EXAMPLES = [
    SimStatus(
        [
            {
                "iccid": "8949000000000000011",
                "status": "active",
                "days": {"2026-03-02": [1, 1, 42.0, 1]},
            }
        ],
        [{"id": "s1", "reason": "calls-per-day", "from_slot": 0, "to_slot": 1}],
    ),
    SimStatus([]),
    ComplianceBatch([(1, msgpack.packb({"id": "e1", "error_id": "dnc-site"}))]),
    Ack("compliance", [1]),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.TYPE)
def test_sim_gateway_messages_round_trip(message: object) -> None:
    assert decode(encode(message)) == message  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "error_id"),
    [
        ({"t": "sim-status"}, "missing-field"),
        ({"t": "sim-status", "sims": {"a": 1}}, "bad-field"),
        ({"t": "compliance-batch", "records": []}, "bad-batch"),
        ({"t": "compliance-batch", "records": [[1, "text"]]}, "bad-record"),
    ],
)
def test_bad_sim_gateway_messages_give_the_exact_error(
    header: dict[str, object], error_id: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode([msgpack.packb({"v": 1, **header})])
    assert caught.value.error_id == error_id


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["sims", "switches", "records"]),
        st.one_of(
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=5),
            st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3),
        ),
        max_size=3,
    )
)
def test_any_sim_gateway_header_decodes_or_raises_protocol_error(header: dict[str, object]) -> None:
    for t in ("sim-status", "compliance-batch"):
        with contextlib.suppress(ProtocolError):
            decode([msgpack.packb({**header, "v": 1, "t": t})])
