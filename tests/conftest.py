"""Fixtures shared by the test tiers: the release signing keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.release_key import ReleaseKey, release_key


@pytest.fixture(scope="session")
def release_signer() -> Iterator[ReleaseKey]:
    """The key this test session's releases are signed with (made here, never committed)."""
    with release_key("callmesh test release") as key:
        yield key


@pytest.fixture(scope="session")
def stranger_key() -> Iterator[ReleaseKey]:
    """A signing key that no box trusts."""
    with release_key("not a callmesh release") as key:
        yield key


@pytest.fixture(scope="session")
def trusted_keys(release_signer: ReleaseKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trusted key directory holding the session's release key."""
    trusted = tmp_path_factory.mktemp("trusted") / "trusted.gpg.d"
    release_signer.export(trusted)
    return trusted
