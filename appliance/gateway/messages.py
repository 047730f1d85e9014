"""SMS and USSD through the gateway's modems: a durable send queue, the inbox, balance checks.

Theory of operation. ``submit`` stores an outgoing SMS (``sms:out:<id>`` in the state
store, fsync'd) as ``queued`` and wakes the sender loop, which hands each message to a
channel: the one asked for, else any registered channel whose SIM still has room under
``gateway.sms.per_sim_per_minute`` (a sliding minute per ICCID, so one SIM is never
flooded). A send runs on its own task (one per channel at a time) and ends ``sent``
(with the modem's message references, channel and ICCID) or, after ``max_attempts``,
``failed`` with the driver's error. Messages still ``queued`` or ``sending`` when the
appliance stopped are queued again at start (a message cut off while sending may go out
twice; SMS has no idempotency). Delivery reports from the network (SMS-STATUS-REPORT)
are not requested.

Incoming SMS (the driver's ``SmsReceived``, parts joined) are stored under
``sms:in:<time>-<id>`` with channel and ICCID, the newest ``keep_inbox`` kept, and passed
to ``on_received`` (the PBX's signed webhooks send ``sms.received``). USSD runs on demand
on one channel (``ussd``), e.g. a balance check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from appliance.gateway.settings import SmsSettings
from appliance.sim import SimService
from appliance.store import StateStore, Store
from drivers.modem import ModemDriver, SmsReceived
from drivers.modem.errors import ModemError

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 120.0
USSD_TIMEOUT_S = 30.0
RETRY_S = 5.0
_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")


class MessagingError(Exception):
    """A request the service refuses: ``status``, stable ``error_id``, message for people."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message


class Channel(Protocol):
    """A gateway channel as messaging needs it."""

    channel: str
    driver: ModemDriver


