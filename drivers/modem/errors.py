"""Exceptions raised by the modem driver.

The driver raises only this tree; services wrap it with ``raise ... from err``::

    ModemError
    ├── LocalProtocolError          we misused the protocol core (a bug on our side)
    ├── RemoteProtocolError         the modem sent bytes we cannot accept (overflow, control bytes)
    ├── CommandError                a command ended in a final result other than OK
    │   ├── CommandNotSupported     ERROR / COMMAND NOT SUPPORT
    │   ├── CallFailed              NO CARRIER / BUSY / NO ANSWER / NO DIALTONE
    │   ├── CmsError                +CMS ERROR (3GPP TS 27.005 §3.2.5)
    │   └── CmeError                +CME ERROR (3GPP TS 27.007 §9.2)
    │       ├── SimNotInserted      10
    │       ├── SimPinRequired      11 (and 17 SIM PIN2)
    │       ├── SimPukRequired      12 (and 18 SIM PUK2)
    │       ├── SimFailure          13
    │       ├── SimBusy             14 (retry later)
    │       └── NoNetworkService    30, 31, 32
    ├── TransportError
    │   ├── PortNotFound            the device path does not exist
    │   ├── PortBusy                another process holds the port
    │   ├── PortClosed              the device went away (unplug, re-enumeration)
    │   └── CommandTimeout          no final result in time
    │       └── NotAModem           nothing on the port answers AT
    ├── NoNetwork                   the SIM is not registered
    ├── RecoveryFailed              the recovery ladder ran out of steps
    └── FeatureNotAvailable         the profile has no such feature (e.g. a second SIM slot)
"""

from __future__ import annotations


class ModemError(Exception):
    """Base of every error the modem driver raises."""


class LocalProtocolError(ModemError):
    """The caller broke the protocol rules (e.g. two commands outstanding)."""


class RemoteProtocolError(ModemError):
    """The modem sent bytes that cannot be parsed or that overflow the receive buffer."""


class CommandError(ModemError):
    """A command finished with a final result other than OK."""

    def __init__(self, command: str, result: str) -> None:
        super().__init__(f"{command!r} failed: {result}")
        self.command = command
        self.result = result


class CommandNotSupported(CommandError):
    """`ERROR` or Huawei's `COMMAND NOT SUPPORT`."""


class CallFailed(CommandError):
    """A call-progress final result: NO CARRIER, BUSY, NO ANSWER, NO DIALTONE."""


class CmsError(CommandError):
    """`+CMS ERROR: <n>` from the SMS layer (3GPP TS 27.005 §3.2.5)."""

    def __init__(self, command: str, result: str, code: int | None) -> None:
        super().__init__(command, result)
        self.code = code


class CmeError(CommandError):
    """`+CME ERROR: <n|text>` from the mobile equipment (3GPP TS 27.007 §9.2)."""

    def __init__(self, command: str, result: str, code: int | None, text: str) -> None:
        super().__init__(command, result)
        self.code = code
        self.text = text


class SimNotInserted(CmeError):
    """CME 10: no SIM in the selected slot."""


class SimPinRequired(CmeError):
    """CME 11/17: the SIM wants its PIN."""


class SimPukRequired(CmeError):
    """CME 12/18: the SIM is blocked and wants its PUK."""


class SimFailure(CmeError):
    """CME 13: the SIM does not answer properly."""


class SimBusy(CmeError):
    """CME 14: the SIM is initialising; retry in a moment."""


class NoNetworkService(CmeError):
    """CME 30/31/32: no network service, network timeout, emergency calls only."""


class TransportError(ModemError):
    """The serial port could not carry the exchange."""


class PortNotFound(TransportError):
    """The device path does not exist."""


class PortBusy(TransportError):
    """Another process holds the port open exclusively."""


class PortClosed(TransportError):
    """The device went away while open (unplug or USB re-enumeration)."""


class CommandTimeout(TransportError):
    """No final result arrived within the command's timeout."""


class NotAModem(CommandTimeout):
    """Nothing on this port answers `AT`."""


class NoNetwork(ModemError):
    """The SIM is not registered on any network."""


class RecoveryFailed(ModemError):
    """Every step of the recovery ladder failed; a person must look at the modem."""


class FeatureNotAvailable(ModemError):
    """The modem profile does not offer this feature."""
