"""The sans-I/O AT core: framing, attribution of lines, final results, prompt, limits."""

from __future__ import annotations

import pytest

from drivers.modem import errors
from drivers.modem.grammar import FinalResult, error_for, parse_final
from drivers.modem.protocol import AtProtocol, Command, Prompt, Response, Urc, answer_prefix


def drain(protocol: AtProtocol) -> list[object]:
    events: list[object] = []
    while (event := protocol.next_event()) is not None:
        events.append(event)
    return events


def exchange(command: Command, *chunks: bytes) -> list[object]:
    protocol = AtProtocol()
    protocol.send(command)
    events: list[object] = []
    for chunk in chunks:
        protocol.receive_data(chunk)
        events += drain(protocol)
    return events


def final(line: str) -> FinalResult:
    result = parse_final(line)
    assert result is not None
    return result


def test_echo_is_dropped_and_info_lines_belong_to_the_command() -> None:
    events = exchange(Command("AT+CSQ", ("+CSQ:",)), b"AT+CSQ\r\r\n+CSQ: 18,99\r\n\r\nOK\r\n")
    assert events == [Response("AT+CSQ", ("+CSQ: 18,99",), final("OK"))]


def test_same_exchange_without_echo() -> None:
    events = exchange(Command("AT+CSQ", ("+CSQ:",)), b"\r\n+CSQ: 18,99\r\n\r\nOK\r\n")
    assert isinstance(events[0], Response)
    assert events[0].lines == ("+CSQ: 18,99",)


def test_lines_split_across_reads_are_reassembled() -> None:
    data = b"AT+CSQ\r\r\n+CSQ: 18,99\r\n\r\nOK\r\n"
    chunks = [data[i : i + 3] for i in range(0, len(data), 3)]
    events = exchange(Command("AT+CSQ", ("+CSQ:",)), *chunks)
    assert [type(e) for e in events] == [Response]


def test_urcs_between_echo_and_ok_are_reported_separately() -> None:
    data = b'AT+CSQ\r\r\n^RSSI:26\r\n^HCSQ:"LTE",60,52,106,24\r\n+CSQ: 28,99\r\n\r\nOK\r\n'
    protocol = AtProtocol(urc_prefixes=("^RSSI", "^HCSQ"))
    protocol.send(Command("AT+CSQ", ("+CSQ:",)))
    protocol.receive_data(data)
    events = drain(protocol)
    assert events[:2] == [Urc("^RSSI:26"), Urc('^HCSQ:"LTE",60,52,106,24')]
    assert isinstance(events[2], Response)
    assert events[2].lines == ("+CSQ: 28,99",)


def test_multi_line_clcc_listing() -> None:
    data = b'\r\n+CLCC: 1,0,0,1,0,"",128\r\n+CLCC: 2,1,4,0,0,"+4930123",145\r\n\r\nOK\r\n'
    events = exchange(Command("AT+CLCC", ("+CLCC:",)), data)
    assert isinstance(events[0], Response)
    assert len(events[0].lines) == 2


def test_cmgl_header_and_pdu_lines_belong_to_a_raw_command() -> None:
    data = b'\r\n+CMGL: 1,0,,5\r\n0791AB\r\n+CMTI: "SM",2\r\n+CMGL: 2,0,,5\r\n0791CD\r\n\r\nOK\r\n'
    protocol = AtProtocol()
    protocol.send(Command("AT+CMGL=4", ("+CMGL:",), raw=True))
    protocol.receive_data(data)
    events = drain(protocol)
    assert events[0] == Urc('+CMTI: "SM",2')
    assert isinstance(events[1], Response)
    assert events[1].lines == ("+CMGL: 1,0,,5", "0791AB", "+CMGL: 2,0,,5", "0791CD")


def test_cnum_with_two_numbers() -> None:
    data = b'\r\n+CNUM: "","+15551",145\r\n+CNUM: "fax","+15552",145\r\n\r\nOK\r\n'
    events = exchange(Command("AT+CNUM", ("+CNUM:",)), data)
    assert isinstance(events[0], Response)
    assert len(events[0].lines) == 2


