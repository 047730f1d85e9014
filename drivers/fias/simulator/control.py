"""HTTP control of the PMS simulator, on 127.0.0.1 only (documented in docs/hotel.md).

``GET /state`` returns rooms, link state, every record received and the bookings.
``POST`` routes script the PMS; bodies are JSON. Errors answer ``{"error_id", "message"}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from drivers.daemon.control_http import JsonHandler, LoopbackControlServer
from drivers.fias.simulator.core import ANSWER_MODES, PmsCore, Reply
from drivers.fias.simulator.server import PmsSimulator

RoomAction = Callable[[PmsCore, str, dict[str, Any]], list[Reply]]

ROOM_ACTIONS: dict[str, RoomAction] = {
    "check-in": lambda c, r, b: c.check_in(r, str(b["name"]), str(b.get("language", "EA"))),
    "check-out": lambda c, r, _b: c.check_out(r),
    "wake-up": lambda c, r, b: c.wake_up(r, str(b["date"]), str(b["time"])),
}


def _answers(core: PmsCore, body: dict[str, Any]) -> list[Reply]:
    mode = str(body.get("mode", "normal"))
    if mode not in ANSWER_MODES:
        raise ValueError(f"mode {mode!r}: one of {', '.join(ANSWER_MODES)}")
    core.answer_mode = mode  # type: ignore[assignment]
    core.answer_delay = float(body.get("delay", core.answer_delay))
    return []


def _add_rooms(core: PmsCore, body: dict[str, Any]) -> list[Reply]:
    for room in body["rooms"]:
        core.rooms.setdefault(str(room), [])
    return []


ACTIONS: dict[str, Callable[[PmsCore, dict[str, Any]], list[Reply]]] = {
    "rooms": _add_rooms,
    "answers": _answers,
    "night-audit/start": lambda c, _b: c.set_night_audit(True),
    "night-audit/end": lambda c, _b: c.set_night_audit(False),
    "link/end": lambda c, b: c.link_end(b.get("restart_after")),
}


class ControlServer(LoopbackControlServer):
    """Serves the control interface in a background thread."""

    def __init__(self, simulator: PmsSimulator, port: int = 0) -> None:
        super().__init__(_handler_for(simulator), port, "pmssim-http")


def _route(simulator: PmsSimulator, path: str, body: dict[str, Any]) -> object:
    parts = path.strip("/").split("/")
    if path.strip("/") == "link/drop":
        return {"dropped": simulator.drop()}
    if path.strip("/") == "link/raw":
        return {"sent": simulator.send_raw(str(body["data"]).encode("latin-1"))}
    if len(parts) == 3 and parts[0] == "rooms" and parts[2] in ROOM_ACTIONS:
        action, room = ROOM_ACTIONS[parts[2]], parts[1]
        return {"sent": simulator.act(lambda core: action(core, room, body))}
    general = ACTIONS.get(path.strip("/"))
    if general is None:
        raise LookupError(path)
    return {"sent": simulator.act(lambda core: general(core, body))}


def _handler_for(simulator: PmsSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def do_GET(self) -> None:
            if self.path.strip("/") != "state":
                self._send(404, {"error_id": "not-found", "message": f"no route {self.path}"})
                return
            state = simulator.query(PmsCore.snapshot)
            links = {"connected": simulator.connected, "connections": simulator.connections}
            self._send(200, {**state, **links, "port": simulator.port})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                result = _route(simulator, self.path, body)
            except json.JSONDecodeError as err:
                self._send(400, {"error_id": "bad-json", "message": str(err)})
            except LookupError:
                self._send(404, {"error_id": "not-found", "message": f"no route {self.path}"})
            except (ValueError, TypeError) as err:
                self._send(400, {"error_id": "bad-request", "message": str(err)})
            else:
                self._send(200, {"ok": True, "result": result})

    return Handler
