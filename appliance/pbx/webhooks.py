"""Webhooks: call started, answered and ended, POSTed as signed JSON, retried with backoff.

Body: ``{"event": "call.started"|"call.answered"|"call.variables"|"call.ended", "site_id",
"call_id", "at", "data"}`` where ``data`` is the open-call record (started, answered;
``variables``: an IVR flow set screen-pop variables, in ``data.variables``) or the CDR
document (ended). Headers: ``X-Callmesh-Timestamp`` (epoch seconds) and
``X-Callmesh-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the
secret>``. Deliveries are sent one at a time in order; a failed one (network error or
non-2xx) is retried after 0.5 s doubling to 30 s (±20 % jitter) up to ``max_attempts``,
then dropped with an error log. The queue is bounded; when it is full the oldest waiting
notification is dropped. Webhooks are best-effort screen-pop signals; the durable record
of a call is its CDR. Other slices queue their own documents with ``publish`` (the
contact centre's CTI events), which share the one queue, order and retries, and may carry
an ``X-Callmesh-Event-Id`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

QUEUE_SIZE = 10000
MAX_BACKOFF_S = 30.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True)
class _Notification:
    event: str
    doc: dict[str, Any]
    event_id: str | None


class WebhookService:
    """Queues call notifications and delivers them to one URL."""

    def __init__(
        self,
        url: str,
        secret: str,
        site_id: str,
        max_attempts: int = 6,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        first_backoff_s: float = 0.5,
    ) -> None:
        self._url = url
        self._secret = secret
        self._site_id = site_id
        self._max_attempts = max_attempts
        self._first_backoff = first_backoff_s
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._queue: asyncio.Queue[_Notification] = asyncio.Queue(QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dropped = 0

    def start(self) -> None:
        """Begin delivering."""
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        """Stop delivering; undelivered notifications are dropped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()

    def notify(self, event: str, data: dict[str, Any]) -> None:
        """Queue one call notification (never blocks)."""
        self.publish(event, {"call_id": data.get("call_id"), "at": time.time(), "data": data})

    def publish(self, event: str, fields: dict[str, Any], event_id: str | None = None) -> None:
        """Queue ``{"event", "site_id", **fields}`` (never blocks); ``event_id`` as a header."""
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            log.warning("webhook queue full: dropped the oldest notification")
        doc = {"event": event, "site_id": self._site_id, **fields}
        self._queue.put_nowait(_Notification(event, doc, event_id))

    async def _run(self) -> None:
        while True:
            await self._deliver(await self._queue.get())

    async def _deliver(self, item: _Notification) -> None:
        body = json.dumps(item.doc, separators=(",", ":"), default=str).encode()
        delay = self._first_backoff
        for attempt in range(1, self._max_attempts + 1):
            if await self._post(body, item.event_id):
                self.delivered += 1
                return
            if attempt < self._max_attempts:
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, MAX_BACKOFF_S)
        self.dropped += 1
        log.error("webhook %s for call %s dropped after %d attempts", item.event,
                  item.doc.get("call_id"), self._max_attempts)  # fmt: skip

    async def _post(self, body: bytes, event_id: str | None) -> bool:
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Callmesh-Timestamp": stamp,
            "X-Callmesh-Signature": signature(self._secret, stamp, body),
        }
        if event_id is not None:
            headers["X-Callmesh-Event-Id"] = event_id
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as err:
            log.warning("webhook delivery failed: %s", err)
            return False
        if response.is_success:
            return True
        log.warning("webhook answered %d", response.status_code)
        return False
