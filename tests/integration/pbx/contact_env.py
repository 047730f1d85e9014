"""The contact centre under test: one appliance with ACD queues, its CTI stream, its agents.

``contact_pbx`` builds and runs the PBX of a contact-centre test module (the ``contact``
section written into the appliance's configuration); a module names that fixture ``site``
and the ``cti`` fixture of ``conftest.py`` subscribes to its CTI event stream. The small
helpers read and drive agents and queues through the local API.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.integration.pbx.harness import (
    API_TOKEN,
    Pbx,
    Phone,
    require_debs,
    started,
    wait_for,
)


class CtiListener:
    """A subscriber of the CTI event stream (SSE), collecting events in a thread."""

    def __init__(self, pbx: Pbx) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{pbx.api_port}/api/v1/contact/events",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        self._response = urllib.request.urlopen(request, timeout=60)
        self.events: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self._response:
                line = raw.decode()
                if line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))
        except (OSError, ValueError, AttributeError):
            return  # closed by ``close`` from the test's thread

    def named(self, name: str, call_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name
                and call_id in (None, e["data"].get("call_id"))]  # fmt: skip

    def close(self) -> None:
        self._response.close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def contact_pbx(
    tmp_path_factory: pytest.TempPathFactory, name: str, contact: dict[str, Any], **pbx: Any
) -> Iterator[Pbx]:
    """A running PBX (``Pbx(root, **pbx)``) with ``contact`` as its contact centre."""
    require_debs()
    root = tmp_path_factory.mktemp(name)
    instance = Pbx(root, **pbx)
    config = yaml.safe_load(instance.config.read_text())
    instance.config.write_text(yaml.safe_dump({**config, "contact": contact}))
    with started(instance):
        yield instance


def agent(pbx: Pbx, number: str, action: str, **body: Any) -> dict[str, Any]:
    status, answer = pbx.api("POST", f"/contact/agents/{number}/{action}", body or None)
    assert status == 200, answer
    result: dict[str, Any] = answer
    return result


def live(pbx: Pbx, queue: str) -> dict[str, Any]:
    status, answer = pbx.api("GET", "/contact/queues")
    assert status == 200, answer
    found: dict[str, Any] = next(q for q in answer["queues"] if q["name"] == queue)
    return found


def agent_state(pbx: Pbx, queue: str, number: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in live(pbx, queue)["agents"] if a["agent"] == number)
    return found


def recorded_s(phone: Phone) -> float:
    return max(0, phone.record.stat().st_size - 44) / 16000 if phone.record.exists() else 0.0


def waiting(pbx: Pbx, queue: str, count: int) -> None:
    wait_for(lambda: len(live(pbx, queue)["waiting"]) == count, 15,
             lambda: f"{live(pbx, queue)}\n{pbx.output()[-3000:]}")  # fmt: skip
