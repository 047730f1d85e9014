"""An agent's queue call, acted on for the agent: answer it on the desk phone, hang it
up, or transfer the caller.

The media worker that holds the caller does the work: ``queue-answer`` rings the agent's
phone again asking it to answer by itself (a desk phone set to allow auto-answer) and
ends the first ring; ``queue-hangup`` ends both legs; ``queue-transfer`` REFERs the
caller to an extension of this site and, once the transfer completed, leaves the call,
which ends the agent's leg (blind transfer). The ACD then follows the worker's events as
for any queue call (answered, ended, wrap-up).

Errors (``AcdError``): ``agent-not-found`` (404), ``agent-not-on-call`` (409),
``agent-not-ringing`` (409: no queued caller rings the agent; a callback's agent leg
is not answered on desk),
``unknown-extension`` (422: the target is no extension of this site, or the agent
itself), ``worker-unavailable`` (503: the worker holding the call is gone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

from appliance.contact.acd import AcdError
from appliance.contact.service import ContactService
from drivers.media.protocol import Command, QueueAnswer, QueueHangup, QueueTransfer

log = logging.getLogger(__name__)

EVENTS = {"answer": "call.desk-answer", "hangup": "call.hung-up", "transfer": "call.transferred"}


@dataclass(frozen=True)
class CallAction:
    """What was asked of the worker for the agent's call."""

    agent: str
    call_id: str
    queue: str
    action: str
    to: str | None = None

    def record(self) -> dict[str, str | None]:
        """The action as a JSON-able document (API answer and CTI event)."""
        return {
            "agent": self.agent,
            "call_id": self.call_id,
            "queue": self.queue,
            "action": self.action,
            "to": self.to,
        }


class AgentCalls:
    """Hang up and transfer of agents' queue calls."""

    def __init__(self, service: ContactService, extensions: Callable[[], Collection[str]]):
        self._service = service
        self._extensions = extensions

    def answer(self, agent: str) -> CallAction:
        """Have the agent's ringing phone answer the queued caller by itself."""
        if agent not in self._service.acd.agents:
            raise AcdError("agent-not-found", f"{agent} is no agent of any queue")
        found = self._service.agent_offer(agent)
        if found is None:
            raise AcdError("agent-not-ringing", f"no queued caller rings agent {agent}")
        call_id, queue, worker = found
        if not worker.send(QueueAnswer(call_id, agent)):
            raise AcdError("worker-unavailable", "the media worker holding the call is gone")
        return self._done(CallAction(agent, call_id, queue, "answer"))

    def hangup(self, agent: str) -> CallAction:
        """End the agent's queue call (caller and agent legs)."""
        call_id, queue = self._send(agent, QueueHangup)
        return self._done(CallAction(agent, call_id, queue, "hangup"))

    def transfer(self, agent: str, to: str) -> CallAction:
        """Send the caller of the agent's queue call to the extension ``to``."""
        if to == agent or to not in self._extensions():
            raise AcdError("unknown-extension", f"{to} is no other extension of this site")
        call_id, queue = self._send(agent, lambda call_id: QueueTransfer(call_id, to))
        return self._done(CallAction(agent, call_id, queue, "transfer", to))

    def _send(self, agent: str, command: Callable[[str], Command]) -> tuple[str, str]:
        """Send ``command(call_id)`` for the agent's queue call."""
        if agent not in self._service.acd.agents:
            raise AcdError("agent-not-found", f"{agent} is no agent of any queue")
        found = self._service.agent_call(agent)
        if found is None:
            raise AcdError("agent-not-on-call", f"agent {agent} is on no queue call")
        call_id, queue, worker = found
        if not worker.send(command(call_id)):
            raise AcdError("worker-unavailable", "the media worker holding the call is gone")
        return call_id, queue

    def _done(self, action: CallAction) -> CallAction:
        log.info("agent %s: %s of call %s", action.agent, action.action, action.call_id)
        event = EVENTS[action.action]
        self._service.cti.publish(event, **action.record())
        return action
