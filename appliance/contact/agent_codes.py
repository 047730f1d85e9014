"""Agents' feature codes as configured (``contact.agent_codes``) and parsed. Pure.

``login`` (``*71``), ``logout`` (``*72``), ``pause`` + a reason digit (``*731``: the
reason ``reasons["1"]``), ``resume`` (``*74``); ``prompt`` is the ``pbx.media`` prompt
the caller hears when the action is done (unset: the call is answered 603, as the
hotel's room codes; ``appliance.contact.feature_codes``). ``queue_site`` sends the codes
of this site's extensions that are no agent here to that site, where they are remote
agents (``appliance.contact.remote_codes``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivers.daemon.settings_base import Section

CODE = r"^\*[0-9]{1,4}$"
REASON = r"^[a-z0-9][a-z0-9_-]{0,31}$"
Action = Literal["login", "logout", "pause", "resume"]


class AgentCodes(Section):
    """The agents' feature codes, the pause reasons by digit and the confirmation prompt."""

    prompt: str | None = Field(
        None, description="pbx.media prompt played when done; unset: answered 603 (done)"
    )
    login: str = Field("*71", pattern=CODE)
    logout: str = Field("*72", pattern=CODE)
    pause: str = Field("*73", pattern=CODE, description="+ one reason digit")
    resume: str = Field("*74", pattern=CODE)
    reasons: dict[str, str] = Field(default_factory=lambda: {"1": "break", "2": "lunch",
                                                             "3": "training"})  # fmt: skip
    queue_site: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
        description="the site whose queues this site's extensions serve as remote agents: "
        "the codes of an extension that is no agent here go there",
    )

    @field_validator("reasons")
    @classmethod
    def _digit_reasons(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [f"{d}: {r}" for d, r in value.items()
               if len(d) != 1 or not d.isdigit() or not re.match(REASON, r)]  # fmt: skip
        if bad:
            raise ValueError(f"reasons map one digit to a reason matching {REASON}, "
                             f"not {', '.join(bad)}")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _distinct(self) -> AgentCodes:
        clashes = overlaps(self.codes, self.codes)
        if clashes:
            raise ValueError(f"contact.agent_codes overlap: {', '.join(clashes)}")
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        """The four codes (login, logout, pause, resume)."""
        return (self.login, self.logout, self.pause, self.resume)


def overlaps(codes: Iterable[str], others: Iterable[str]) -> list[str]:
    """Pairs of distinct entries where one code is a prefix of the other (or equal)."""
    mine, theirs = list(codes), list(others)
    same = mine == theirs
    return [f"{a} and {b}" for i, a in enumerate(mine) for j, b in enumerate(theirs)
            if (not same or i < j) and (a.startswith(b) or b.startswith(a))]  # fmt: skip


@dataclass(frozen=True)
class AgentRequest:
    """A dialled agent code: the action and, for a pause, its reason (None: unknown digit)."""

    action: Action
    reason: str | None = None


def parse(codes: AgentCodes, dialled: str) -> AgentRequest | None:
    """The request ``dialled`` makes, or None when it is no agent code."""
    exact: dict[str, Action] = {codes.login: "login", codes.logout: "logout",
                                codes.resume: "resume"}  # fmt: skip
    if dialled in exact:
        return AgentRequest(exact[dialled])
    digit = dialled.removeprefix(codes.pause)
    if dialled.startswith(codes.pause) and len(digit) == 1 and digit.isdigit():
        return AgentRequest("pause", codes.reasons.get(digit))
    return None
