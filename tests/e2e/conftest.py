"""One demo deployment for the whole end-to-end tier, started and stopped like a user would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.demo import Demo
from tests.procs import callmesh


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    demo_dir = tmp_path_factory.mktemp("e2e") / "demo"
    started = callmesh("demo", "--dir", str(demo_dir), timeout=180)
    try:
        assert started.returncode == 0, started.stderr
        yield Demo(demo_dir)
    finally:
        stopped = callmesh("demo", "--dir", str(demo_dir), "--stop", timeout=60)
        assert stopped.returncode == 0, stopped.stderr
