"""``pbx.ivr``: flows defined in configuration.

Each entry of ``flows`` is a flow document (``appliance.ivr.model``), checked here on its
own (structure, references, reachability, loops, hours); what it points at outside
itself (extensions, ring groups, prompts, other flows, files) is checked when the PBX
starts, against the dial plan.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator

from appliance.ivr.model import NAME
from appliance.ivr.validate import FlowInvalidError, Known, parse_flow
from drivers.daemon.settings_base import Section


class IvrFlowSettings(Section):
    """IVR flows by name (``ivr:<name>`` as a target, ``ivr-<name>`` as a dialled user)."""

    flows: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _flows_valid(self) -> IvrFlowSettings:
        problems = [f"flow name {n!r} must match {NAME}" for n in self.flows
                    if not re.match(NAME, n)]  # fmt: skip
        for name, doc in self.flows.items():
            try:
                parse_flow(name, doc, Known(flows=set(self.flows), check_files=False))
            except FlowInvalidError as err:
                problems.append(str(err))
        if problems:
            raise ValueError("; ".join(problems))
        return self
