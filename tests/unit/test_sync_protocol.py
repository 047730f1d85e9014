"""Wire protocol v1: round trips, and any bytes give a message or a ProtocolError."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sync.protocol import (
    MAX_FRAME,
    Ack,
    CdrBatch,
    Command,
    CommandResult,
    ErrorReply,
    Hello,
    ProtocolError,
    RecChunk,
    RecCredit,
    RecDone,
    RecOffer,
    RecResume,
    Snapshot,
    SnapshotRequest,
    Status,
    Update,
    Welcome,
    decode,
    encode,
)

EXAMPLES = [
    Hello("site-a", "callmesh 0.1.0", ["cdr"], {"cdr": 3}, {"routing": 2}),
    Welcome(1.5),
    CdrBatch([(1, b"\x81\xa2id\xa1x"), (2, b"y")]),
    Ack("cdr", [1, 2]),
    RecOffer("rec-1", 10, "a" * 64, {"cdr_id": "c"}),
    RecChunk("rec-1", 0, b"\x00" * 10),
    RecResume("rec-1", 4, 8),
    RecCredit("rec-1", 1),
    RecDone("rec-1", True, "stored"),
    Status({"backlog": {"cdr": 0}}),
    SnapshotRequest("routing", 3),
    Snapshot("routing", 4, {"routes": []}),
    Update("routing", 5, 4, [["add", "1001"]]),
    Command("cmd-1", "sim-disable", {"iccid": "8986"}),
    CommandResult("cmd-1", True, "applied"),
    ErrorReply("bad-msgpack", "frame 0 is not msgpack", None),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.TYPE)
def test_every_message_round_trips(message: object) -> None:
    assert decode(encode(message)) == message  # type: ignore[arg-type]


def frames(header: dict[str, object], *extra: bytes) -> list[bytes]:
    return [msgpack.packb(header), *extra]


@pytest.mark.parametrize(
    ("raw", "error_id"),
    [
        ([], "bad-frame-count"),
        ([b"\xc1"], "bad-msgpack"),
        ([encode(Welcome(1.0))[0][:-3]], "bad-msgpack"),
        ([b"\x93\x01\x02\x03"], "bad-header"),
        (frames({"v": 2, "t": "hello"}), "unsupported-version"),
        (frames({"v": 1, "t": "teleport"}), "unknown-type"),
        (frames({"v": 1, "t": "ack", "stream": "cdr"}), "missing-field"),
        (frames({"v": 1, "t": "ack", "stream": "cdr", "seqs": "1,2"}), "bad-field"),
        (frames({"v": 1, "t": "cdr-batch", "records": []}), "bad-batch"),
        (frames({"v": 1, "t": "cdr-batch", "records": [[1, "text"]]}), "bad-record"),
        (frames({"v": 1, "t": "rec-chunk", "recording_id": "r", "offset": 0}), "bad-chunk"),
        (frames({"v": 1, "t": "rec-credit", "recording_id": "r", "credit": -1}), "bad-field"),
        ([b"\x00" * (MAX_FRAME + 1)], "frame-too-large"),
        ([*encode(Welcome(1.0)), b"extra"], "bad-frame-count"),
    ],
)
def test_bad_frames_give_the_exact_error(raw: list[bytes], error_id: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(raw)
    assert caught.value.error_id == error_id


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=0, max_size=3))
def test_any_bytes_decode_or_raise_protocol_error(raw: list[bytes]) -> None:
    with contextlib.suppress(ProtocolError):
        decode(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["v", "t", "seqs", "stream", "records", "offset", "recording_id", "site_id", "software"]
        ),
        st.one_of(
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=5),
            st.binary(max_size=5),
            st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3),
            st.none(),
        ),
        max_size=6,
    )
)
def test_any_header_map_decodes_or_raises_protocol_error(header: dict[str, object]) -> None:
    for t in ("hello", "ack", "cdr-batch", "rec-chunk"):
        with contextlib.suppress(ProtocolError):
            decode([msgpack.packb({**header, "v": 1, "t": t}), b"x"])
