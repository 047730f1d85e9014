"""The demo topology as a user meets it: its manifest, phones registered to it, HQ's API.

Everything is read from the manifest ``callmesh demo`` writes, exactly as a person would
configure a softphone or an HTTP client from it.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from tests.integration.pbx.harness import Phone


class Demo:
    """One running demo deployment, described by its manifest."""

    def __init__(self, demo_dir: Path) -> None:
        self.dir = demo_dir
        manifest = json.loads((demo_dir / "manifest.json").read_text())
        self.services: dict[str, Any] = manifest["services"]

    def phone(self, site: str, number: str, tone: int, root: Path) -> Phone:
        """A pjsua2 phone registering ``number`` at ``site``'s SIP address from the manifest.

        It sends a sine of ``tone`` Hz and records what it hears under ``root``.
        """
        sip = self.services[site]["sip"]
        edge = SimpleNamespace(sip_port=int(sip["address"].rsplit(":", 1)[1]))
        password = {e["number"]: e["password"] for e in sip["extensions"]}[number]
        return Phone(edge, number, tone, root, password, sip["domain"])

    def api(self, site: str) -> httpx.Client:
        """An HTTP client for ``site``'s API (HQ is ``aggregator``) with its admin token."""
        service = self.services[site]
        token = service["api_tokens"][0]["token"]
        return httpx.Client(
            base_url=service["http"], headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def modems(self, action: str, index: int, body: dict[str, Any]) -> None:
        """Script the simulated modems' far end through their HTTP control."""
        control = self.services["modems"]["control"]
        answer = httpx.post(f"{control}/modems/{index}/{action}", json=body, timeout=5)
        answer.raise_for_status()

    def pms(self, action: str, body: dict[str, Any]) -> None:
        """Script the hotel's PMS simulator over its HTTP control (``rooms/0101/check-in``)."""
        control = self.services["hotel"]["hotel"]["pms_control"]
        answer = httpx.post(f"{control}/{action}", json=body, timeout=5)
        answer.raise_for_status()

    def hotel_room(self, room: str) -> dict[str, Any]:
        """The hotel appliance's view of ``room`` (guests, class of service, wake-ups)."""
        with self.api("hotel") as hotel:
            rooms: list[dict[str, Any]] = hotel.get("/api/v1/hotel/rooms").json()["rooms"]
        return next(r for r in rooms if r["room"] == room)

    def hq_cdrs(self, **params: str) -> list[dict[str, Any]]:
        """CDRs at HQ matching ``params``."""
        with self.api("aggregator") as hq:
            found: list[dict[str, Any]] = hq.get("/api/v1/cdrs", params=params).json()["cdrs"]
        return found

    def hq_recording(self, site: str, recording_id: str) -> bytes | None:
        """The WAV HQ serves for a recording, or None while it has none."""
        with self.api("aggregator") as hq:
            answer = hq.get(f"/api/v1/recordings/{site}/{recording_id}")
        return answer.content if answer.status_code == 200 else None


@contextlib.contextmanager
def registered(demo: Demo, root: Path, *specs: tuple[str, str, int]) -> Iterator[list[Phone]]:
    """Phones (site, number, tone) registered for a ``with`` block; always closed."""
    started = [demo.phone(site, number, tone, root) for site, number, tone in specs]
    try:
        for phone in started:
            assert phone.registered(timeout=20) == 200
        yield started
    finally:
        for phone in started:
            phone.close()


def hang_up(caller: Phone, *others: Phone) -> None:
    """The caller hangs up; it and every other phone see the call end."""
    caller.send("hangup")
    caller.state("DISCONNECTED")
    for phone in others:
        phone.state("DISCONNECTED", timeout=15)


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.25)


def wav_channels(data: bytes) -> tuple[int, int]:
    """Channel count and frame count of a WAV held in memory."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.getnchannels(), wav.getnframes()
