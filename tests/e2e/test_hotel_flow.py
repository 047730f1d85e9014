"""The demo's hotel as the front desk and a guest meet it.

The PMS simulator's HTTP control (its URL is in the manifest) checks a guest in and out,
as reception would in the PMS; the room's phone, registered with the credentials the
manifest lists, shows the guest's name at the front desk and may call out only while the
guest is in. Outside calls break out through the SIM gateway's GSM channels and are
charged to the guest's folio at the PMS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.e2e.demo import Demo, eventually, hang_up, registered

OUTSIDE = "0301234567"
GUEST = "Guest, Mr."


def gsm_answers(demo: Demo) -> None:
    """Every simulated modem's far end answers, and the gateway has a channel up."""
    for index in range(len(demo.services["modems"]["modems"])):
        demo.modems("far-end", index, {"outcome": "answer", "answer_after": 0.3})
    with demo.api("gateway") as gateway:
        eventually(
            lambda: any(
                c["registered"] and c["worker_alive"]
                for c in gateway.get("/api/v1/gsm/channels").json().get("channels", [])
            ),
            30,
            "a GSM channel at the gateway",
        )


def charges(demo: Demo, room: str) -> list[dict[str, Any]]:
    """The call charges (``PTT`` postings) the PMS booked to ``room``'s folio."""
    state = httpx.get(f"{demo.services['pms']['control']}/state", timeout=5).json()
    return [p for p in state["postings"] if p["room"] == room and "|PTT|" in p["record"]]


def test_a_guest_checked_in_at_the_pms_is_named_at_the_front_desk_and_check_out_bars_the_line(
    demo: Demo, tmp_path: Path
) -> None:
    hotel: dict[str, Any] = demo.services["hotel"]["hotel"]
    room, desk_number = hotel["rooms"][0], hotel["front_desk"]

    def guests() -> list[Any]:
        found: list[Any] = demo.hotel_room(room["room"])["guests"]
        return found

    gsm_answers(demo)
    demo.pms(f"rooms/{room['room']}/check-in", {"name": GUEST, "language": "EA"})
    eventually(guests, 15, "the hotel to apply the check-in")
    specs = (("hotel", room["extension"], 600), ("hotel", desk_number, 1000))
    with registered(demo, tmp_path, *specs) as (guest, desk):
        guest.send("call", to=desk_number)
        incoming = desk.answer(timeout=15)
        assert incoming["remote"].startswith(f'"{GUEST}" <sip:{room["extension"]}@'), incoming
        guest.state("CONFIRMED")
        hang_up(guest, desk)

        guest.send("call", to=OUTSIDE)
        guest.state("CONFIRMED", timeout=20)
        hang_up(guest)
        charge = eventually(lambda: charges(demo, room["room"]), 15, "the call's charge at the PMS")
        assert f"|DD{OUTSIDE}|" in charge[0]["record"], charge

        demo.pms(f"rooms/{room['room']}/check-out", {})
        eventually(lambda: not guests(), 15, "the hotel to apply the check-out")
        guest.send("call", to=OUTSIDE)
        assert guest.state("DISCONNECTED", timeout=15)["code"] == 403