def test_sms_prompt_then_payload_then_result() -> None:
    protocol = AtProtocol()
    protocol.send(Command("AT+CMGS=19", ("+CMGS:",), prompt=True))
    protocol.receive_data(b"AT+CMGS=19\r\r\n> ")
    assert drain(protocol) == [Prompt("AT+CMGS=19")]
    assert protocol.send_payload("0011AB").endswith(b"\x1a")
    protocol.receive_data(b"0011AB\x1a\r\n+CMGS: 42\r\n\r\nOK\r\n")
    events = drain(protocol)
    assert isinstance(events[0], Response)
    assert events[0].lines == ("+CMGS: 42",)
    assert protocol.abort_payload() == b"\x1b"


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("OK", "ok"),
        ("ERROR", "error"),
        ("NO CARRIER", "no-carrier"),
        ("BUSY", "busy"),
        ("NO ANSWER", "no-answer"),
        ("NO DIALTONE", "no-dialtone"),
        ("COMMAND NOT SUPPORT", "not-supported"),
        ("+CME ERROR: 10", "cme"),
        ("+CMS ERROR: 304", "cms"),
    ],
)
def test_every_final_result_ends_a_dial(line: str, kind: str) -> None:
    events = exchange(Command("ATD123;", call=True), f"\r\n{line}\r\n".encode())
    assert isinstance(events[0], Response)
    assert events[0].result.kind == kind


def test_no_carrier_during_other_command_is_a_urc() -> None:
    events = exchange(Command("AT+CSQ", ("+CSQ:",)), b"\r\nNO CARRIER\r\n\r\nOK\r\n")
    assert events[0] == Urc("NO CARRIER")
    assert isinstance(events[1], Response)


@pytest.mark.parametrize(
    ("line", "error_type", "code"),
    [
        ("+CME ERROR: SIM PIN required", errors.SimPinRequired, 11),
        ("+CME ERROR: 11", errors.SimPinRequired, 11),
        ("+CME ERROR: SIM busy", errors.SimBusy, 14),
        ("+CME ERROR: 14", errors.SimBusy, 14),
        ("+CME ERROR: SIM not inserted", errors.SimNotInserted, 10),
        ("+CME ERROR: 10", errors.SimNotInserted, 10),
        ("+CME ERROR: SIM PUK required", errors.SimPukRequired, 12),
        ("+CME ERROR: SIM failure", errors.SimFailure, 13),
        ("+CME ERROR: no network service", errors.NoNetworkService, 30),
        ("+CME ERROR: 515", errors.CmeError, 515),
    ],
)
def test_cme_codes_map_to_typed_errors(line: str, error_type: type, code: int) -> None:
    result = parse_final(line)
    assert result is not None
    err = error_for("AT+CPIN?", result)
    assert type(err) is error_type
    assert isinstance(err, errors.CmeError)
    assert err.code == code


def test_cms_error_carries_its_code() -> None:
    result = parse_final("+CMS ERROR: 321")
    assert result is not None
    err = error_for("AT+CMGR=9", result)
    assert isinstance(err, errors.CmsError)
    assert err.code == 321


def test_two_commands_outstanding_is_a_local_error() -> None:
    protocol = AtProtocol()
    protocol.send(Command("AT"))
    with pytest.raises(errors.LocalProtocolError, match="still outstanding"):
        protocol.send(Command("AT"))


def test_overlong_line_raises_remote_error_then_resynchronises() -> None:
    protocol = AtProtocol(max_line=16)
    protocol.receive_data(b"\r\n" + b"x" * 40)
    protocol.receive_data(b"y" * 40 + b"\r\nRING\r\n")
    with pytest.raises(errors.RemoteProtocolError, match="line longer than 16 bytes"):
        protocol.next_event()
    assert drain(protocol) == [Urc("RING")]


def test_control_bytes_raise_remote_error() -> None:
    protocol = AtProtocol()
    protocol.receive_data(b"\r\n\x07\x00junk\r\n")
    with pytest.raises(errors.RemoteProtocolError, match="control bytes"):
        protocol.next_event()


def test_cancel_turns_late_lines_into_urcs() -> None:
    protocol = AtProtocol()
    protocol.send(Command("AT+CSQ", ("+CSQ:",)))
    protocol.cancel()
    protocol.receive_data(b"\r\n+CSQ: 1,99\r\n\r\nOK\r\n")
    assert drain(protocol) == [Urc("+CSQ: 1,99"), Urc("OK")]


@pytest.mark.parametrize(
    ("text", "prefix"),
    [("AT+CSQ", ("+CSQ:",)), ("at^cvoice?", ("^CVOICE:",)), ("ATI", ()), ("ATD123;", ())],
)
def test_answer_prefix_of_extended_commands(text: str, prefix: tuple[str, ...]) -> None:
    assert answer_prefix(text) == prefix
