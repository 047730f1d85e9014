"""IvrService with a fake media worker: sessions per call, versions kept, workers lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from appliance.ivr.hooks import FlowHooks
from appliance.ivr.service import IvrService
from appliance.ivr.store import FlowRegistry, FlowStore
from appliance.ivr.validate import Known, parse_flow
from appliance.store import Store
from drivers.media.protocol import Command, IvrEvent, Prompt
from drivers.media.tts import EspeakTts
from tests.media_wire import wire

PROMPTS = {"menu": Prompt(tone_hz=700, seconds=1.0)}


class FakeWorker:
    """Records the commands a media worker would execute."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, command: Command) -> bool:
        self.sent.append(wire(command))
        return True

    def commands(self, call_id: str) -> list[str]:
        return [c["cmd"] for c in self.sent if c["id"] == call_id]


def known(flows: set[str]) -> Known:
    return Known(extensions={"1002", "1003"}, ring_groups=set(), flows=flows, prompts={"menu"})


def desk(number: str) -> dict[str, Any]:
    return {"start": "menu", "nodes": {
        "menu": {"type": "menu", "prompt": "menu", "options": {"1": "desk"}},
        "desk": {"type": "extension", "number": number},
    }}  # fmt: skip


def service(
    tmp_path: Path, store: Store, published: list[tuple[str, dict[str, str]]]
) -> IvrService:
    registry = FlowRegistry({"desk": parse_flow("desk", desk("1003"), known({"desk"}))}, known)
    registry.attach(FlowStore(store))
    tts = EspeakTts(tmp_path / "tts")
    return IvrService(registry, tts, FlowHooks(), tmp_path / "rec", PROMPTS,
                      lambda call_id, v: published.append((call_id, v)))  # fmt: skip


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_call_keeps_its_version_while_the_flow_is_replaced(tmp_path: Path) -> None:
    async def run() -> FakeWorker:
        store = Store.open(tmp_path / "store", 16)
        ivr = service(tmp_path, store, [])
        worker = FakeWorker()
        ivr.on_event(worker, IvrEvent("old", "start", flow="desk", caller="1001"))
        await settle()
        ivr.registry.put("desk", desk("1002"))
        ivr.on_event(worker, IvrEvent("new", "start", flow="desk", caller="1001"))
        for call_id in ("old", "new"):
            ivr.on_event(worker, IvrEvent(call_id, "digit", digit="1"))
        await settle()
        await ivr.stop()
        store.close()
        return worker

    worker = asyncio.run(run())
    transfers = {c["id"]: c["to"] for c in worker.sent if c["cmd"] == "ivr-transfer"}
    assert transfers == {"old": "1003", "new": "1002"}
    assert worker.commands("old")[0] == "ivr-play"
    assert worker.sent[0]["prompt"]["tone_hz"] == 700


def test_an_unknown_flow_is_hung_up_and_a_lost_worker_ends_its_sessions(tmp_path: Path) -> None:
    async def run() -> tuple[FakeWorker, int, int]:
        store = Store.open(tmp_path / "store", 16)
        ivr = service(tmp_path, store, [])
        worker = FakeWorker()
        ivr.on_event(worker, IvrEvent("x", "start", flow="nope"))
        ivr.on_event(worker, IvrEvent("y", "start", flow="desk"))
        await settle()
        before = len(ivr.calls)
        ivr.worker_lost(worker)
        await settle()
        after = len(ivr.calls)
        await ivr.stop()
        store.close()
        return worker, before, after

    worker, before, after = asyncio.run(run())
    assert worker.commands("x") == ["ivr-hangup"]
    assert (before, after) == (1, 0)
