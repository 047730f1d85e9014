"""CTI events as signed webhooks: chosen by globs, on the PBX's notifier, in order."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from appliance import contact
from appliance.contact.cti import CtiStream
from appliance.contact.cti_webhooks import EVENTS, CtiWebhooks
from appliance.contact.settings import ContactSettings
from appliance.pbx.webhooks import WebhookService, signature

SECRET = "s" * 20


async def _deliveries(
    globs: tuple[str, ...], expected: int, fail_first: int = 0
) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503 if len(seen) <= fail_first else 204)

    transport = httpx.MockTransport(answer)
    notifier = WebhookService("http://dispatch.example/hook", SECRET, "site-a",
                              transport=transport, first_backoff_s=0.01)  # fmt: skip
    stream = CtiStream()
    stream.listeners.append(CtiWebhooks(notifier, globs).on_event)
    notifier.start()
    try:
        stream.publish("call.queued", call_id="c1", caller="+4930111", variables={"k": "v"})
        notifier.notify("call.answered", {"call_id": "c1"})
        stream.publish("agent.state", agent="1003", state="ringing")
        stream.publish("call.offered", call_id="c1", agent="1003")
        stream.publish("supervisor.refused", supervisor="1002", agent="1003")
        for _ in range(500):
            if notifier.delivered + notifier.dropped >= expected:
                break
            await asyncio.sleep(0.01)
    finally:
        await notifier.stop()
    return seen


async def test_chosen_cti_events_are_signed_ordered_and_keyed_by_their_sequence() -> None:
    seen = await _deliveries(("call.*",), 3, fail_first=1)
    bodies = [json.loads(r.content) for r in seen]
    assert [b["event"] for b in bodies] == [
        "contact.call.queued", "contact.call.queued", "call.answered", "contact.call.offered"
    ]  # fmt: skip
    queued = bodies[0]
    assert (queued["site_id"], queued["call_id"], queued["seq"]) == ("site-a", "c1", 1)
    assert queued["data"]["variables"] == {"k": "v"}
    keys = [r.headers["X-Callmesh-Event-Id"] for r in seen if r is not seen[2]]
    assert keys == [f"{queued['run']}-1", f"{queued['run']}-1", f"{queued['run']}-3"]
    assert "X-Callmesh-Event-Id" not in seen[2].headers
    for request in seen:
        stamp = request.headers["X-Callmesh-Timestamp"]
        assert request.headers["X-Callmesh-Signature"] == signature(SECRET, stamp, request.content)


async def test_every_family_goes_out_by_default() -> None:
    seen = await _deliveries(ContactSettings().webhook_events, 5)
    names = [json.loads(r.content)["event"] for r in seen]
    assert names == ["contact.call.queued", "call.answered", "contact.agent.state",
                     "contact.call.offered", "contact.supervisor.refused"]  # fmt: skip


class Recorder:
    def __init__(self) -> None:
        self.keys: list[str | None] = []

    def publish(self, event: str, fields: dict[str, Any], event_id: str | None = None) -> None:
        self.keys.append(event_id)


def test_a_restarted_stream_keys_its_events_apart_from_the_last_run() -> None:
    recorder = Recorder()
    for _ in range(2):
        stream = CtiStream()
        stream.listeners.append(CtiWebhooks(recorder, ("agent.*",)).on_event)
        stream.publish("agent.state", agent="1003", state="available")
    first, second = recorder.keys
    assert first is not None
    assert second is not None
    assert first.endswith("-1")
    assert second.endswith("-1")
    assert first != second


def test_globs_are_checked_against_the_cti_events() -> None:
    settings = ContactSettings.model_validate({"webhook_events": ["call.*", "agent.state"]})
    assert settings.webhook_events == ("call.*", "agent.state")
    with pytest.raises(ValidationError, match=r"contact.webhook_events: 'call.queud' match no"):
        ContactSettings.model_validate({"webhook_events": ["call.queud", "agent.*"]})
    assert ContactSettings.model_validate({"webhook_events": []}).webhook_events == ()
    assert ContactSettings.model_validate({"webhook_events": ["*"]}).webhook_events == ("*",)


def test_every_event_the_slice_publishes_can_be_chosen() -> None:
    source = "".join(p.read_text() for p in Path(contact.__file__).parent.glob("*.py"))
    named = set(re.findall(r'"((?:call|agent|supervisor)\.[a-z-]+)"', source))
    assert named - {"call.*"} <= set(EVENTS), named - set(EVENTS)
    assert {f"call.{o}" for o in ("abandoned", "overflowed", "timeout", "interrupted")} <= set(
        EVENTS
    )
