"""Errors of the PBX service layer.

Exceptions::

    PbxError
     ├── PbxNotStartedError    the component has not been started (its store is not open)
     └── CallControlError      a call-control request (click-to-dial, hang-up, recording,
                               conference) was refused; ``status``, ``error_id`` and
                               ``details`` say why
    DialPlanError (ValueError, in appliance.pbx.dialplan)    inconsistent dial plan
    FlowInvalidError (ValueError, in appliance.ivr.validate) an IVR flow refused, by node
"""

from __future__ import annotations

from typing import Any


class PbxError(Exception):
    """Base of the PBX service errors."""


class PbxNotStartedError(PbxError):
    """The PBX is not running: calls, CDRs and recordings are not available yet."""


class CallControlError(PbxError):
    """A call-control request was refused before anything changed."""

    def __init__(self, status: int, error_id: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.details = details
