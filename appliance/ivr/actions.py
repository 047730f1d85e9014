"""What the flow engine asks of the world: one record per action, carried out by the service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PlayAudio:
    """Play text (already templated) in ``language``/``voice``, a file or a named prompt."""

    say: str | None = None
    file: str | None = None
    prompt: str | None = None
    language: str = "en"
    voice: str | None = None


@dataclass(frozen=True)
class StopAudio:
    """Stop what is playing (the caller pressed a key)."""


@dataclass(frozen=True)
class StartRecording:
    """Record the caller for at most ``max_s``; ``silence_s`` of quiet ends it (0: never)."""

    max_s: float
    silence_s: float


@dataclass(frozen=True)
class StopRecording:
    """Close the recording now."""


@dataclass(frozen=True)
class AskWebhook:
    """POST ``body`` to ``url``; answer the session with the JSON object or None."""

    url: str
    body: dict[str, Any]
    timeout_s: float


@dataclass(frozen=True)
class Deliver:
    """POST the finished recording with ``body`` (its metadata) to ``url``."""

    url: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Transfer:
    """Send the caller to ``to`` through the routing chain, leaving the flow."""

    to: str


@dataclass(frozen=True)
class HangUp:
    """End the call."""


@dataclass(frozen=True)
class Publish:
    """The call's variables changed: screen-pop data for the CDR and call events."""

    variables: dict[str, str]


Action = (
    PlayAudio | StopAudio | StartRecording | StopRecording | AskWebhook | Deliver | Transfer
    | HangUp | Publish
)  # fmt: skip
