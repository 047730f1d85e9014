"""The demo's hotel: its rooms and front desk, the PMS simulator, and the ``hotel:`` section.

Rooms 0101-0104 are extensions 4101-4104, the front desk is 4000. The PMS is the project's
simulator (``callmesh pms-simulator``, docs/hotel.md), on loopback with an HTTP control to
check guests in and out, request wake-up calls and run a night audit. Every room starts
vacant, so its phone reaches the front desk but no outside number until a guest checks in.
The codes a room's phone dials (``CODES``, named in the manifest) are the defaults; a room
with DND set rings the front desk instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FRONT_DESK = ("4000", "Front desk")
ROOMS = (("0101", "4101"), ("0102", "4102"), ("0103", "4103"), ("0104", "4104"))
HOTEL_EXTENSIONS = (FRONT_DESK, *((ext, f"Room {room}") for room, ext in ROOMS))
SIMULATOR_READY = "pms.json"
CODES = {"room_status": "*7", "minibar": "*8", "wake_up": "*55", "wake_up_clear": "*56",
         "dnd_on": "*65", "dnd_off": "*66"}  # fmt: skip


def simulator_args(root: Path, fias_port: int, control_port: int) -> list[str]:
    """``callmesh pms-simulator`` arguments: the demo's rooms, both ports, the ready file."""
    rooms = ",".join(room for room, _ in ROOMS)
    return ["--port", str(fias_port), "--control-port", str(control_port), "--rooms", rooms,
            "--json", str(root / SIMULATOR_READY)]  # fmt: skip


def hotel_section(fias_port: int) -> dict[str, Any]:
    """The hotel appliance's ``hotel:`` settings: the PMS link, the rooms, the front desk."""
    desk = FRONT_DESK[0]
    return {
        "pms": {"host": "127.0.0.1", "port": fias_port, "reconnect_min_s": 0.5,
                "reconnect_max_s": 5.0},
        "rooms": [{"room": room, "extension": ext} for room, ext in ROOMS],
        "vacant_redirect": desk,
        "wake_up": {"front_desk": desk},
        "codes": dict(CODES),
        "dnd": {"action": "front-desk", "front_desk": desk},
    }  # fmt: skip


def room_extras(passwords: dict[str, str], control: str) -> dict[str, Any]:
    """What the manifest says about the hotel: rooms with SIP credentials, desk, PMS control."""
    return {
        "front_desk": FRONT_DESK[0],
        "rooms": [{"room": room, "extension": ext, "password": passwords[ext]}
                  for room, ext in ROOMS],
        "pms_control": control,
        "codes": dict(CODES),
    }  # fmt: skip
