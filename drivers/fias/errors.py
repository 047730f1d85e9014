"""Exceptions raised by the FIAS driver.

The driver raises only this tree; services wrap it with ``raise ... from err``::

    FiasError
    ├── LocalProtocolError     we misused the core (a record with forbidden bytes, bad field id)
    ├── RemoteProtocolError    the PMS sent bytes we cannot accept (framing, controls, overflow)
    └── LinkError              the transport could not carry the link (connect failed, closed)
"""

from __future__ import annotations


class FiasError(Exception):
    """Base of every error the FIAS driver raises."""


class LocalProtocolError(FiasError):
    """The caller built a record the protocol cannot carry."""


class RemoteProtocolError(FiasError):
    """The peer sent bytes that cannot be parsed or that overflow the receive buffer."""


class LinkError(FiasError):
    """The connection to the PMS failed or went away."""
