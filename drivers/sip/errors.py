"""Errors raised by the SIP edge drivers.

Exceptions::

    SipDriverError
     ├── NgError           rtpengine's ng control protocol: bad reply, error result, timeout
     ├── NetstringError    malformed or oversized evapi netstring from Kamailio
     ├── RpcError          a Kamailio RPC command failed or got no answer
     ├── ProcessError      Kamailio or rtpengine could not be started or keeps dying
     ├── ConfigValueError  a value that cannot be rendered into kamailio.cfg (also a ValueError)
     └── RecordingError    a pcap or metadata file that cannot be turned into a WAV
"""

from __future__ import annotations


class SipDriverError(Exception):
    """Base of the SIP edge drivers' errors."""


class NgError(SipDriverError):
    """rtpengine's ng protocol failed: no answer, malformed answer or ``result: error``."""


class NetstringError(SipDriverError):
    """Kamailio's evapi stream carried a malformed or oversized netstring."""


class RpcError(SipDriverError):
    """A Kamailio RPC command (sent over evapi) failed or was not answered in time."""


class ProcessError(SipDriverError):
    """A supervised daemon could not be started or its binary is missing."""


class ConfigValueError(SipDriverError, ValueError):
    """A configuration value that kamailio.cfg cannot hold (bad syntax, quotes, newlines)."""


class RecordingError(SipDriverError):
    """A recording's pcap or metadata cannot be read."""
