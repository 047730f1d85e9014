"""HTTP control interface of the simulator, on 127.0.0.1 only (documented in docs/modem.md).

``GET /modems`` lists the modems; ``POST /modems/<i>/<action>`` with a JSON body scripts the
far end or injects a fault. Errors answer ``{"error_id": ..., "message": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from drivers.daemon.control_http import JsonHandler, LoopbackControlServer
from drivers.modem.simulator.api import ModemSimulator

Action = Callable[[ModemSimulator, int, dict[str, Any]], object]

ACTIONS: dict[str, Action] = {
    "call": lambda s, i, b: {
        "idx": s.incoming_call(
            i, str(b["from"]), float(b.get("ring_seconds", 30.0)), b.get("hangup_after")
        )
    },
    "hangup": lambda s, i, _b: {"hung_up": s.hang_up(i)},
    "far-end": lambda s, i, b: s.set_far_end(
        i, str(b.get("outcome", "answer")), float(b.get("answer_after", 0.5)), b.get("hangup_after")
    ),
    "dtmf": lambda s, i, b: s.send_dtmf(i, str(b["digits"])),
    "tone": lambda s, i, b: s.play_tone(i, b.get("hz")),
    "loopback": lambda s, i, b: s.set_loopback(i, bool(b.get("on", True))),
    "sms": lambda s, i, b: {"stored": s.deliver_sms(i, str(b["from"]), str(b["text"]))},
    "ussd": lambda s, i, b: s.set_ussd_reply(i, str(b["code"]), str(b["reply"])),
    "wedge": lambda s, i, _b: s.wedge(i),
    "unplug": lambda s, i, b: s.unplug(i, float(b.get("replug_after", 1.0))),
    "replug": lambda s, i, _b: s.replug(i),
    "sim": lambda s, i, b: s.set_sim_present(i, bool(b.get("present", True))),
    "network": lambda s, i, b: s.set_network(i, bool(b.get("available", True))),
    "faults": lambda s, i, b: s.set_faults(i, list(b.get("faults", []))),
}


class ControlServer(LoopbackControlServer):
    """Serves the control interface in a background thread."""

    def __init__(self, simulator: ModemSimulator, port: int = 0) -> None:
        super().__init__(_handler_for(simulator), port, "modemsim-http")


def _handler_for(simulator: ModemSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if parts == ["modems"]:
                self._send(200, {"modems": simulator.info()})
            elif len(parts) == 2 and parts[0] == "modems" and parts[1].isdigit():
                index = int(parts[1])
                self._run(
                    lambda: {
                        **simulator.info()[index],
                        "calls": simulator.calls(index),
                        "record": {
                            k: v
                            for k, v in vars(simulator.record(index)).items()
                            if not isinstance(v, bytes)
                        },
                    }
                )
            else:
                self._send(404, {"error_id": "not-found", "message": f"no route {self.path}"})

        def do_POST(self) -> None:
            parts = self.path.strip("/").split("/")
            action = ACTIONS.get(parts[2]) if len(parts) == 3 else None
            if action is None or parts[0] != "modems" or not parts[1].isdigit():
                self._send(404, {"error_id": "not-found", "message": f"no route {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError as err:
                self._send(400, {"error_id": "bad-json", "message": str(err)})
                return
            self._run(lambda: action(simulator, int(parts[1]), body))

        def _run(self, work: Callable[[], object]) -> None:
            try:
                result = work()
            except (KeyError, ValueError, TypeError, IndexError) as err:
                self._send(400, {"error_id": "bad-request", "message": str(err)})
                return
            self._send(200, {"ok": True, "result": result})

    return Handler
