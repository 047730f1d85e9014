"""SMS and USSD on a SIM gateway: the send queue, received messages, balance checks.

Theory of operation: ``submit`` validates a request and stores it ``queued`` (durable
before the API answers). One sender task owns the queue: each turn it reads the
unfinished records in creation order and starts a send for every record whose channel
(the requested one, else the first in configured order) has a ready modem, a SIM that
may send (SimService.sms_sim) and enough tokens in that SIM's bucket; a channel sends
one SMS at a time. Every state change is written before the next step, so after a
restart the queue picks up where it stopped (see sms_policy for the state machine).
One watcher per modem stores each ``SmsReceived`` (with the SIM that received it),
queues it for HQ and notifies the webhook. USSD runs one request per channel at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from appliance.compliance.service import Attempt, ComplianceService
from appliance.gateway.settings import SmsSettings
from appliance.gateway.sms_policy import (
    RetryRule,
    SmsError,
    TokenBucket,
    attempt_failed,
    check_number,
    check_ussd,
    count_parts,
    describe,
    expired,
    recovered,
    sending,
    sent,
    transient,
)
from appliance.gateway.sms_store import SmsStore
from appliance.pbx.cdr import time_ordered_id
from appliance.pbx.webhooks import WebhookService
from appliance.sim import SimService
from appliance.store import Store
from drivers.modem import EventStream, SmsReceived
from drivers.modem.errors import CommandTimeout, ModemError

log = logging.getLogger(__name__)

IDLE_S = 5.0
SEND_TIMEOUT_PER_PART_S = 60.0


class SmsModem(Protocol):
    """What the service needs of a modem driver (drivers.modem.ModemDriver has it)."""

    state: str

    def subscribe(self, limit: int = 256) -> EventStream: ...

    async def send_sms(self, number: str, text: str) -> list[int]: ...

    async def ussd(self, code: str, within: float = 30.0) -> str: ...


class SmsService:
    """Owns the SMS records, queue and buckets of the gateway (a lifecycle component)."""

    name = "sms"

    def __init__(
        self,
        settings: SmsSettings,
        store: Callable[[], Store],
        modems: Mapping[str, SmsModem],
        sim: SimService,
        compliance: ComplianceService | None = None,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._modems = dict(modems)
        self._sim = sim
        self._compliance = compliance
        self.webhooks = webhooks
        self._rule = RetryRule(settings.max_attempts, settings.retry_delay_s, settings.expire_s)
        # Subscribed now, before any modem starts, so no received SMS slips past.
        self._streams = {name: modem.subscribe(1024) for name, modem in self._modems.items()}
        self._records: SmsStore | None = None
        self._buckets: dict[str, TokenBucket] = {}
        self._sending: set[str] = set()
        self._busy: set[str] = set()
        self._ussd_busy: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()

    @property
    def channels(self) -> list[str]:
        """The channel names, in configured order."""
        return list(self._modems)

    async def start(self) -> None:
        """Recover interrupted sends, then start the sender and the receivers."""
        records = self._records = SmsStore(self._store(), self._settings.keep)
        now = time.time()
        for record in await asyncio.to_thread(records.unfinished):
            if record["status"] == "sending":
                await asyncio.to_thread(records.put, recovered(record, self._rule, now))
        if self.webhooks is not None:
            self.webhooks.start()
        self._tasks = [asyncio.create_task(self._sender(), name="sms-sender")]
        self._tasks += [
            asyncio.create_task(self._receiver(name, stream), name=f"sms-in-{name}")
            for name, stream in self._streams.items()
        ]

    async def stop(self) -> None:
        """Stop sending and receiving; a send in progress is recovered at the next start."""
        tasks = [*self._tasks, *self._sends]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.webhooks is not None:
            await self.webhooks.stop()

    def _store_of(self) -> SmsStore:
        if self._records is None:
            raise SmsError("not-started", "the SMS service is not running")
        return self._records

    async def submit(self, to: str, text: str, channel: str | None = None) -> dict[str, Any]:
        """Validate and queue an SMS; returns the stored record (status ``queued``)."""
        number = check_number(to)
        parts = count_parts(text, self._settings.max_parts)
        if channel is not None and channel not in self._modems:
            raise self._unknown(channel)
        if self._compliance is not None:
            verdict = await asyncio.to_thread(
                self._compliance.check, number, None, None, Attempt("sms")
            )
            if not verdict.allowed:
                raise SmsError(verdict.error_id, verdict.message)
        now = time.time()
        record = {"id": time_ordered_id(), "direction": "out", "to": number, "text": text,
                  "parts": parts, "requested_channel": channel, "channel": channel,
                  "iccid": "", "sim_number": "", "status": "queued", "reason": "", "refs": [],
                  "attempts": 0, "created": now, "updated": now, "not_before": 0}  # fmt: skip
        await asyncio.to_thread(self._store_of().put, record)
        log.info("sms queued", extra={"sms_id": record["id"], "parts": parts, "channel": channel})
        self._wake.set()
        return record

    async def get(self, sms_id: str) -> dict[str, Any]:
        """One SMS by id; SmsError ``unknown-sms``."""
        record = await asyncio.to_thread(self._store_of().get, sms_id)
        if record is None:
            raise SmsError("unknown-sms", f"no SMS {sms_id!r}")
        return record

    async def page(
        self, direction: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Stored SMS of one direction, newest first."""
        return await asyncio.to_thread(self._store_of().page, direction, limit, cursor)

    def _unknown(self, channel: str) -> SmsError:
        return SmsError("unknown-channel", f"no GSM channel {channel!r}", {"known": self.channels})

    async def _sender(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = await self._dispatch()
            except Exception:
                log.exception("sms sender turn failed; trying again")
                wait = IDLE_S
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _dispatch(self) -> float:
        """Start every send that may start now; returns how long until the next could."""
        records = self._store_of()
        now, wait = time.time(), IDLE_S
        for record in await asyncio.to_thread(records.unfinished):
            if record["id"] in self._sending:
                continue
            gone = expired(record, self._rule, now)
            if gone is not None:
                await asyncio.to_thread(records.put, gone)
                log.warning("sms expired", extra={"sms_id": record["id"]})
                continue
            if record["not_before"] > now:
                wait = min(wait, record["not_before"] - now)
                continue
            chosen, until = self._choose(record)
            if chosen is None:
                wait = min(wait, until)
                continue
            self._start_send(record, *chosen)
        return max(wait, 0.05)

    def _choose(self, record: dict[str, Any]) -> tuple[tuple[str, str, str] | None, float]:
        """(channel, iccid, SIM number) to send on now, or None and the seconds to wait."""
        names = [record["requested_channel"]] if record["requested_channel"] else self.channels
        wait = IDLE_S
        for name in names:
            sim = self._sim.sms_sim(name)
            if name in self._busy or self._modems[name].state != "ready" or sim is None:
                continue
            bucket = self._buckets.setdefault(
                sim.iccid, TokenBucket(self._settings.rate_per_minute / 60, self._settings.burst)
            )
            until = bucket.take(record["parts"], time.monotonic())
            if until == 0:
                return (name, sim.iccid, sim.number), 0.0
            wait = min(wait, until)
        return None, wait

    def _start_send(self, record: dict[str, Any], channel: str, iccid: str, number: str) -> None:
        self._sending.add(record["id"])
        self._busy.add(channel)
        task = asyncio.create_task(self._send(record, channel, iccid, number))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, record: dict[str, Any], channel: str, iccid: str, number: str) -> None:
        records = self._store_of()
        try:
            record = sending(record, channel, iccid, number, time.time())
            await asyncio.to_thread(records.put, record)
            try:
                async with asyncio.timeout(SEND_TIMEOUT_PER_PART_S * record["parts"]):
                    refs = await self._modems[channel].send_sms(record["to"], record["text"])
            except (ModemError, TimeoutError) as err:
                reason, retry = describe(err), transient(err)
                record = attempt_failed(record, reason, retry, self._rule, time.time())
                log.warning("sms attempt failed", extra={"sms_id": record["id"], "channel": channel,
                            "status": record["status"], "reason": reason})  # fmt: skip
            else:
                record = sent(record, refs, time.time())
                log.info("sms sent", extra={"sms_id": record["id"], "refs": refs})
            await asyncio.to_thread(records.put, record)
        finally:
            self._sending.discard(record["id"])
            self._busy.discard(channel)
            self._wake.set()

    async def _receiver(self, channel: str, stream: EventStream) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                event = await stream.get(within=60.0)
                if isinstance(event, SmsReceived):
                    await self._keep(channel, event)

    async def _keep(self, channel: str, message: SmsReceived) -> None:
        try:
            await self._received(channel, message)
        except Exception:
            lost = {"channel": channel, "from": message.number, "text": message.text}
            log.exception("cannot store a received SMS; its content is in this log", extra=lost)

    async def _received(self, channel: str, message: SmsReceived) -> None:
        sim = self._sim.states.get(channel)
        identity = sim.sim if sim is not None else None
        now = time.time()
        record = {"id": time_ordered_id(), "direction": "in", "from": message.number,
                  "text": message.text, "parts": message.parts, "channel": channel,
                  "iccid": identity.iccid if identity else "",
                  "sim_number": identity.number if identity else "", "status": "received",
                  "timestamp": message.timestamp.isoformat() if message.timestamp else None,
                  "created": now, "updated": now}  # fmt: skip
        await asyncio.to_thread(self._store_of().put, record)
        log.info("sms received", extra={"sms_id": record["id"], "channel": channel})
        if self.webhooks is not None:
            self.webhooks.notify("sms.received", _webhook_data(record))

    async def ussd(self, channel: str, code: str) -> dict[str, Any]:
        """Run a USSD code on a channel and return the network's reply (bounded wait)."""
        code = check_ussd(code)
        modem = self._modems.get(channel)
        if modem is None:
            raise self._unknown(channel)
        if modem.state != "ready":
            raise SmsError("channel-not-ready", f"the modem of {channel} is {modem.state}")
        if channel in self._ussd_busy:
            raise SmsError("ussd-busy", f"a USSD request is already running on {channel}")
        self._ussd_busy.add(channel)
        within = self._settings.ussd_timeout_s
        try:
            async with asyncio.timeout(within + 5):
                reply = await modem.ussd(code, within=within)
        except (CommandTimeout, TimeoutError):
            raise SmsError("ussd-timeout", f"no USSD reply within {within:.0f} s") from None
        except ModemError as err:
            raise SmsError("modem-error", f"the modem refused the USSD request: {err}") from err
        finally:
            self._ussd_busy.discard(channel)
        state = self._sim.states.get(channel)
        iccid = state.sim.iccid if state is not None and state.sim is not None else ""
        return {"channel": channel, "iccid": iccid, "code": code, "reply": reply}


def _webhook_data(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "channel", "iccid", "sim_number", "from", "text", "timestamp", "parts")
    return {"sms_id" if k == "id" else k: record[k] for k in keys}
