"""``contact``: ACD queues and their agents.

A queue is reached by dialling its ``number`` (or the media user ``queue-<name>``) and
from an IVR flow's ``queue`` node. ``agents`` are the extensions that may log in to it
(static membership); agents log in, pause and resume through the local API.
``supervisors`` and ``supervision`` are the supervisors' rights and the beep policy
(``appliance.contact.supervisors``). ``webhook_events``: globs of the CTI events also
sent to ``pbx.webhook`` (``appliance.contact.cti_webhooks``).
"""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from appliance.contact.cti_webhooks import EVENTS, unknown_globs
from appliance.contact.supervisors import (
    SupervisionSettings,
    SupervisorSettings,
    check_supervisors,
)
from drivers.daemon.settings_base import Section

QUEUE_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class QueueSettings(Section):
    """One ACD queue."""

    number: str = Field(pattern=r"^[0-9]{2,8}$")
    agents: tuple[str, ...] = Field(min_length=1)
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
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


class ContactSettings(Section):
    """Every queue of the site, by name."""

    queues: dict[str, QueueSettings] = Field(default_factory=dict)

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

    supervisors: dict[str, SupervisorSettings] = Field(default_factory=dict)
    supervision: SupervisionSettings = SupervisionSettings()

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
