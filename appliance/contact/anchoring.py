"""Anchors: an agent's call that no media worker holds is moved onto one, on demand.

Theory of operation: an agent's direct extension call (1003 dialled 1001) or outbound
call goes phone, Kamailio, phone (rtpengine relays its audio): no worker bridges it, so a
supervisor or a third party has nothing to join. When supervision or a three-way needs
it, ``anchor`` picks a worker with room for both legs and a supervisor, tells Kamailio
that the call is being taken over (the ``takeover`` table: the first end's BYE of the
old dialog is answered there, not relayed, so it cannot end the other end before its
own Replaces arrives), and has the worker dial both ends with ``Replaces`` of the
dialog each has (``drivers.media.anchor``). The phones swap calls (a short media
switch) and BYE the old dialog, whose CDR ends ``answered`` with the reason
``replaced``; the new legs carry the call's ``conversation_id``. Once the worker
reports ``bridged`` the call is held there like a queue call (``held``), and the
waiting session goes on (``on_bridged``). ``ended`` (either end hung up, a phone
refused the Replaces, the worker is full) drops the anchor (``on_ended``).

An anchor is ``pending`` until bridged; one agent has at most one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from appliance.contact.supervision import Held, SupervisedWorker
from appliance.pbx.calls import CallService
from appliance.pbx.errors import PbxNotStartedError
from appliance.pbx.media import MediaPool, MediaPoolFullError
from appliance.pbx.originate import CONVERSATION_HEADER
from drivers.media.protocol import AnchorCall, AnchorEvent, Event
from drivers.sip.errors import RpcError

log = logging.getLogger(__name__)

SLOTS = 3  # the two anchored legs and a supervisor's or third party's


@dataclass(frozen=True)
class DirectCall:
    """An agent's answered call that goes phone to phone: both dialogs' Replaces values."""

    call_id: str
    agent: str
    other: str
    agent_replaces: str
    other_replaces: str
    conversation_id: str


def direct_call(call: dict[str, Any], agent: str) -> DirectCall | None:
    """The open ``call`` as the agent's direct call, or None when it is not one."""
    if call.get("answer") is None or not call.get("to_tag") or call.get("media_peer"):
        return None
    caller, callee = call["caller"], call["callee"]
    call_id, from_tag, to_tag = call["call_id"], call["caller_tag"], call["to_tag"]
    # Replaces names the dialog as its recipient sees it: to-tag is the recipient's own.
    as_caller = f"{call_id};to-tag={from_tag};from-tag={to_tag}"
    as_callee = f"{call_id};to-tag={to_tag};from-tag={from_tag}"
    conversation = str(call["conversation_id"])
    if caller.get("extension") == agent:
        return DirectCall(call_id, agent, callee["number"], as_caller, as_callee, conversation)
    if callee.get("extension") == agent:
        return DirectCall(call_id, agent, caller["number"], as_callee, as_caller, conversation)
    return None


@dataclass
class Anchor:
    """A direct call being moved (``pending``) or held (``bridged``) on ``worker``."""

    key: str
    call: DirectCall
    worker: SupervisedWorker
    bridged: bool = False


class Anchors:
    """Agents' direct calls anchored on media workers; owned by the event loop."""

    def __init__(
        self,
        calls: Callable[[], CallService],
        pool: MediaPool,
        takeover: Callable[[str], Awaitable[None]],
    ) -> None:
        self._calls = calls
        self._pool = pool
        self._takeover = takeover
        self.anchors: dict[str, Anchor] = {}
        self.on_bridged: Callable[[str], None] = lambda _key: None
        self.on_ended: Callable[[str, str], None] = lambda _key, _reason: None
        self._tasks: set[asyncio.Task[None]] = set()

    def find(self, agent: str) -> DirectCall | None:
        """The agent's direct call in progress, if it has one."""
        try:
            calls = self._calls().live_calls()
        except PbxNotStartedError:
            return None
        return next((d for c in calls if (d := direct_call(c, agent)) is not None), None)

    def held(self, agent: str) -> Held | None:
        """The agent's anchored call (``ready`` once bridged), if any."""
        anchor = next((a for a in self.anchors.values() if a.call.agent == agent), None)
        if anchor is None:
            return None
        return Held(anchor.key, "", anchor.worker, ready=anchor.bridged)

    def anchor(self, agent: str) -> Held | None:
        """Start moving the agent's direct call onto a worker; None when there is none
        (or no worker has room)."""
        held = self.held(agent)
        if held is not None:
            return held
        direct = self.find(agent)
        if direct is None:
            return None
        try:
            worker = self._pool.pick(SLOTS)
        except MediaPoolFullError as err:
            log.warning("no media worker to anchor agent %s's call: %s", agent, err,
                        extra={"error_id": "media-workers-busy"})  # fmt: skip
            return None
        worker.reserved += 2
        key = f"an-{uuid.uuid4().hex[:12]}"
        self.anchors[key] = Anchor(key, direct, worker)
        self._calls().expect_conversation(direct.conversation_id)
        task = asyncio.get_running_loop().create_task(self._move(self.anchors[key]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Held(key, "", worker, ready=False)

    async def _move(self, anchor: Anchor) -> None:
        """Kamailio first (the takeover mark), then the worker's INVITEs."""
        call = anchor.call
        try:
            await self._takeover(call.call_id)
        except RpcError as err:
            log.warning("anchoring %s refused by the SIP proxy: %s", call.call_id, err,
                        extra={"error_id": "sip-proxy-error"})  # fmt: skip
            self._ended(anchor.key, "sip-proxy-error")
            return
        command = AnchorCall(anchor.key, call.agent, call.other, call.agent_replaces,
                             call.other_replaces,
                             {CONVERSATION_HEADER: call.conversation_id})  # fmt: skip
        if not anchor.worker.send(command):
            self._ended(anchor.key, "worker-unavailable")
            return
        log.info("anchoring agent %s's call %s", call.agent, call.call_id,
                 extra={"anchor": anchor.key, "worker": anchor.worker.address})  # fmt: skip

    def on_event(self, worker: SupervisedWorker, event: Event) -> None:
        """An ``anchor`` event of a media worker (other events are not anchoring's)."""
        if not isinstance(event, AnchorEvent):
            return
        key, state = event.id, event.state
        anchor = self.anchors.get(key)
        if anchor is None or anchor.worker is not worker:
            return
        if state == "bridged":
            anchor.bridged = True
            log.info("agent %s's call anchored", anchor.call.agent, extra={"anchor": key})
            self.on_bridged(key)
        elif state == "ended":
            self._ended(key, event.reason or "hangup")

    def worker_lost(self, worker: SupervisedWorker) -> None:
        """A worker exited: the calls anchored on it are gone."""
        for key in [k for k, a in self.anchors.items() if a.worker is worker]:
            self._ended(key, "media-worker-restart")

    def _ended(self, key: str, reason: str) -> None:
        anchor = self.anchors.pop(key, None)
        if anchor is not None:
            log.info("anchor of agent %s's call ended: %s", anchor.call.agent, reason,
                     extra={"anchor": key, "bridged": anchor.bridged})  # fmt: skip
            self.on_ended(key, reason)
