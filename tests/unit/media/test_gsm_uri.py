"""How a media worker recognises an outbound GSM call in Kamailio's INVITE."""

from __future__ import annotations

import pytest

from drivers.media.services import GSM_URI


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("INVITE sip:+4930123@127.0.0.1:5120;gsm=gsm-1 SIP/2.0", ("+4930123", "gsm-1")),
        ("INVITE sip:0612@127.0.0.1:5120;lr;gsm=gsm-12 SIP/2.0", ("0612", "gsm-12")),
        ("INVITE sip:echo@127.0.0.1:5080 SIP/2.0", None),
        ("INVITE sip:+49@127.0.0.1:5120;gsm=GSM-1 SIP/2.0", None),
        ("INVITE sip:+49@127.0.0.1:5120;gsm=-x SIP/2.0", None),
    ],
)
def test_the_number_and_channel_come_from_the_request_uri(
    line: str, expected: tuple[str, str] | None
) -> None:
    match = GSM_URI.search(line + "\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n")
    assert (match.groups() if match else None) == expected