class MessagingService:
    """Owns the SMS queue and inbox; a lifecycle component of the gateway."""

    name = "messages"

    def __init__(
        self,
        settings: SmsSettings,
        channels: Sequence[Channel],
        sim: SimService,
        store: Callable[[], Store],
    ) -> None:
        self._settings = settings
        self._channels = {c.channel: c for c in channels}
        self._sim = sim
        self._store = store
        self._state: StateStore | None = None
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self._sending: set[str] = set()
        self._sent_at: dict[str, deque[float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_received: Callable[[str, dict[str, Any]], None] | None = None

    async def start(self) -> None:
        """Queue again what was waiting, watch every modem for SMS, start sending."""
        self._state = StateStore(self._store())
        for key, doc in self._state.items("sms:out:"):
            if doc.get("state") in ("queued", "sending"):
                self._queue.append(key.rsplit(":", 1)[1])
        self._spawn(self._sender())
        for channel in self._channels.values():
            self._spawn(self._watch(channel))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def submit(self, to: str, text: str, channel: str | None = None) -> dict[str, Any]:
        """Queue an SMS; returns its document (state ``queued``)."""
        number = re.sub(r"[\s().-]", "", to)
        if not _NUMBER.match(number):
            raise MessagingError(422, "bad-destination", f"{to!r} is not a phone number")
        if not text:
            raise MessagingError(422, "empty-text", "an SMS needs text")
        if channel is not None and channel not in self._channels:
            raise MessagingError(404, "unknown-channel", f"no GSM channel {channel!r}")
        doc: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "to": number,
            "text": text,
            "channel": channel,
            "state": "queued",
            "attempts": 0,
            "created": time.time(),
            "error": None,
            "refs": [],
            "iccid": None,
            "sent": None,
        }
        self._put(doc)
        self._queue.append(doc["id"])
        self._wake.set()
        return doc

    def get(self, sms_id: str) -> dict[str, Any]:
        """An outgoing SMS by id."""
        doc = self._state_store().get(f"sms:out:{sms_id}")
        if doc is None:
            raise MessagingError(404, "sms-not-found", f"no SMS {sms_id}")
        return dict(doc)

    def inbox(self, limit: int = 100) -> list[dict[str, Any]]:
        """Received SMS, newest first."""
        items = [doc for _, doc in self._state_store().items("sms:in:")]
        return list(reversed(items))[:limit]

    async def ussd(self, channel: str, code: str) -> str:
        """Run a USSD code on one channel and return the network's reply."""
        found = self._channels.get(channel)
        if found is None:
            raise MessagingError(404, "unknown-channel", f"no GSM channel {channel!r}")
        if not re.fullmatch(r"[0-9*#+]{2,40}", code):
            raise MessagingError(422, "bad-ussd-code", f"{code!r} is not a USSD code")
        try:
            return await found.driver.ussd(code, within=USSD_TIMEOUT_S)
        except (ModemError, TimeoutError) as err:
            raise MessagingError(502, "ussd-failed", f"{channel}: {err}") from None

    # -- sending -------------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            self._wake.clear()
            self._dispatch()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    def _dispatch(self) -> None:
        """Start a send for every queued message that has a channel free now."""
        waiting: deque[str] = deque()
        while self._queue:
            sms_id = self._queue.popleft()
            doc = self._state_store().get(f"sms:out:{sms_id}")
            if doc is None or doc["state"] not in ("queued", "sending"):
                continue
            channel = self._channel_for(doc)
            if channel is None:
                waiting.append(sms_id)
                continue
            self._sending.add(channel)
            self._spawn(self._send(channel, doc))
        self._queue = waiting

    def _channel_for(self, doc: dict[str, Any]) -> str | None:
        names = [doc["channel"]] if doc.get("channel") else list(self._channels)
        now = time.monotonic()
        for name in names:
            state = self._sim.states.get(name)
            if name in self._sending or state is None or not state.registered or not state.sim:
                continue
            recent = self._sent_at.setdefault(state.sim.iccid, deque())
            while recent and now - recent[0] > 60:
                recent.popleft()
            if len(recent) < self._settings.per_sim_per_minute:
                return name
        return None

    async def _send(self, channel: str, doc: dict[str, Any]) -> None:
        state = self._sim.states.get(channel)
        iccid = state.sim.iccid if state is not None and state.sim is not None else None
        if iccid is not None:
            self._sent_at.setdefault(iccid, deque()).append(time.monotonic())
        doc.update(state="sending", channel=doc.get("channel") or channel, iccid=iccid)
        doc["attempts"] += 1
        self._put(doc)
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                refs = await self._channels[channel].driver.send_sms(doc["to"], doc["text"])
            doc.update(state="sent", refs=refs, sent=time.time(), error=None, channel=channel)
        except (ModemError, TimeoutError, ValueError) as err:
            log.warning("sms send failed", extra={"channel": channel, "error": str(err)})
            doc["error"] = str(err) or type(err).__name__
            retry = doc["attempts"] < self._settings.max_attempts and not isinstance(
                err, ValueError
            )
            doc["state"] = "queued" if retry else "failed"
        finally:
            self._sending.discard(channel)
        self._put(doc)
        if doc["state"] == "queued":
            await asyncio.sleep(RETRY_S)
            self._queue.append(doc["id"])
        self._wake.set()

    # -- receiving -----------------------------------------------------------------------

    async def _watch(self, channel: Channel) -> None:
        events = channel.driver.subscribe()
        while True:
            with contextlib.suppress(TimeoutError):
                event = await events.get(within=60.0)
                if isinstance(event, SmsReceived):
                    self._received(channel.channel, event)

    def _received(self, channel: str, sms: SmsReceived) -> None:
        state = self._sim.states.get(channel)
        doc = {
            "id": uuid.uuid4().hex,
            "channel": channel,
            "from": sms.number,
            "text": sms.text,
            "iccid": state.sim.iccid if state is not None and state.sim else None,
            "sent": sms.timestamp.isoformat() if sms.timestamp else None,
            "received": time.time(),
            "parts": sms.parts,
        }
        store = self._state_store()
        store.put(f"sms:in:{time.time_ns():020d}-{doc['id']}", doc)
        keys = [key for key, _ in store.items("sms:in:")]
        for key in keys[: max(0, len(keys) - self._settings.keep_inbox)]:
            store.delete(key)
        log.info("sms received", extra={"channel": channel, "from": sms.number})
        if self.on_received is not None:
            self.on_received("sms.received", doc)

    # -- helpers -------------------------------------------------------------------------

    def _put(self, doc: dict[str, Any]) -> None:
        self._state_store().put(f"sms:out:{doc['id']}", doc)

    def _state_store(self) -> StateStore:
        if self._state is None:
            raise MessagingError(503, "gateway-not-started", "the gateway is not started")
        return self._state

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
