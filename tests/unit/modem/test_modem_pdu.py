"""SMS PDUs and GSM-7: reference vectors from the modem reference, and round-trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modem import gsm7, pdu
from drivers.modem.errors import RemoteProtocolError
from drivers.modem.messaging import Reassembler

_GSM_TEXT = st.text(
    alphabet=gsm7.DEFAULT_ALPHABET.replace("\x1b", "") + "^{}\\[~]|€\f", max_size=500
)
_ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300)


def test_submit_matches_the_reference_pdu() -> None:
    [encoded] = pdu.encode_submit("+15551234567", "hello")
    assert encoded.hex == "0011000B915155214365F70000AA05E8329BFD06"
    assert encoded.tpdu_length == 19


def test_deliver_reference_pdu_decodes() -> None:
    part = pdu.decode_deliver(
        "07915155000000F0040B915155214365F700004250102143650008D4F29C0E8AC966"
    )
    assert part.number == "+15551234567"
    assert part.text == "Test 123"
    assert part.timestamp == datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)


def test_ussd_packing_matches_huawei_example() -> None:
    assert gsm7.pack_hex("*100#") == "AA180C3602"
    assert gsm7.unpack_hex("AA180C3602") == "*100#"


def test_extension_characters_take_two_septets() -> None:
    assert gsm7.to_septets("€") == [0x1B, 0x65]
    dcs, parts = pdu.split_text("{" * 80)
    assert dcs == 0
    assert len(parts) == 1


def test_long_gsm_text_splits_into_153_septet_parts_without_breaking_escapes() -> None:
    text = "a" * 152 + "€" + "b" * 10
    _dcs, parts = pdu.split_text(text)
    assert parts[0] == "a" * 152
    assert "".join(parts) == text


def test_ucs2_chosen_for_text_outside_gsm7() -> None:
    [encoded] = pdu.encode_submit("+4930", "Привет")
    assert pdu.decode_submit(encoded.hex).text == "Привет"
    assert encoded.hex[16:18] == "08"  # TP-DCS after 00 11 00 04 91 9403 00


@settings(max_examples=150, deadline=None)
@given(text=_GSM_TEXT, reference=st.integers(0, 255))
def test_gsm7_submit_round_trips(text: str, reference: int) -> None:
    parts = pdu.encode_submit("+15551234567", text, reference=reference)
    decoded = [pdu.decode_submit(p.hex) for p in parts]
    assert "".join(d.text for d in decoded) == text
    assert all(len(bytes.fromhex(p.hex)) - 1 == p.tpdu_length for p in parts)
    if len(parts) > 1:
        assert [d.concat.sequence for d in decoded if d.concat] == list(range(1, len(parts) + 1))


@settings(max_examples=150, deadline=None)
@given(text=_ANY_TEXT, minutes=st.integers(-12 * 4, 14 * 4).map(lambda q: q * 15))
def test_deliver_round_trips_through_reassembly(text: str, minutes: int) -> None:
    when = datetime(2025, 3, 9, 8, 7, 6, tzinfo=timezone(timedelta(minutes=minutes)))
    reassembler = Reassembler()
    results = [
        reassembler.add(pdu.decode_deliver(p))
        for p in pdu.encode_deliver("+4915112345", text, when, reference=9)
    ]
    complete = [r for r in results if r is not None]
    assert len(complete) == 1
    assert complete[0].text == text
    assert complete[0].timestamp == when


def test_parts_arriving_out_of_order_are_joined_in_sequence() -> None:
    parts = pdu.encode_deliver("+4915", "x" * 200 + "y" * 200, datetime(2025, 1, 1, tzinfo=UTC))
    reassembler = Reassembler()
    results = [reassembler.add(pdu.decode_deliver(p)) for p in reversed(parts)]
    assert results[-1] is not None
    assert results[-1].text == "x" * 200 + "y" * 200


def test_16_bit_concatenation_reference_is_understood() -> None:
    udh = "0608040102" + "0301"
    body = "0A" + udh + gsm7.pack(gsm7.to_septets("hi")).hex()  # 7 header octets, no fill
    deliver = "00" + "44" + "0B915155214365F7" + "0000" + "42501021436500" + body
    part = pdu.decode_deliver(deliver)
    assert part.concat == pdu.Concat(0x0102, 3, 1)


@pytest.mark.parametrize(
    ("pdu_hex", "message"),
    [
        ("07915155000000F004", "PDU truncated"),
        ("zz", "PDU is not hex"),
        ("0011000B915155214365F70000AA05E8329BFD06", "not an SMS-DELIVER"),
    ],
)
def test_invalid_pdus_raise_remote_errors(pdu_hex: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        pdu.decode_deliver(pdu_hex)
