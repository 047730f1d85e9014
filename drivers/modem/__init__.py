"""callmesh modem driver: AT protocol core, serial transport, model profiles, operations,
voice port, and a simulator (:mod:`drivers.modem.simulator`).

The appliance uses :class:`ModemDriver` (configured by :class:`ModemConfig`) and reads its
events from :meth:`ModemDriver.subscribe`.
"""

from drivers.modem.calls import CallEvent
from drivers.modem.counters import ModemCounters
from drivers.modem.driver import ModemConfig, ModemDriver
from drivers.modem.info import Identity, NetworkInfo, SimInfo
from drivers.modem.messaging import SmsReceived
from drivers.modem.profiles import PROFILES, ModemProfile
from drivers.modem.session import EventStream, ModemStateChanged
from drivers.modem.transport import Timeouts
from drivers.modem.urcs import CallState, DtmfReceived, RegistrationChanged, SimStatus
from drivers.modem.voice import VoicePort

__all__ = [
    "PROFILES",
    "CallEvent",
    "CallState",
    "DtmfReceived",
    "EventStream",
    "Identity",
    "ModemConfig",
    "ModemCounters",
    "ModemDriver",
    "ModemProfile",
    "ModemStateChanged",
    "NetworkInfo",
    "RegistrationChanged",
    "SimInfo",
    "SimStatus",
    "SmsReceived",
    "Timeouts",
    "VoicePort",
]
