"""Errors of the PBX service layer.

Exceptions::

    PbxError
     └── PbxNotStartedError    the component has not been started (its store is not open)
    DialPlanError (ValueError, in appliance.pbx.dialplan)    inconsistent dial plan
"""

from __future__ import annotations


class PbxError(Exception):
    """Base of the PBX service errors."""


class PbxNotStartedError(PbxError):
    """The PBX is not running: calls, CDRs and recordings are not available yet."""
