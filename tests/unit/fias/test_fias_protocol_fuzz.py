"""Any bytes, whole or one at a time: records or RemoteProtocolError, and the same either way."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.fias.errors import RemoteProtocolError
from drivers.fias.grammar import Record, parse_record
from drivers.fias.protocol import FiasProtocol
from drivers.fias.serial import SerialProtocol

_PIECES = [
    b"\x02",
    b"\x03",
    b"\x05",
    b"\x06",
    b"\x15",
    b"|",
    b"LS|",
    b"PA|RN2781|ASOK|P#1729|",
    b"GI|RN0330|SF|",
    b"G#",
    b"\x00",
    b"\x7f",
    b"\xe9",
]
_stream = st.lists(st.one_of(st.binary(max_size=24), st.sampled_from(_PIECES)), max_size=40).map(
    b"".join
)
_field_id = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="|\x7f"),
    min_size=2,
    max_size=2,
)
_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="|\x7f"),
    max_size=12,
)


def drain(protocol: FiasProtocol | SerialProtocol) -> list[object]:
    out: list[object] = []
    while True:
        try:
            item = protocol.next_event()
        except RemoteProtocolError as err:
            out.append(("error", str(err)))
            continue
        if item is None:
            return out
        out.append(item)


def feed_whole(protocol: FiasProtocol | SerialProtocol, data: bytes) -> list[object]:
    protocol.receive_data(data)
    return drain(protocol)


def feed_bytewise(protocol: FiasProtocol | SerialProtocol, data: bytes) -> list[object]:
    out: list[object] = []
    for byte in data:
        protocol.receive_data(bytes((byte,)))
        out += drain(protocol)
    return out


@settings(max_examples=400, deadline=None)
@given(_stream)
def test_any_bytes_parse_or_raise_the_remote_error_whole_or_bytewise(data: bytes) -> None:
    whole = feed_whole(FiasProtocol(max_record=64), data)
    bytewise = feed_bytewise(FiasProtocol(max_record=64), data)
    assert all(isinstance(item, Record | tuple) for item in whole)
    assert whole == bytewise


@settings(max_examples=300, deadline=None)
@given(_stream)
def test_serial_framing_takes_any_bytes_the_same_whole_or_bytewise(data: bytes) -> None:
    whole_proto = SerialProtocol(lambda: 0.0, max_record=64)
    byte_proto = SerialProtocol(lambda: 0.0, max_record=64)
    whole = feed_whole(whole_proto, data)
    bytewise = feed_bytewise(byte_proto, data)
    assert whole == bytewise
    assert whole_proto.data_to_send() == byte_proto.data_to_send()


@settings(max_examples=300, deadline=None)
@given(_stream)
def test_the_receive_buffer_never_grows_past_the_record_limit(data: bytes) -> None:
    protocol = FiasProtocol(max_record=64)
    protocol.receive_data(data * 20)
    drain(protocol)
    assert len(protocol._buffer) <= 64


@given(
    st.sampled_from(["GI", "PS", "PA", "LS", "ZZ"]),
    st.lists(st.tuples(_field_id, _value), max_size=8),
)
def test_packed_records_parse_back_to_the_same_bytes(
    kind: str, fields: list[tuple[str, str]]
) -> None:
    raw = "|".join([kind, *(k + v for k, v in fields)]).encode("latin-1") + b"|"
    record = parse_record(raw)
    assert record.record_id == kind
    assert record.fields == tuple(fields)
    assert bytes(record) == raw


def test_an_over_long_record_raises_even_when_its_etx_is_in_the_same_read() -> None:
    protocol = FiasProtocol(max_record=16)
    protocol.receive_data(b"\x02GI|RN1|GN" + b"x" * 40 + b"|\x03\x02LS|\x03")
    assert drain(protocol) == [("error", "record longer than 16"), parse_record(b"LS|")]
