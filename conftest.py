"""Test tiers: folder decides the marker; hil tests need a hardware description."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hil-hardware",
        metavar="FILE",
        default=os.environ.get("CALLMESH_HIL_HARDWARE"),
        help="YAML file describing real hardware for hil_tests/ (or $CALLMESH_HIL_HARDWARE)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    hardware = config.getoption("--hil-hardware")
    skip_hil = pytest.mark.skip(reason="no hardware description: pass --hil-hardware FILE")
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT).parts
        if parts[0] == "hil_tests":
            item.add_marker(pytest.mark.hil)
            if not hardware:
                item.add_marker(skip_hil)
        elif parts[:2] == ("tests", "integration"):
            item.add_marker(pytest.mark.integration)
        elif parts[:2] == ("tests", "unit"):
            item.add_marker(pytest.mark.unit)
        elif parts[:2] == ("tests", "e2e"):
            item.add_marker(pytest.mark.e2e)
