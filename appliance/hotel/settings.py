"""Settings of the hotel profile (``hotel:`` in the appliance configuration)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from appliance.pbx.settings import CosLevel
from drivers.daemon.settings_base import Section

# espeak-ng voices for the FIAS languages (GL).
VOICES = {"EA": "en", "GE": "de", "FR": "fr", "IT": "it", "SP": "es", "JA": "ja"}
ROOM_NUMBER = r"^[^|\x00-\x1f\x7f]{1,8}$"


class PmsSettings(Section):
    """The FIAS link to the PMS's interface (IFC): TCP to ``host:port`` or a serial port."""

    host: str = "127.0.0.1"
    port: int = Field(5010, ge=1, le=65535)
    serial_port: str | None = Field(None, description="RS-232 device instead of TCP")
    connect_timeout_s: float = Field(5.0, gt=0)
    answer_timeout_s: float = Field(30.0, ge=1, description="spec: at least 30 s")
    alive_interval_s: float = Field(300.0, ge=300, description="spec: not below 5 min")
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)
    retry_after_s: float = Field(30.0, gt=0, description="wait after an NA/RY/BY answer")
    resync_when_empty: bool = Field(True, description="DR once while no room data is stored")
    vendor_version: str = Field("1.0", pattern=r"^[0-9A-Za-z.]{1,16}$")

    @model_validator(mode="after")
    def _backoff(self) -> PmsSettings:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("hotel.pms.reconnect_max_s must be at least reconnect_min_s")
        return self


class RoomSettings(Section):
    """A guest room: its FIAS room number (leading zeros significant) and its extension."""

    room: str = Field(pattern=ROOM_NUMBER)
    extension: str = Field(pattern=r"^[0-9]{1,16}$")


class RoomCodeSettings(Section):
    """Codes dialled from a room's phone: housekeeping's room status, minibar consumption,
    wake-up calls and the guest's DND.

    ``accepted`` and ``invalid`` are targets as in the dial plan (``announce:<prompt>`` or
    ``ivr:<flow>``, e.g. a spoken TTS flow) the call is sent to afterwards; unset, the call
    is answered 603 (done) or 404 ``invalid-code``.
    """

    room_status: str = Field("*7", pattern=r"^\*[0-9]{1,3}$", description="+ RS (1-2 digits)")
    statuses: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    minibar: str = Field("*8", pattern=r"^\*[0-9]{1,3}$", description="+ article [* quantity]")
    wake_up: str = Field("*55", pattern=r"^\*[0-9]{1,3}$", description="+ hhmm: next hh:mm")
    wake_up_clear: str = Field("*56", pattern=r"^\*[0-9]{1,3}$")
    dnd_on: str = Field("*65", pattern=r"^\*[0-9]{1,3}$", description="the guest's DND on")
    dnd_off: str = Field("*66", pattern=r"^\*[0-9]{1,3}$", description="the guest's DND off")
    minibar_prices: dict[str, int] = Field(
        default_factory=dict, description="article -> cents; empty: the PMS prices (PTM)"
    )
    max_quantity: int = Field(20, ge=1, le=999)
    accepted: str | None = None
    invalid: str | None = None

    @model_validator(mode="after")
    def _distinct(self) -> RoomCodeSettings:
        codes = [self.room_status, self.minibar, self.wake_up, self.wake_up_clear, self.dnd_on,
                 self.dnd_off]  # fmt: skip
        for i, first in enumerate(codes):
            for second in codes[i + 1 :]:
                if first.startswith(second) or second.startswith(first):
                    raise ValueError(f"codes {first} and {second} overlap")
        return self


class TimeBand(Section):
    """A per-minute price from ``start`` to ``end`` (local time, ``HH:MM``; may cross midnight)."""

    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    per_minute: int = Field(ge=0, description="cents per started minute")


class Tariff(Section):
    """The price of calls whose dialled digits start with ``prefix`` (longest prefix wins)."""

    prefix: str = Field(pattern=r"^[0-9]{0,20}$")
    zone: str = Field(min_length=1, max_length=40, pattern=r"^[^|\x00-\x1f\x7f]+$")
    per_minute: int = Field(ge=0, description="cents per started minute outside any band")
    bands: list[TimeBand] = Field(default_factory=list)
    minimum: int = Field(0, ge=0, description="cents: the least a call costs")
    surcharge: int = Field(0, ge=0, description="cents added to every call")


