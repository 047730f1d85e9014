"""Spoken refusals: a supervisor's feature code that is refused says why, aloud.

Each refusal of ``appliance.contact.supervisors`` has a short text, spoken by espeak-ng
in ``contact.supervision.language`` and played by a media worker's ``announce`` service
as the prompt ``refusal-<error_id>``, after which the worker hangs up. The WAVs are
rendered once at start (cached by content hash, ``drivers.media.tts``) in the
background; until a refusal's WAV exists (or when espeak-ng is missing) that refusal is
answered with its SIP error as before. A ``pbx.media.prompts`` entry of the same name
(a recording of the site's own) replaces the spoken text.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from drivers.media.protocol import Prompt
from drivers.media.tts import EspeakTts, TtsError

log = logging.getLogger(__name__)

PREFIX = "refusal-"
TEXTS = {
    "not-a-supervisor": "You are not a supervisor.",
    "supervising-self": "You cannot supervise yourself.",
    "queue-not-permitted": "You may not supervise the calls of this agent's queue.",
    "agent-not-found": "There is no agent with this number.",
    "agent-logged-out": "This agent is not logged in.",
    "agent-not-on-call": "This agent is not on a call.",
    "already-supervised": "Another supervisor is already on this call.",
}


def prompt_name(error_id: str) -> str:
    """The worker prompt that speaks refusal ``error_id``."""
    return f"{PREFIX}{error_id}"


class SpokenRefusals:
    """The refusal prompts: their files, their rendering, which can be played now."""

    def __init__(self, tts: EspeakTts, voice: str, configured: Collection[str]) -> None:
        self._tts = tts
        self._voice = voice
        self._configured = {e for e in TEXTS if prompt_name(e) in configured}
        self._files = {e: tts.cached(text, voice) for e, text in TEXTS.items()}

    def prompts(self) -> dict[str, Prompt]:
        """The workers' prompts for the refusals the site did not record itself."""
        return {prompt_name(e): Prompt(file=str(path)) for e, path in self._files.items()
                if e not in self._configured}  # fmt: skip

    async def render(self) -> None:
        """Speak every text not rendered yet; a failure leaves that refusal a SIP error."""
        for error_id, text in TEXTS.items():
            if error_id in self._configured:
                continue
            try:
                await self._tts.render(text, self._voice)
            except TtsError as err:
                log.warning("refusal %s stays a SIP error: %s", error_id, err,
                            extra={"error_id": err.error_id})  # fmt: skip

    def prompt(self, error_id: str) -> str | None:
        """The prompt to play for ``error_id`` now, or None (answer with the SIP error)."""
        if error_id in self._configured:
            return prompt_name(error_id)
        path: Path | None = self._files.get(error_id)
        return prompt_name(error_id) if path is not None and path.exists() else None
