"""Fixtures shared by the integration tests that need the built Debian packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import ROOT
from tests.release_key import ReleaseKey


@pytest.fixture(scope="session")
def callmesh_debs(
    tmp_path_factory: pytest.TempPathFactory, release_signer: ReleaseKey
) -> Iterator[list[Path]]:
    """The packages ``image/build-deb`` makes, built once for the whole test session.

    Signed by the session's release key, which the callmesh package then trusts.
    """
    out = tmp_path_factory.mktemp("debs")
    started = time.monotonic()
    built = subprocess.run(
        [str(ROOT / "image" / "build-deb"), "--sign-key", release_signer.fingerprint, str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, **release_signer.env},
    )
    assert built.returncode == 0, f"image/build-deb failed:\n{built.stderr[-4000:]}"
    print(f"\nimage/build-deb: {time.monotonic() - started:.0f} s")
    try:
        yield sorted(out.glob("*.deb"))
    finally:
        shutil.rmtree(out)
