"""``contact``: ACD queues and their agents.

A queue is reached by dialling its ``number`` (or the media user ``queue-<name>``) and
from an IVR flow's ``queue`` node. ``agents`` are the extensions that may log in to it
(static membership); agents log in, pause and resume through the local API. An agent is
an extension (``"1003"``) or ``{"extension", "skills", "penalty"}``; ``strategy`` says
how the ACD picks among the free agents (``docs/contact-centre.md``). ``supervisors``
and ``supervision`` are the supervisors' rights and the beep policy
(``appliance.contact.supervisors``). ``webhook_events``: globs of the CTI events also
sent to ``pbx.webhook`` (``appliance.contact.cti_webhooks``). ``agent_codes``: the
agents' login/logout/pause/resume feature codes (``appliance.contact.agent_codes``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from appliance.contact.agent_codes import AgentCodes, overlaps
from appliance.contact.cti_webhooks import EVENTS, unknown_globs
from appliance.contact.supervisors import (
    SupervisionSettings,
    SupervisorSettings,
    check_supervisors,
)
from drivers.daemon.settings_base import Section

QUEUE_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
SKILL_NAME = r"^[a-z][a-z0-9_-]{0,31}$"
MAX_LEVEL = 10
PLACEHOLDERS = ("{position}", "{wait_minutes}")
Strategy = Literal["ring-all", "longest-idle", "round-robin", "fewest-calls", "skills"]


def check_skills(skills: dict[str, int]) -> dict[str, int]:
    """Skill names of ``SKILL_NAME``'s shape, levels 1 to ``MAX_LEVEL``."""
    bad = [f"{name}: {level}" for name, level in skills.items()
           if not re.match(SKILL_NAME, name) or not 1 <= level <= MAX_LEVEL]  # fmt: skip
    if bad:
        raise ValueError(f"skills need names matching {SKILL_NAME} and levels 1-{MAX_LEVEL}, "
                         f"not {', '.join(bad)}")  # fmt: skip
    return skills


class AgentSettings(Section):
    """A queue's agent: an extension with its skill levels and penalty in this queue.

    ``remote``: the extension belongs to another site, the routing table says which
    (``appliance.contact.remote_agents``)."""

    extension: str = Field(pattern=r"^[0-9]{2,8}$")
    remote: bool = False
    skills: dict[str, int] = Field(default_factory=dict)
    penalty: int = Field(default=0, ge=0, le=99)

    _skills = field_validator("skills")(check_skills)


class QueueSettings(Section):
    """One ACD queue."""

    number: str = Field(pattern=r"^[0-9]{2,8}$")
    agents: tuple[AgentSettings, ...] = Field(min_length=1)
    strategy: Strategy = "longest-idle"
    skills: dict[str, int] = Field(default_factory=dict)
    skill_relax_s: float = Field(default=0.0, ge=0, le=3600)
    hold_prompt: str | None = None
    ring_timeout_s: float = Field(default=15.0, gt=0, le=120)
    wrapup_s: float = Field(default=5.0, ge=0, le=600)
    max_wait_s: float = Field(default=300.0, gt=0, le=7200)
    overflow: str | None = Field(default=None, pattern=r"^[0-9+][0-9]{1,19}$")
    priority_callers: tuple[str, ...] = ()
    service_level_s: float = Field(default=20.0, gt=0)
    announce_every_s: float = Field(default=0.0, ge=0, le=600)
    announcement: str = Field(default="You are number {position} in the queue.",
                              min_length=1, max_length=200)  # fmt: skip
    handle_time_s: float = Field(default=180.0, gt=0, le=7200)
    callback_after_s: float = Field(default=0.0, ge=0, le=3600)
    callback_prompt: str = Field(
        default="To be called back when it is your turn, without losing your place, press 1.",
        min_length=1, max_length=200,
    )  # fmt: skip
    callback_ring_s: float = Field(default=30.0, ge=2, le=120)
    callback_retries: int = Field(default=0, ge=0, le=10)
    callback_retry_s: float = Field(default=60.0, ge=5, le=3600)
    callback_release_prompt: str = Field(
        default="The caller did not answer.", min_length=1, max_length=200
    )
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")

    _skills = field_validator("skills")(check_skills)

    @field_validator("agents", mode="before")
    @classmethod
    def _plain_extensions(cls, value: Any) -> Any:
        """A plain extension stands for an agent without skills or penalty."""
        if isinstance(value, list | tuple):
            return [{"extension": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("announcement")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        unknown = sorted(set(re.findall(r"\{[^}]*\}", value)) - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"unknown placeholders {', '.join(unknown)}; "
                             f"known: {', '.join(PLACEHOLDERS)}")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _consistent(self) -> QueueSettings:
        numbers = self.numbers
        twice = sorted({n for n in numbers if numbers.count(n) > 1})
        if twice:
            raise ValueError(f"agents: {', '.join(twice)} listed twice")
        if self.skills and self.strategy != "skills":
            raise ValueError(f"skills: needs strategy 'skills', not {self.strategy!r}")
        return self

    @property
    def numbers(self) -> tuple[str, ...]:
        """The agents' extensions, in the configured order."""
        return tuple(a.extension for a in self.agents)

    @property
    def remote(self) -> tuple[str, ...]:
        """The agents whose extensions belong to another site."""
        return tuple(a.extension for a in self.agents if a.remote)


class ContactSettings(Section):
    """Every queue of the site, by name."""

    queues: dict[str, QueueSettings] = Field(default_factory=dict)
    supervisors: dict[str, SupervisorSettings] = Field(default_factory=dict)
    supervision: SupervisionSettings = SupervisionSettings()
    remote_poll_s: float = Field(default=5.0, ge=0.5, le=300)

    @model_validator(mode="after")
    def _distinct(self) -> ContactSettings:
        problems = [f"contact.queues: name {n!r} must match {QUEUE_NAME}"
                    for n in self.queues if not re.match(QUEUE_NAME, n)]  # fmt: skip
        numbers = [q.number for q in self.queues.values()]
        problems += [f"contact.queues: number {n} is used by two queues"
                     for n in sorted(set(numbers)) if numbers.count(n) > 1]  # fmt: skip
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _supervisors(self) -> ContactSettings:
        problems = check_supervisors(self.supervisors, self.queues)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    webhook_events: tuple[str, ...] = ("*",)

    @model_validator(mode="after")
    def _webhook_events(self) -> ContactSettings:
        unknown = unknown_globs(self.webhook_events)
        if unknown:
            raise ValueError(f"contact.webhook_events: {', '.join(map(repr, unknown))} match no "
                             f"CTI event; events: {', '.join(EVENTS)}")  # fmt: skip
        return self

    agent_codes: AgentCodes | None = None

    @model_validator(mode="after")
    def _agent_codes(self) -> ContactSettings:
        if self.agent_codes is None:
            return self
        supervision = self.supervision.codes.model_dump().values()
        clashes = overlaps(self.agent_codes.codes, supervision)
        if clashes:
            raise ValueError(f"contact.agent_codes overlap supervision codes: {', '.join(clashes)}")
        return self
