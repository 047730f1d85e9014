"""The flow engine: one session per call, events in, actions out. No I/O, no clock of its own.

Theory of operation. ``start`` enters the flow's start node. Nodes that need nothing from
outside (``set``, ``time``, ``flow``) are passed through at once; the others leave the
session in a phase until an event arrives:

    playing     a ``play`` node's audio runs          played -> next
    prompting   a menu/collect/record's audio runs    digit (barge-in) | played -> waiting
    waiting     digits are gathered until a deadline  digit | tick past the deadline
    lookup      a webhook was asked                   answer (None: fallback) | deadline
    recording   the caller is recorded                ``#`` | deadline -> finishing
    finishing   the recording is being closed         recorded -> deliver, next
    done        the call left the flow (transfer or hang-up)

Time conditions read the flow's ``timezone``, else the site's (``zone``). Deadlines are
epoch seconds read from the injected clock; the runner calls ``tick`` when ``deadline``
passes. A ``queue`` node transfers to the ACD queue (``queue-<name>``) when the site has
it (``queues``), else to its fallback. A session keeps the ``Flow`` object it started
with, so replacing a flow never changes a call already inside it.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

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
from appliance.ivr.model import (
    Audio,
    Collect,
    Extension,
    External,
    Flow,
    Hangup,
    Lookup,
    Menu,
    Node,
    Play,
    Queue,
    Record,
    RingGroup,
    Set,
    SubFlow,
    Time,
    render,
)
from appliance.ivr.validate import WEEKDAYS, parse_span

MAX_PASSES = 64


@dataclass
class Session:
    """One call inside a flow."""

    flow_name: str
    flow: Flow
    version: int
    caller: str
    clock: Callable[[], float]
    flows: Callable[[str], Flow | None]
    zone: str = "UTC"
    queues: Collection[str] = ()
    variables: dict[str, str] = field(default_factory=dict)
    node: str = ""
    phase: str = "new"
    deadline: float | None = None
    digits: str = ""
    attempts: int = 0
    recording: dict[str, Any] = field(default_factory=dict)

    def start(self) -> list[Action]:
        """Enter the flow's start node."""
        self.variables.setdefault("caller", self.caller)
        return self._goto(self.flow.start)

    def digit(self, digit: str) -> list[Action]:
        """The caller pressed a key."""
        node = self._current()
        if self.phase in ("prompting", "waiting") and isinstance(node, (Menu, Collect)):
            stop: list[Action] = [StopAudio()] if self.phase == "prompting" else []
            self.phase = "waiting"
            handle = self._menu_digit if isinstance(node, Menu) else self._collect_digit
            return stop + handle(node, digit)  # type: ignore[arg-type]
        if self.phase == "recording" and digit == "#":
            return self._stop_recording()
        return []

    def played(self) -> list[Action]:
        """The audio that was playing reached its end."""
        node = self._current()
        if self.phase == "playing" and isinstance(node, Play):
            return self._goto(node.next)
        if self.phase == "prompting" and isinstance(node, Record):
            return self._record(node)
        if self.phase == "prompting" and isinstance(node, (Menu, Collect)):
            self.phase = "waiting"
            self.deadline = self.clock() + _first_wait(node)
        return []

    def tick(self) -> list[Action]:
        """Time passed: act on a deadline that expired."""
        if self.deadline is None or self.clock() < self.deadline:
            return []
        self.deadline = None
        node = self._current()
        if self.phase == "lookup" and isinstance(node, Lookup):
            return self._goto(node.fallback)
        if self.phase == "recording":
            return self._stop_recording()
        if self.phase == "waiting" and isinstance(node, Collect) and self.digits:
            return self._collect_done(node)
        if self.phase == "waiting" and isinstance(node, (Menu, Collect)):
            return self._retry(node, "timeout")
        return []

    def answered(self, answer: dict[str, Any] | None) -> list[Action]:
        """The lookup webhook answered (None: timeout, error status or not a JSON object)."""
        node = self._current()
        if self.phase != "lookup" or not isinstance(node, Lookup):
            return []
        self.deadline = None
        if answer is None:
            return self._goto(node.fallback)
        self.variables.update({k: _text(v) for k, v in answer.items() if _scalar(v)})
        chosen = node.branches.get(_text(answer.get(node.field)), node.next)
        return [Publish(dict(self.variables)), *self._goto(chosen)]

    def recorded(self, seconds: float) -> list[Action]:
        """The recording is closed and on disk."""
        node = self._current()
        if self.phase not in ("recording", "finishing") or not isinstance(node, Record):
            return []
        self.deadline = None
        body = {"flow": self.flow_name, "version": self.version, "caller": self.caller,
                "node": self.node, "seconds": round(seconds, 2),
                "variables": dict(self.variables)}  # fmt: skip
        return [Deliver(node.url, body), *self._goto(node.next)]

    def _current(self) -> Node | None:
        return self.flow.nodes.get(self.node)

    def _goto(self, name: str) -> list[Action]:
        actions: list[Action] = []
        for _ in range(MAX_PASSES):
            self.node, self.digits, self.attempts, self.deadline = name, "", 0, None
            node = self.flow.nodes[name]
            step, after = self._enter(node)
            actions += step
            if after is None:
                return actions
            name = after
        self.phase = "done"
        return [*actions, HangUp()]

    def _enter(self, node: Node) -> tuple[list[Action], str | None]:
        """Actions for entering ``node`` and the node to pass on to at once (or None)."""
        if isinstance(node, Set):
            self.variables.update({k: render(v, self.variables) for k, v in node.vars.items()})
            return [Publish(dict(self.variables))], node.next
        if isinstance(node, Time):
            return [], _time_branch(node, self.flow.timezone or self.zone, self.clock())
        if isinstance(node, SubFlow):
            return self._subflow(node)
        if isinstance(node, Play):
            self.phase = "playing"
            return [self._audio(node)], None
        if isinstance(node, (Menu, Collect, Record)):
            return self._ask(node), None
        if isinstance(node, Lookup):
            return [self._lookup(node)], None
        self.phase = "done"
        return [_leave(node, self.queues)], None

    def _subflow(self, node: SubFlow) -> tuple[list[Action], str | None]:
        flow = self.flows(node.flow)
        if flow is None:
            self.phase = "done"
            return [HangUp()], None
        self.flow, self.flow_name = flow, node.flow
        return [], flow.start

    def _ask(self, node: Menu | Collect | Record) -> list[Action]:
        if node.say or node.file or node.prompt:
            self.phase = "prompting"
            return [self._audio(node)]
        if isinstance(node, Record):
            return self._record(node)
        self.phase = "waiting"
        self.deadline = self.clock() + _first_wait(node)
        return []

    def _audio(self, node: Audio) -> PlayAudio:
        say = render(node.say, self.variables) if node.say else None
        return PlayAudio(say, node.file, node.prompt, self.flow.language, self.flow.voice)

    def _lookup(self, node: Lookup) -> AskWebhook:
        self.phase = "lookup"
        self.deadline = self.clock() + node.timeout_s
        body = {"flow": self.flow_name, "caller": self.caller, "node": self.node,
                "variables": dict(self.variables)}  # fmt: skip
        return AskWebhook(node.url, body, node.timeout_s)

    def _record(self, node: Record) -> list[Action]:
        self.phase = "recording"
        self.deadline = self.clock() + node.max_s
        return [StartRecording(node.max_s, node.silence_s)]

    def _stop_recording(self) -> list[Action]:
        self.phase = "finishing"
        self.deadline = None
        return [StopRecording()]

    def _menu_digit(self, node: Menu, digit: str) -> list[Action]:
        chosen = node.options.get(digit)
        if chosen is None:
            return self._retry(node, "invalid")
        return self._goto(chosen)

    def _collect_digit(self, node: Collect, digit: str) -> list[Action]:
        if digit == node.terminator:
            return self._collect_done(node)
        self.digits += digit
        if len(self.digits) >= node.max_length:
            return self._collect_done(node)
        self.deadline = self.clock() + node.inter_digit_s
        return []

    def _collect_done(self, node: Collect) -> list[Action]:
        if len(self.digits) < node.min_length:
            return self._retry(node, "invalid")
        self.variables[node.var] = self.digits
        return self._goto(node.next)

    def _retry(self, node: Menu | Collect, why: str) -> list[Action]:
        if self.attempts < node.retries:
            self.attempts += 1
            self.digits = ""
            return self._ask(node)
        branch = getattr(node, why, None) or node.invalid
        if branch is None:
            self.phase = "done"
            return [HangUp()]
        return self._goto(branch)


def _first_wait(node: Menu | Collect) -> float:
    return node.timeout_s if isinstance(node, Menu) else node.first_digit_s


def _leave(node: Node, queues: Collection[str]) -> Action:
    if isinstance(node, (Extension, RingGroup, External)):
        return Transfer(node.number)
    if isinstance(node, Queue):
        return Transfer(f"queue-{node.queue}" if node.queue in queues else node.fallback)
    if not isinstance(node, Hangup):
        raise TypeError(f"no action leaves the flow at a {type(node).__name__} node")
    return HangUp()


def _time_branch(node: Time, zone: str, now: float) -> str:
    local = datetime.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(zone))
    if local.date().isoformat() in node.holidays:
        return node.holiday or node.closed
    spans = node.hours.get(WEEKDAYS[local.weekday()], ())
    for span in spans:
        parsed = parse_span(span)
        if parsed is not None and parsed[0] <= local.time() < parsed[1]:
            return node.open
    return node.closed


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and not isinstance(value, bytes)


def _text(value: Any) -> str:
    """A JSON scalar as a variable: booleans as JSON spells them, null as empty."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else ("" if value is None else str(value))
