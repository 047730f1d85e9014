"""The serial (FIPS) framing: LRC, ACK/NAK, ENQ on timeout, discard after four attempts."""

from __future__ import annotations

import pytest

from drivers.fias.errors import RemoteProtocolError
from drivers.fias.grammar import parse_record
from drivers.fias.serial import ACK, ENQ, NAK, FrameDiscarded, SerialProtocol, frame, lrc

LS = parse_record(b"LS|DA001015|TI123045|")
LA = parse_record(b"LA|DA001015|TI123046|")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lrc_is_the_xor_after_stx_through_etx_as_in_the_spec_example() -> None:
    body = b"12345\x03"
    assert lrc(body) == ord("2")
    body = b"LS|DA001015|TI123045|\x03"
    assert frame(LS) == b"\x02" + body + bytes((lrc(body),))


def test_a_good_frame_is_acknowledged_and_delivered() -> None:
    receiver = SerialProtocol(Clock())
    receiver.receive_data(frame(LS))
    assert receiver.data_to_send() == bytes((ACK,))
    assert receiver.next_event() == LS


def test_a_frame_with_a_bad_lrc_is_refused_with_nak_and_not_delivered() -> None:
    receiver = SerialProtocol(Clock())
    data = bytearray(frame(LS))
    data[-1] ^= 0xFF
    receiver.receive_data(bytes(data))
    assert receiver.data_to_send() == bytes((NAK,))
    assert receiver.next_event() is None


def test_nak_makes_the_sender_resend_the_same_frame() -> None:
    sender = SerialProtocol(Clock())
    assert sender.send(LS) == frame(LS)
    assert sender.send(LA) == b"", "a second frame waits for the first one's ACK"
    sender.receive_data(bytes((NAK,)))
    assert sender.data_to_send() == frame(LS)
    sender.receive_data(bytes((ACK,)))
    assert sender.data_to_send() == frame(LA)


def test_silence_sends_enq_and_the_receiver_repeats_its_last_answer() -> None:
    clock = Clock()
    sender, receiver = SerialProtocol(clock), SerialProtocol(clock)
    sender.send(LS)
    receiver.receive_data(frame(LS))
    receiver.data_to_send()  # the ACK is lost on the line
    clock.now = 3.0
    sender.tick()
    assert sender.data_to_send() == bytes((ENQ,))
    receiver.receive_data(bytes((ENQ,)))
    sender.receive_data(receiver.data_to_send())
    assert sender.send(LA) == frame(LA), "the repeated ACK released the line"


def test_after_four_unanswered_attempts_the_frame_is_discarded_and_reported() -> None:
    clock = Clock()
    sender = SerialProtocol(clock)
    sender.send(LS)
    sender.send(LA)
    sender.data_to_send()
    for attempt in range(3):
        clock.now += 3.0
        sender.tick()
        assert sender.data_to_send() == bytes((ENQ,)), attempt
    clock.now += 3.0
    sender.tick()
    assert sender.next_event() == FrameDiscarded(LS)
    assert sender.data_to_send() == frame(LA)


def test_a_frame_cut_by_stx_is_a_remote_error_answered_with_nak() -> None:
    receiver = SerialProtocol(Clock())
    receiver.receive_data(b"\x02LS|DA" + frame(LA))
    assert receiver.data_to_send() == bytes((NAK, ACK))
    with pytest.raises(RemoteProtocolError, match="cut short"):
        receiver.next_event()
    assert receiver.next_event() == LA
