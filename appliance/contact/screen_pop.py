"""Screen pops: what an agent's page shows of the queue call it is rung for or talks on.

The CTI stream is the source: ``call.queued`` brings the caller, queue, priority and the
IVR flow's variables, ``call.offered``/``call.agent-ringing`` the agent, ``call.answered``
the wait; the call is forgotten when it ends however it ends. The ACD says which call an
agent is on (``Agent.call_id`` while ringing or on a call), so a call the tracker still
holds never shows on the page of an agent who moved on.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from appliance.contact.acd import BUSY, Agent
from appliance.contact.cti import CtiEvent

MAX_CALLS = 10_000
ENDS = frozenset(
    {"call.ended", "call.abandoned", "call.overflowed", "call.timeout", "call.interrupted"}
)


@dataclass
class QueuedCall:
    """A queue call as the CTI stream told it."""

    call_id: str
    queue: str
    caller: str
    priority: int
    entered: float
    variables: dict[str, str] = field(default_factory=dict)
    agent: str = ""
    answered_at: float | None = None
    wait_s: float | None = None


@dataclass(frozen=True)
class ScreenPop:
    """The agent's current call at ``now``: ringing or talking, waited, talked."""

    call: QueuedCall
    state: str
    wait_s: float
    talk_s: float | None


class ScreenPops:
    """Queue calls by Call-ID, fed by the CTI stream (``on_event``)."""

    def __init__(self, max_calls: int = MAX_CALLS) -> None:
        self._calls: OrderedDict[str, QueuedCall] = OrderedDict()
        self._max = max_calls

    def on_event(self, event: CtiEvent) -> None:
        """Follow one CTI event."""
        data, name = event.data, event.event
        call_id = str(data.get("call_id", ""))
        if name == "call.queued":
            self._add(
                QueuedCall(
                    call_id,
                    str(data.get("queue", "")),
                    str(data.get("caller", "")),
                    int(data.get("priority") or 0),
                    event.at,
                    dict(data.get("variables") or {}),
                )
            )
        call = self._calls.get(call_id)
        if call is None:
            return
        if name in ("call.offered", "call.agent-ringing", "call.answered"):
            call.agent = str(data.get("agent", ""))
        if name == "call.answered":
            call.answered_at = event.at
            call.wait_s = float(data.get("wait_s") or 0.0)
        elif name in ENDS:
            del self._calls[call_id]

    def current(self, agent: Agent, now: float) -> ScreenPop | None:
        """The call ``agent`` is rung for or talks on, if the stream told of it."""
        call = self._calls.get(agent.call_id) if agent.state in BUSY else None
        if call is None or call.agent != agent.number:
            return None
        if call.answered_at is None:
            return ScreenPop(call, agent.state, max(0.0, now - call.entered), None)
        wait = call.wait_s if call.wait_s is not None else call.answered_at - call.entered
        return ScreenPop(call, agent.state, wait, max(0.0, now - call.answered_at))

    def _add(self, call: QueuedCall) -> None:
        self._calls[call.call_id] = call
        while len(self._calls) > self._max:
            self._calls.popitem(last=False)
