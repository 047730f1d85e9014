"""IvrService: runs flow sessions for the calls the media workers hand over.

Each IVR call gets a task that owns its ``Session`` (appliance.ivr.engine): worker events
(digit, played, recorded) and webhook answers arrive on the call's queue in order; the
task feeds them to the session, waits for the session's deadline otherwise, and carries
out the actions: speech is rendered by the TTS driver before ``ivr-play`` goes to the
worker, lookups and recording deliveries run as their own tasks, variables are handed to
``publish`` (the call's CDR and call events). A call whose worker exits, or that waits
``MAX_IDLE_S`` for an event that never comes, is dropped (and hung up if possible).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appliance.ivr.actions import (
    Action,
    AskWebhook,
    Deliver,
    HangUp,
    PlayAudio,
    Publish,
    StartRecording,
    StopAudio,
    StopRecording,
    Transfer,
)
from appliance.ivr.engine import Session
from appliance.ivr.hooks import FlowHooks
from appliance.ivr.store import FlowRegistry
from drivers.media.protocol import (
    Command,
    IvrEvent,
    IvrHangup,
    IvrPlay,
    IvrRecord,
    IvrRecordStop,
    IvrStop,
    IvrTransfer,
    Prompt,
)
from drivers.media.tts import EspeakTts, TtsError

log = logging.getLogger(__name__)

MAX_IDLE_S = 600.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class Worker(Protocol):
    """What the service needs of a media worker."""

    def send(self, command: Command) -> bool: ...


@dataclass
class LiveCall:
    """An IVR call in progress: its worker, session and event queue."""

    call_id: str
    worker: Worker
    session: Session
    events: asyncio.Queue[tuple[str, Any] | None] = field(default_factory=asyncio.Queue)
    recordings: int = 0
    last_recording: Path | None = None
    task: asyncio.Task[None] | None = None


class IvrService:
    """Flow sessions of the calls in IVR."""

    def __init__(
        self,
        registry: FlowRegistry,
        tts: EspeakTts,
        hooks: FlowHooks,
        record_dir: Path,
        prompts: dict[str, Prompt],
        publish: Callable[[str, dict[str, str]], None],
        zone: str = "UTC",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._zone = zone
        self.registry = registry
        self._tts = tts
        self._hooks = hooks
        self._record_dir = record_dir
        self._prompts = prompts
        self._publish = publish
        self._clock = clock
        self.calls: dict[str, LiveCall] = {}
        self.queues: Callable[[], Collection[str]] = tuple
        self.handover: Callable[[str, str, dict[str, str]], None] = lambda _to, _caller, _v: None
        self._tasks: set[asyncio.Task[Any]] = set()

    def on_event(self, worker: Worker, event: IvrEvent) -> None:
        """An ``ivr`` event of a media worker."""
        state, call_id = event.state, event.id
        if state == "start":
            self._start(worker, call_id, event.flow, event.caller)
            return
        call = self.calls.get(call_id)
        if call is None:
            return
        if state == "ended":
            self._drop(call)
        elif state in ("digit", "played", "recorded"):
            call.events.put_nowait((state, event))

    def worker_lost(self, worker: Worker) -> None:
        """The worker exited with its calls."""
        for call in [c for c in self.calls.values() if c.worker is worker]:
            self._drop(call)

    async def stop(self) -> None:
        """End every session task and close the webhook client."""
        for call in list(self.calls.values()):
            self._drop(call)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._hooks.close()

    def _start(self, worker: Worker, call_id: str, flow: str, caller: str) -> None:
        current = self.registry.get(flow)
        if current is None:
            log.warning("ivr call for unknown flow %s hung up", flow)
            worker.send(IvrHangup(call_id))
            return
        session = Session(flow, current.flow, current.version, caller, self._clock,
                          self.registry.flow, self._zone, self.queues())  # fmt: skip
        call = self.calls[call_id] = LiveCall(call_id, worker, session)
        log.info("ivr call entered flow", extra={"flow": flow, "version": current.version,
                                                 "call_id": call_id})  # fmt: skip
        call.task = self._spawn(self._run(call))

    def _drop(self, call: LiveCall) -> None:
        self.calls.pop(call.call_id, None)
        call.events.put_nowait(None)

    def _spawn(self, job: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, call: LiveCall) -> None:
        session = call.session
        try:
            await self._act(call, session.start())
            while session.phase != "done":
                deadline = session.deadline or self._clock() + MAX_IDLE_S
                try:
                    item = await asyncio.wait_for(call.events.get(), deadline - self._clock())
                except TimeoutError:
                    actions = session.tick() if session.deadline else _give_up()
                else:
                    if item is None:
                        return
                    actions = self._feed(call, *item)
                await self._act(call, actions)
        except Exception:
            log.exception("ivr session failed", extra={"call_id": call.call_id})
            call.worker.send(IvrHangup(call.call_id))

    def _feed(self, call: LiveCall, kind: str, event: Any) -> list[Action]:
        if kind == "digit":
            return call.session.digit(event.digit)
        if kind == "played":
            return call.session.played()
        if kind == "answer":
            return call.session.answered(event)
        call.last_recording = Path(event.path)
        return call.session.recorded(event.seconds)

    async def _act(self, call: LiveCall, actions: list[Action]) -> None:
        for action in actions:
            await self._one(call, action)

    async def _one(self, call: LiveCall, action: Action) -> None:
        send = call.worker.send
        if isinstance(action, PlayAudio):
            prompt = await self._prompt(call, action)
            if prompt is not None:
                send(IvrPlay(call.call_id, prompt))
        elif isinstance(action, StopAudio):
            send(IvrStop(call.call_id))
        elif isinstance(action, StartRecording):
            call.recordings += 1
            name = f"{_UNSAFE.sub('_', call.call_id)[:80]}-{call.recordings}.wav"
            send(IvrRecord(call.call_id, str(self._record_dir / name), action.max_s,
                           action.silence_s))  # fmt: skip
        elif isinstance(action, StopRecording):
            send(IvrRecordStop(call.call_id))
        elif isinstance(action, AskWebhook):
            self._spawn(self._ask(call, action))
        elif isinstance(action, Deliver) and call.last_recording is not None:
            self._spawn(self._deliver(action, call.last_recording))
        elif isinstance(action, Transfer):
            self.handover(action.to, call.session.caller, dict(call.session.variables))
            send(IvrTransfer(call.call_id, action.to))
        elif isinstance(action, HangUp):
            send(IvrHangup(call.call_id))
        elif isinstance(action, Publish):
            self._publish(call.call_id, action.variables)

    async def _prompt(self, call: LiveCall, action: PlayAudio) -> Prompt | None:
        if action.prompt:
            return self._prompts[action.prompt]
        if action.file:
            return Prompt(file=action.file)
        try:
            path = await self._tts.render(action.say or "", action.voice or action.language)
        except TtsError as err:
            log.error("ivr prompt not spoken: %s", err, extra={"call_id": call.call_id})
            call.events.put_nowait(("played", {}))
            return None
        return Prompt(file=str(path))

    async def _deliver(self, action: Deliver, path: Path) -> None:
        try:
            wav = await asyncio.to_thread(path.read_bytes)
        except OSError as err:
            log.error("ivr recording missing: %s", err)
            return
        await self._hooks.deliver(action.url, action.body, wav)

    async def _ask(self, call: LiveCall, action: AskWebhook) -> None:
        answer = await self._hooks.ask(action.url, action.body, action.timeout_s)
        with contextlib.suppress(asyncio.QueueFull):
            call.events.put_nowait(("answer", answer))


def _give_up() -> list[Action]:
    return [HangUp()]
