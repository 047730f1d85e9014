"""Supervisors: who may listen in on which queue's calls, and how. Pure.

``contact.supervisors`` names the extensions that may supervise and the queues whose
calls each may join; ``contact.supervision`` holds the beep policy and the feature codes.
A supervisor joins an agent's queue call in one of three modes:

    monitor   the supervisor hears caller and agent; nobody hears the supervisor
    whisper   the supervisor hears both; only the agent hears the supervisor
    barge     everyone hears everyone

and switches mode during the session with the keys of ``DIGIT_MODES`` (4, 5, 6, as
Asterisk's ChanSpy). ``permit`` is the one permission check, shared by the feature
codes and the API; it raises ``SupervisionError`` with a stable ``error_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from drivers.daemon.settings_base import Section

Mode = Literal["monitor", "whisper", "barge"]
Beep = Literal["none", "agent", "both"]
MODES: tuple[Mode, ...] = ("monitor", "whisper", "barge")
DIGIT_MODES: dict[str, Mode] = {"4": "monitor", "5": "whisper", "6": "barge"}
CODE = r"^\*[0-9]{1,4}$"


class SupervisionError(ValueError):
    """A supervision request refused: ``error_id`` says why."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


class SupervisorSettings(Section):
    """One supervisor: the queues whose calls it may join, and its own beep policy."""

    queues: tuple[str, ...] = Field(min_length=1)
    beep: Beep | None = None


class SupervisionCodes(Section):
    """Feature codes: the code then the agent's extension (``*911003``: whisper to 1003)."""

    monitor: str = Field("*90", pattern=CODE)
    whisper: str = Field("*91", pattern=CODE)
    barge: str = Field("*92", pattern=CODE)

    @model_validator(mode="after")
    def _distinct(self) -> SupervisionCodes:
        codes = [self.monitor, self.whisper, self.barge]
        clashes = [f"{a} and {b}" for i, a in enumerate(codes) for b in codes[i + 1 :]
                   if a.startswith(b) or b.startswith(a)]  # fmt: skip
        if clashes:
            raise ValueError(f"contact.supervision.codes overlap: {', '.join(clashes)}")
        return self


class SupervisionSettings(Section):
    """The beep when a supervisor joins (``none``, to the ``agent``, to ``both``)."""

    beep: Beep = "agent"
    codes: SupervisionCodes = SupervisionCodes()
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$",
                          description="espeak-ng language of the spoken refusals")  # fmt: skip

    def beep_for(self, supervisor: SupervisorSettings) -> Beep:
        """The supervisor's own policy, else the site's."""
        return supervisor.beep or self.beep

    def parse_code(self, dialled: str) -> tuple[Mode, str] | None:
        """``(mode, agent)`` when ``dialled`` is a supervision code plus digits, else None."""
        for mode in MODES:
            code = getattr(self.codes, mode)
            agent = dialled[len(code) :]
            if dialled.startswith(code) and agent.isdigit():
                return mode, agent
        return None


def check_supervisors(supervisors: Mapping[str, SupervisorSettings],
                      queues: Mapping[str, object]) -> list[str]:  # fmt: skip
    """Configuration problems: unknown queues, badly formed supervisor numbers."""
    problems = [f"contact.supervisors: {number!r} is not an extension number"
                for number in supervisors if not number.isdigit()]  # fmt: skip
    for number, supervisor in supervisors.items():
        unknown = sorted(set(supervisor.queues) - set(queues))
        if unknown:
            known = ", ".join(queues) or "none"
            problems.append(f"contact.supervisors.{number}.queues: {', '.join(unknown)} "
                            f"not in contact.queues (known: {known})")  # fmt: skip
    return problems


def permit(supervisors: Mapping[str, SupervisorSettings], supervisor: str, agent: str,
           queue: str | None) -> SupervisorSettings:  # fmt: skip
    """The supervisor's settings when it may join ``agent``'s call from ``queue``.

    ``queue`` None means the agent is on no queue call."""
    settings = supervisors.get(supervisor)
    if settings is None:
        raise SupervisionError("not-a-supervisor", f"{supervisor} is not a supervisor")
    if supervisor == agent:
        raise SupervisionError("supervising-self", f"{supervisor} cannot supervise itself")
    if queue is None:
        raise SupervisionError("agent-not-on-call", f"agent {agent} is on no queue call")
    if queue not in settings.queues:
        raise SupervisionError(
            "queue-not-permitted",
            f"{supervisor} may supervise {', '.join(settings.queues)}, not queue {queue}",
        )
    return settings
