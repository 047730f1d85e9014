"""Webhooks: signed, ordered, retried with backoff, dropped after the last attempt."""

from __future__ import annotations

import asyncio
import json

import httpx

from appliance.pbx.webhooks import WebhookService, signature

SECRET = "s" * 20


async def _drain(service: WebhookService, expected: int) -> None:
    for _ in range(200):
        if service.delivered + service.dropped >= expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("webhooks not delivered in time")


async def test_notifications_are_signed_and_retried_until_accepted() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503 if len(seen) < 3 else 204)

    transport = httpx.MockTransport(answer)
    service = WebhookService(
        "http://crm.example/hook", SECRET, "site-a", transport=transport, first_backoff_s=0.01
    )
    service.start()
    try:
        service.notify("call.started", {"call_id": "c1"})
        service.notify("call.ended", {"call_id": "c1", "disposition": "answered"})
        await _drain(service, 2)
    finally:
        await service.stop()
    assert service.delivered == 2
    assert len(seen) == 4
    first = seen[0]
    stamp = first.headers["X-Callmesh-Timestamp"]
    assert first.headers["X-Callmesh-Signature"] == signature(SECRET, stamp, first.content)
    bodies = [json.loads(r.content) for r in seen]
    assert [b["event"] for b in bodies] == ["call.started"] * 3 + ["call.ended"]
    assert bodies[-1]["site_id"] == "site-a"
    assert bodies[-1]["data"]["disposition"] == "answered"


async def test_unreachable_receiver_drops_after_max_attempts() -> None:
    attempts = 0

    def fail(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("refused", request=request)

    service = WebhookService("http://crm.example/hook", SECRET, "site-a", max_attempts=3,
                             transport=httpx.MockTransport(fail), first_backoff_s=0.01)  # fmt: skip
    service.start()
    try:
        service.notify("call.answered", {"call_id": "c9"})
        await _drain(service, 1)
    finally:
        await service.stop()
    assert (attempts, service.dropped, service.delivered) == (3, 1, 0)
