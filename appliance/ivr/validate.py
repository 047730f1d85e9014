"""Check a flow document as a whole; a refusal names every bad node.

``parse_flow`` turns a document (config or API body) into a ``Flow`` or raises
``FlowInvalidError`` listing ``Problem(node, message)`` records: unknown node types or
fields, references to nodes that do not exist, unknown targets (extensions, ring
groups, flows, prompts), unreachable nodes, loops that never wait for the caller (a
cycle without a ``collect`` or ``menu`` node, which would spin forever), missing audio
files and bad opening hours or time zones.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance.ivr.model import (
    DIGITS,
    WAITING,
    Audio,
    Extension,
    Flow,
    Menu,
    Node,
    Play,
    RingGroup,
    SubFlow,
    Time,
    successors,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Problem:
    """One reason a flow is refused, and the node it is about (``""``: the flow itself)."""

    node: str
    message: str

    def __str__(self) -> str:
        return f"node {self.node}: {self.message}" if self.node else self.message


class FlowInvalidError(ValueError):
    """A flow was refused as a whole (``error_id`` ``ivr-flow-invalid``)."""

    error_id = "ivr-flow-invalid"

    def __init__(self, name: str, problems: list[Problem]) -> None:
        super().__init__(f"flow {name}: " + "; ".join(str(p) for p in problems))
        self.name = name
        self.problems = problems


@dataclass(frozen=True)
class Known:
    """What a flow may point at outside itself (None: not checked, e.g. in settings alone)."""

    extensions: Collection[str] | None = None
    ring_groups: Collection[str] | None = None
    flows: Collection[str] | None = None
    prompts: Collection[str] | None = None
    check_files: bool = True


def parse_flow(name: str, doc: Any, known: Known) -> Flow:
    """The validated flow, or FlowInvalidError naming the bad nodes."""
    try:
        flow = Flow.model_validate(doc)
    except ValidationError as err:
        raise FlowInvalidError(name, [_pydantic(e) for e in err.errors()]) from None
    problems = check(name, flow, known)
    if problems:
        raise FlowInvalidError(name, problems)
    return flow


def check(name: str, flow: Flow, known: Known) -> list[Problem]:
    """Every problem of a structurally valid flow."""
    problems = _references(flow)
    if problems:
        return problems
    problems += _unreachable(flow) + _spinning(flow) + _zone(flow)
    for node_name, node in flow.nodes.items():
        problems += [Problem(node_name, m) for m in _node(name, node, known)]
    return problems


def _pydantic(error: Any) -> Problem:
    loc = [str(p) for p in error["loc"]]
    node = loc[1] if len(loc) > 1 and loc[0] == "nodes" else ""
    rest = loc[2:] if node else loc
    where = ".".join(p for p in rest if p not in _NODE_TYPES)
    return Problem(node, f"{where}: {error['msg']}" if where else str(error["msg"]))


_NODE_TYPES = frozenset(
    ("play", "collect", "menu", "time", "lookup", "record", "set", "extension", "ring-group",
     "number", "flow", "queue", "hangup")
)  # fmt: skip


def _references(flow: Flow) -> list[Problem]:
    problems = [] if flow.start in flow.nodes else [Problem("", f"start {flow.start} is no node")]
    for node_name, node in flow.nodes.items():
        problems += [Problem(node_name, f"{role} goes to {target}, which is no node")
                     for role, target in successors(node) if target not in flow.nodes]  # fmt: skip
    return problems


def _unreachable(flow: Flow) -> list[Problem]:
    seen = {flow.start}
    todo = [flow.start]
    while todo:
        for _, after in successors(flow.nodes[todo.pop()]):
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return [Problem(n, "unreachable from the start node") for n in flow.nodes if n not in seen]


def _spinning(flow: Flow) -> list[Problem]:
    """Cycles through nodes that never wait for the caller's input."""
    passive = {n for n, node in flow.nodes.items() if not isinstance(node, WAITING)}
    state: dict[str, int] = {}
    found: list[Problem] = []

    def visit(name: str) -> None:
        state[name] = 1
        for _, after in successors(flow.nodes[name]):
            if after not in passive:
                continue
            if state.get(after) == 1:
                found.append(Problem(after, "loop without an exit (no collect or menu in it)"))
            elif after not in state:
                visit(after)
        state[name] = 2

    for name in sorted(passive):
        if name not in state:
            visit(name)
    return found


def _zone(flow: Flow) -> list[Problem]:
    if flow.timezone is None:
        return []
    try:
        zoneinfo.ZoneInfo(flow.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return [Problem("", f"timezone {flow.timezone} is not a known IANA zone")]
    return []


def _node(flow_name: str, node: Node, known: Known) -> list[str]:
    problems = _audio(node, known) if isinstance(node, Audio) else []
    if isinstance(node, Menu):
        problems += [f"option {d!r} is not one DTMF digit"
                     for d in node.options if len(d) != 1 or d not in DIGITS]  # fmt: skip
    if isinstance(node, Time):
        problems += _hours(node)
    if isinstance(node, Extension) and not _has(known.extensions, node.number):
        problems.append(f"extension {node.number} does not exist")
    if isinstance(node, RingGroup) and not _has(known.ring_groups, node.number):
        problems.append(f"ring group {node.number} does not exist")
    if isinstance(node, SubFlow) and not _has(known.flows, node.flow) and node.flow != flow_name:
        problems.append(f"flow {node.flow} does not exist")
    min_length, max_length = getattr(node, "min_length", 0), getattr(node, "max_length", 0)
    if min_length > max_length:
        problems.append(f"min_length {min_length} is above max_length {max_length}")
    return problems


def _audio(node: Audio, known: Known) -> list[str]:
    sources = [s for s in (node.say, node.file, node.prompt) if s]
    if isinstance(node, Play) and len(sources) != 1:
        return ["set exactly one of say, file or prompt"]
    if len(sources) > 1:
        return ["set at most one of say, file or prompt"]
    if node.prompt and not _has(known.prompts, node.prompt):
        return [f"prompt {node.prompt} is not in pbx.media.prompts"]
    if node.file and known.check_files and not Path(node.file).is_file():
        return [f"file {node.file} is missing"]
    return []


def _has(known: Collection[str] | None, name: str) -> bool:
    return known is None or name in known


def _hours(node: Time) -> list[str]:
    problems = [f"hours: {day} is not one of {', '.join(WEEKDAYS)}"
                for day in node.hours if day not in WEEKDAYS]  # fmt: skip
    for day, spans in node.hours.items():
        problems += [f"hours {day}: {span!r} is not HH:MM-HH:MM with start before end"
                     for span in spans if parse_span(span) is None]  # fmt: skip
    for holiday in node.holidays:
        try:
            datetime.date.fromisoformat(holiday)
        except ValueError:
            problems.append(f"holiday {holiday!r} is not a YYYY-MM-DD date")
    return problems


def parse_span(span: str) -> tuple[datetime.time, datetime.time] | None:
    """``08:00-18:00`` as two times, or None when malformed or empty."""
    first, _, last = span.partition("-")
    try:
        start = datetime.time.fromisoformat(first)
        end = datetime.time.max if last == "24:00" else datetime.time.fromisoformat(last)
    except ValueError:
        return None
    return (start, end) if start < end else None