class ChargeSettings(Section):
    """How calls from rooms are charged: one method per property, as the PMS is configured.

    ``pms``: posted as ``PTT`` with duration and digits for the PMS to rate; ``tariff``:
    rated here by ``tariffs`` and posted as ``PTC`` with ``TA``.
    """

    method: Literal["pms", "tariff"] = "pms"
    tariffs: list[Tariff] = Field(default_factory=list)

    @model_validator(mode="after")
    def _catch_all(self) -> ChargeSettings:
        prefixes = [t.prefix for t in self.tariffs]
        doubled = sorted({p for p in prefixes if prefixes.count(p) > 1})
        if doubled:
            raise ValueError(f"hotel.charges.tariffs: prefix {', '.join(doubled)} listed twice")
        if self.method == "tariff" and "" not in prefixes:
            raise ValueError(
                'hotel.charges.tariffs: method tariff needs a catch-all tariff (prefix "")'
            )
        return self


class WakeUpSettings(Section):
    """Wake-up calls: placed by a media worker with a spoken message, retried, reported once."""

    retries: int = Field(2, ge=0, le=10, description="further attempts after the first")
    retry_interval_s: float = Field(300.0, ge=5, le=3600)
    snooze_s: float = Field(300.0, ge=5, le=3600, description="after the guest pressed 2")
    attempt_timeout_s: float = Field(120.0, ge=10, le=600, description="a call still open ends")
    late_limit_s: float = Field(1800.0, ge=60, description="older due calls are reported NR")
    front_desk: str | None = Field(None, description="extension called when one fails")
    messages: dict[str, str] = Field(
        default_factory=lambda: {
            "EA": "Good morning. This is your wake-up call. Press 1 to confirm, or 2 to snooze."
        },
        description="by FIAS language (GL); EA is the default",
    )
    voices: dict[str, str] = Field(
        default_factory=lambda: dict(VOICES),
        description="espeak-ng voice by FIAS language",
    )

    @model_validator(mode="after")
    def _default_message(self) -> WakeUpSettings:
        if "EA" not in self.messages:
            raise ValueError("hotel.wake_up.messages needs the default EA message")
        return self


class DndSettings(Section):
    """What a call to a room with DND set (``RE …|DNY|`` from the PMS, or the guest's
    ``hotel.codes.dnd_on``) gets instead, and the door-sign statuses the PMS is sent.

    ``busy``: 486 ``room-dnd``; ``front-desk``: the ``front_desk`` extension rings instead.
    Wake-up calls still ring the room. FIAS cannot carry ``DN`` to the PMS, so DND set or
    cleared from the room's phone goes to it as the door-sign room status ``RS``.
    """

    action: Literal["busy", "front-desk"] = "busy"
    front_desk: str | None = Field(None, pattern=r"^[0-9]{1,16}$")
    status_on: int = Field(8, ge=1, le=99, description="RS sent for DND on (FIAS: 8)")
    status_off: int = Field(
        10, ge=1, le=99, description="RS sent for DND off (FIAS: 10, guest-service status off)"
    )

    @model_validator(mode="after")
    def _front_desk(self) -> DndSettings:
        if self.action == "front-desk" and self.front_desk is None:
            raise ValueError("hotel.dnd: action front-desk needs hotel.dnd.front_desk")
        return self


class HotelSettings(Section):
    """The hotel profile; ``pms`` unset means no PMS link."""

    pms: PmsSettings | None = None
    rooms: list[RoomSettings] = Field(default_factory=list)
    checked_in_cos: CosLevel = Field(
        "international", description="class of service of a check-in that names no CS"
    )
    emergency_numbers: list[str] = Field(
        default_factory=lambda: ["112"], description="always allowed from a room"
    )
    vacant_redirect: str | None = Field(
        None, description="extension (reception) that takes calls to a vacant room"
    )
    codes: RoomCodeSettings = RoomCodeSettings()
    charges: ChargeSettings = ChargeSettings()
    wake_up: WakeUpSettings = WakeUpSettings()
    dnd: DndSettings = DndSettings()

    @model_validator(mode="after")
    def _unique_rooms(self) -> HotelSettings:
        for what in ("room", "extension"):
            values = [getattr(room, what) for room in self.rooms]
            doubled = sorted({v for v in values if values.count(v) > 1})
            if doubled:
                raise ValueError(f"hotel.rooms: {what} {', '.join(doubled)} listed twice")
        return self
