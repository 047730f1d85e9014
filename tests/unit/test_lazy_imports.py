"""What a process loads: modules a configuration does not use stay out of memory.

Each check imports in a fresh interpreter, since this test process has loaded most of
the code already.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def loaded_after(code: str) -> set[str]:
    """The module names a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return set(out.stdout.split())


def under(modules: set[str], *packages: str) -> set[str]:
    """The modules that are one of ``packages`` or inside one of them."""
    return {m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages)}


def test_the_recording_conversion_worker_loads_only_the_decoder() -> None:
    loaded = loaded_after("import appliance.pbx.conversion")
    assert "drivers.sip.recording" in loaded
    heavy = ("scapy", "pydantic", "appliance.settings", "appliance.store", "appliance.sync",
             "appliance.pbx.calls", "appliance.pbx.recordings")  # fmt: skip
    assert not under(loaded, *heavy)


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (a running demo holds 8080)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def built_appliance(data_dir: Path, **sections: Any) -> set[str]:
    """The modules loaded once the appliance's components are built for these settings."""
    config = {"site_id": "b1", "data_dir": str(data_dir), "pbx": {"enabled": True},
              "sync": {"enabled": False}, "http": {"host": "127.0.0.1", "port": free_port()},
              **sections}  # fmt: skip
    return loaded_after(
        "from appliance.service import build\n"
        "from appliance.settings import ApplianceSettings\n"
        f"build(ApplianceSettings.model_validate_json({json.dumps(config)!r}))"
    )


@pytest.fixture(scope="module")
def branch(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """A branch with its PBX, no PMS link, no managed network."""
    return built_appliance(tmp_path_factory.mktemp("branch"), profile="branch")


def test_a_branch_without_a_pms_link_does_not_load_the_hotel(branch: set[str]) -> None:
    assert "appliance.pbx.exchange" in branch
    assert under(branch, "appliance.hotel") == {"appliance.hotel", "appliance.hotel.settings"}


def test_an_unmanaged_network_does_not_load_pyroute2(branch: set[str]) -> None:
    assert not under(branch, "pyroute2", "drivers.net.netlink", "drivers.net.component")


def test_a_hotel_with_a_pms_link_loads_the_hotel(tmp_path: Path) -> None:
    hotel = {"pms": {"host": "127.0.0.1", "port": 5010}}
    loaded = built_appliance(tmp_path, profile="hotel", hotel=hotel)
    assert {"appliance.hotel.pms_link", "appliance.hotel.wiring"} <= loaded


def test_the_media_worker_starts_without_any_service_handler() -> None:
    loaded = loaded_after("import drivers.media.worker")
    handlers = ("gsm", "pcm", "link_port", "ivr", "rooms", "queues", "callbacks", "anchor",
                "supervise", "hangup")  # fmt: skip
    assert "drivers.media.protocol" in loaded
    assert not under(loaded, *(f"drivers.media.{name}" for name in handlers))
