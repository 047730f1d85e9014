"""Any bytes, whole or one at a time: events or RemoteProtocolError, and the same either way."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modem.errors import RemoteProtocolError
from drivers.modem.profiles import QUECTEL_EC25
from drivers.modem.protocol import AtProtocol, Command

_PIECES = [
    b"\r",
    b"\n",
    b"\r\n",
    b"> ",
    b"OK",
    b"ERROR",
    b"+CME ERROR: 14",
    b"RING",
    b"+CLCC: 1,0,0,0,0",
    b"+CMT: ,22",
    b"NO CARRIER",
    b"AT+CSQ",
    b"\x1a",
    b"\x00",
    b"\xff",
]
_COMMANDS = [
    None,
    Command("AT+CSQ", ("+CSQ:",)),
    Command("AT+CMGS=5", prompt=True),
    Command("ATD1;", call=True),
    Command("AT+CGSN", raw=True),
]
_stream = st.lists(st.one_of(st.binary(max_size=24), st.sampled_from(_PIECES)), max_size=40).map(
    b"".join
)


def _run(command: Command | None, chunks: list[bytes]) -> list[object]:
    protocol = AtProtocol(urc_prefixes=QUECTEL_EC25.urc_prefixes, max_line=64)
    if command is not None:
        protocol.send(command)
    out: list[object] = []
    for chunk in chunks:
        protocol.receive_data(chunk)
        while True:
            try:
                event = protocol.next_event()
            except RemoteProtocolError as err:
                out.append(("error", str(err)))
                continue
            if event is None:
                break
            out.append(event)
    return out


@settings(max_examples=300, deadline=None)
@given(data=_stream, command=st.sampled_from(_COMMANDS))
def test_any_bytes_give_events_or_remote_errors_alike_whole_or_bytewise(
    data: bytes, command: Command | None
) -> None:
    whole = _run(command, [data])
    bytewise = _run(command, [data[i : i + 1] for i in range(len(data))])
    assert whole == bytewise
