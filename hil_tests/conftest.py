"""Hardware-in-the-loop fixtures for the modem suite (format in hil_tests/README.md).

The hardware description is the YAML file given by ``--hil-hardware FILE`` or
``CALLMESH_HIL_HARDWARE``. Tests that take ``modem_hardware`` run once per entry of its
``modems`` list. Keys used here: ``at_port`` (required), ``voice_port``, ``profile``,
``sim_pin``, ``test_number`` (a phone that answers), and the optional checks ``imei``,
``manufacturer``, ``sms_number``, ``ussd`` (e.g. ``"*100#"``) and ``sim_slots`` (2 enables SIM
switching).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml


def _hardware_file(config: pytest.Config) -> str | None:
    option: str | None = config.getoption("--hil-hardware", default=None)
    return option or os.environ.get("CALLMESH_HIL_HARDWARE")


def _modems(config: pytest.Config) -> list[dict[str, Any]]:
    path = _hardware_file(config)
    if not path:
        return []
    document = yaml.safe_load(Path(path).read_text()) or {}
    modems = document.get("modems", []) if isinstance(document, dict) else []
    return [m for m in modems if isinstance(m, dict)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One run per modem on the bench; a single skipped run when there is none."""
    if "modem_hardware" not in metafunc.fixturenames:
        return
    modems = _modems(metafunc.config)
    params: list[Any] = modems or [None]
    ids = [str(m.get("at_port", i)) for i, m in enumerate(modems)] or ["no-modem"]
    metafunc.parametrize("modem_hardware", params, ids=ids, indirect=True)


@pytest.fixture
def modem_hardware(request: pytest.FixtureRequest) -> dict[str, Any]:
    """One ``modems`` entry; skipped with the reason when the bench has none."""
    entry: dict[str, Any] | None = request.param
    if entry is None:
        if _hardware_file(request.config):
            pytest.skip("the hardware description lists no modems")
        pytest.skip("no hardware description (use --hil-hardware FILE or CALLMESH_HIL_HARDWARE)")
    if "at_port" not in entry:
        pytest.fail("a modems entry has no at_port")
    if not Path(entry["at_port"]).exists():
        pytest.fail(f"at_port {entry['at_port']} does not exist")
    return entry
