"""A flow: named nodes joined by the names of the nodes that follow them.

Every node is a typed record with a ``type``; the flow names its ``start`` node. Audio
comes from ``say`` (text spoken by the TTS engine in the flow's language and voice, with
``{variable}`` templates), ``file`` (a WAV file, 8 kHz mono 16-bit) or ``prompt`` (a
``pbx.media.prompts`` entry). Node references are checked by ``appliance.ivr.validate``,
not here, so that a refusal can name every bad node of a flow at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
DIGITS = "0123456789*#"
VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,31})\}")


class Node(BaseModel):
    """Common to every node."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Audio(Node):
    """A node that may play something first (a menu's question, a record's instructions)."""

    say: str | None = Field(None, max_length=2000)
    file: str | None = None
    prompt: str | None = None


class Play(Audio):
    """Play the audio to its end, then go to ``next``."""

    type: Literal["play"]
    next: str


class Collect(Audio):
    """Gather digits into variable ``var``; the audio may be interrupted by the first digit."""

    type: Literal["collect"]
    var: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
    min_length: int = Field(1, ge=1, le=32)
    max_length: int = Field(16, ge=1, le=32)
    terminator: str | None = Field("#", pattern=r"^[*#]$")
    first_digit_s: float = Field(5.0, gt=0, le=60)
    inter_digit_s: float = Field(3.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=10)
    next: str
    invalid: str | None = None


class Menu(Audio):
    """One digit picks the next node; no or an unknown digit asks again, then branches."""

    type: Literal["menu"]
    options: dict[str, str] = Field(min_length=1)
    timeout_s: float = Field(5.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=10)
    timeout: str | None = None
    invalid: str | None = None


class Time(Node):
    """Open hours per weekday (``mon``..``sun``: ``["08:00-18:00"]``) and holidays."""

    type: Literal["time"]
    hours: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    holidays: tuple[str, ...] = ()
    open: str
    closed: str
    holiday: str | None = None


class Lookup(Node):
    """POST the caller and the variables to ``url``; branch on ``field`` of the answer."""

    type: Literal["lookup"]
    url: str = Field(pattern=r"^https?://")
    timeout_s: float = Field(2.0, gt=0, le=30)
    field: str = "route"
    branches: dict[str, str] = Field(default_factory=dict)
    next: str
    fallback: str


class Record(Audio):
    """Record the caller (``#``, silence or ``max_s`` ends it), then POST it to ``url``."""

    type: Literal["record"]
    url: str = Field(pattern=r"^https?://")
    max_s: float = Field(30.0, gt=0, le=600)
    silence_s: float = Field(3.0, ge=0, le=60)
    next: str


class Set(Node):
    """Set variables (templates allowed); they travel with the call as screen-pop data."""

    type: Literal["set"]
    vars: dict[str, str] = Field(min_length=1)
    next: str


class Extension(Node):
    """Transfer the caller to an extension of this site."""

    type: Literal["extension"]
    number: str = Field(pattern=r"^[0-9]{2,8}$")


class RingGroup(Node):
    """Transfer the caller to a ring group."""

    type: Literal["ring-group"]
    number: str = Field(pattern=r"^[0-9]{2,8}$")


class External(Node):
    """Transfer the caller to a number through the routing chain (compliance applies)."""

    type: Literal["number"]
    number: str = Field(pattern=r"^\+?[0-9]{2,16}$")


class SubFlow(Node):
    """Continue in another flow (its current version)."""

    type: Literal["flow"]
    flow: str = Field(pattern=NAME)


class Queue(Node):
    """A contact-centre queue (``appliance.contact``); without that queue, ``fallback``."""

    type: Literal["queue"]
    queue: str = Field(pattern=NAME)
    fallback: str = Field(pattern=r"^\+?[0-9]{2,16}$")


class Hangup(Node):
    """End the call."""

    type: Literal["hangup"]


AnyNode = Annotated[
    Play | Collect | Menu | Time | Lookup | Record | Set | Extension | RingGroup | External
    | SubFlow | Queue | Hangup,
    Field(discriminator="type"),
]  # fmt: skip
WAITING = (Collect, Menu)


class Flow(BaseModel):
    """A flow: its nodes, where it starts, how it speaks and which clock it reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    nodes: dict[str, AnyNode] = Field(min_length=1)
    language: str = Field("en", pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
    voice: str | None = Field(None, pattern=r"^[A-Za-z0-9+_-]{1,32}$")
    timezone: str | None = Field(None, description="default: site.timezone")


def successors(node: Node) -> list[tuple[str, str]]:
    """``(role, node name)`` for every node ``node`` may continue to."""
    if isinstance(node, Queue):
        return []
    pairs: list[tuple[str, str | None]] = []
    for role in ("next", "invalid", "timeout", "open", "closed", "holiday", "fallback"):
        pairs.append((role, getattr(node, role, None)))
    if isinstance(node, Menu):
        pairs += [(f"option {d}", n) for d, n in node.options.items()]
    if isinstance(node, Lookup):
        pairs += [(f"branch {v}", n) for v, n in node.branches.items()]
    return [(role, name) for role, name in pairs if isinstance(name, str)]


def render(template: str, variables: dict[str, str]) -> str:
    """``template`` with each ``{name}`` replaced by the variable (empty when unset)."""
    return VARIABLE.sub(lambda m: variables.get(m.group(1), ""), template)
