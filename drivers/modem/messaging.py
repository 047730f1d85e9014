"""SMS in PDU mode (27.005 §3.5.1 +CMGS, §3.4.3 +CMGR, §3.5.4 +CMGD) and USSD (27.007 §7.15).

Incoming messages are read as soon as ``+CMTI`` names them, deleted from the SIM, and
reassembled from their parts; a bounded table holds incomplete multipart messages, the oldest
dropped first, so a lost part cannot grow memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from drivers.modem import gsm7, pdu
from drivers.modem.errors import CommandTimeout, RemoteProtocolError
from drivers.modem.grammar import Cusd, fields, to_int
from drivers.modem.session import ModemSession

log = logging.getLogger(__name__)
_DCS_UCS2 = 72


@dataclass(frozen=True)
class SmsReceived:
    """A complete incoming SMS (all parts joined)."""

    number: str
    text: str
    timestamp: datetime | None
    parts: int


class Reassembler:
    """Joins concatenated parts; keeps at most ``limit`` incomplete messages."""

    def __init__(self, limit: int = 64, max_age: float = 3600.0) -> None:
        self._limit = limit
        self._max_age = max_age
        self._groups: OrderedDict[tuple[str, int, int], tuple[float, dict[int, pdu.SmsPart]]]
        self._groups = OrderedDict()

    def add(self, part: pdu.SmsPart) -> SmsReceived | None:
        """Add one part; the whole message once every part arrived."""
        if part.concat is None:
            return SmsReceived(part.number, part.text, part.timestamp, 1)
        key = (part.number, part.concat.reference, part.concat.total)
        started, parts = self._groups.pop(key, (time.monotonic(), {}))
        parts[part.concat.sequence] = part
        if len(parts) == part.concat.total:
            ordered = [parts[i] for i in sorted(parts)]
            text = "".join(p.text for p in ordered)
            return SmsReceived(part.number, text, ordered[0].timestamp, len(ordered))
        self._groups[key] = (started, parts)
        self._expire()
        return None

    def _expire(self) -> None:
        now = time.monotonic()
        while self._groups:
            key, (started, _) = next(iter(self._groups.items()))
            if len(self._groups) <= self._limit and now - started < self._max_age:
                return
            log.warning("dropping incomplete SMS from %s", key[0])
            del self._groups[key]


class Messaging:
    """SMS and USSD for one modem."""

    def __init__(self, session: ModemSession) -> None:
        self._session = session
        self._reassembler = Reassembler()
        self._reference = int(time.time()) & 0xFF
        self._ussd: asyncio.Future[Cusd] | None = None

    async def send_sms(self, number: str, text: str) -> list[int]:
        """Send ``text`` (multipart when long); returns the network message references."""
        self._reference = (self._reference + 1) & 0xFF
        refs = []
        for encoded in pdu.encode_submit(number, text, reference=self._reference):
            response = await self._session.run(
                f"AT+CMGS={encoded.tpdu_length}",
                expect=("+CMGS:",),
                prompt=True,
                payload=encoded.hex,
            )
            ref = to_int(fields(response.lines[0], "+CMGS")[0]) if response.lines else None
            refs.append(ref if ref is not None else -1)
            self._session.counters.sms_sent += 1
        return refs

    async def fetch(self, index: int) -> None:
        """Read, delete and publish the stored message at ``index`` (after ``+CMTI``)."""
        response = await self._session.run(f"AT+CMGR={index}", expect=("+CMGR:",), raw=True)
        body = [line for line in response.lines if not line.startswith("+CMGR:")]
        await self._session.run(f"AT+CMGD={index}")
        if body:
            self.deliver(body[0])

    def deliver(self, pdu_hex: str) -> None:
        """Decode one delivered PDU and publish the message once complete."""
        try:
            part = pdu.decode_deliver(pdu_hex)
        except RemoteProtocolError as err:
            self._session.counters.garbage_lines += 1
            log.warning("undecodable SMS PDU: %s", err)
            return
        message = self._reassembler.add(part)
        if message is not None:
            self._session.counters.sms_received += 1
            self._session.emit(message)

    async def ussd(self, code: str, within: float = 30.0) -> str:
        """Send a USSD request and return the network's reply text."""
        packed = self._session.profile.ussd_packed
        request = gsm7.pack_hex(code) if packed else code
        loop = asyncio.get_running_loop()
        self._ussd = loop.create_future()
        try:
            await self._session.run(f'AT+CUSD=1,"{request}",15')
            async with asyncio.timeout(within):
                reply = await self._ussd
        except TimeoutError:
            raise CommandTimeout(f"no USSD reply to {code} within {within:.0f} s") from None
        finally:
            self._ussd = None
        return self.decode_ussd(reply)

    def on_ussd(self, cusd: Cusd) -> None:
        """A ``+CUSD`` URC arrived."""
        if self._ussd is not None and not self._ussd.done():
            self._ussd.set_result(cusd)

    def decode_ussd(self, cusd: Cusd) -> str:
        """Reply text: UCS-2 hex for DCS 72, packed GSM-7 hex on Huawei, plain otherwise."""
        try:
            if cusd.dcs == _DCS_UCS2:
                return bytes.fromhex(cusd.text).decode("utf-16-be")
            if self._session.profile.ussd_packed:
                return gsm7.unpack_hex(cusd.text)
        except (ValueError, RemoteProtocolError) as err:
            log.warning("USSD reply not in the expected coding (%s); passing it on raw", err)
        return cusd.text
