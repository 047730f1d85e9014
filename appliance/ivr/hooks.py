"""The webhooks a flow calls: lookups (answer awaited) and recordings handed over (voice orders).

A lookup POSTs ``{"flow", "caller", "node", "variables"}`` as JSON and waits at most the
node's ``timeout_s``. Anything but a 2xx answer whose body is a JSON object (a timeout,
a refused connection, a 5xx, HTML, a JSON list) is ``None``: the flow takes its
``fallback`` branch. A recording is POSTed once as JSON: the engine's metadata (flow,
version, caller, node, seconds, variables) plus ``"audio": {"content_type":
"audio/wav", "base64": ...}``; a failed delivery is logged, never retried, and the WAV
stays in the IVR recordings directory.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024
DELIVER_TIMEOUT_S = 10.0


class FlowHooks:
    """HTTP client for lookup and record nodes (transport injectable for tests)."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport
        self._pool: httpx.AsyncClient | None = None

    @property
    def _client(self) -> httpx.AsyncClient:
        """The connection pool, opened on first use (again after ``close``)."""
        if self._pool is None:
            self._pool = httpx.AsyncClient(transport=self._transport)
        return self._pool

    async def ask(self, url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """The JSON object the lookup answered, or None (the fallback)."""
        try:
            response = await self._client.post(url, json=body, timeout=timeout_s)
        except httpx.HTTPError as err:
            log.warning("ivr lookup failed", extra={"url": url, "error": repr(err)})
            return None
        if not response.is_success or len(response.content) > MAX_ANSWER_BYTES:
            log.warning("ivr lookup refused", extra={"url": url, "status": response.status_code})
            return None
        try:
            answer = json.loads(response.content)
        except ValueError:
            log.warning("ivr lookup answered no JSON", extra={"url": url})
            return None
        return answer if isinstance(answer, dict) else None

    async def deliver(self, url: str, body: dict[str, Any], wav: bytes) -> bool:
        """POST a recording and its metadata; whether the receiver took it (2xx)."""
        audio = {"content_type": "audio/wav", "base64": base64.b64encode(wav).decode()}
        try:
            response = await self._client.post(
                url, json={**body, "audio": audio}, timeout=DELIVER_TIMEOUT_S
            )
        except httpx.HTTPError as err:
            log.error("ivr recording not delivered", extra={"url": url, "error": repr(err)})
            return False
        if not response.is_success:
            log.error("ivr recording refused", extra={"url": url, "status": response.status_code})
        return response.is_success

    async def close(self) -> None:
        """Close the connection pool."""
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
