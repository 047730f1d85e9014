"""Release checksum files are accepted only with a signature by a trusted key (real gpgv)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.signature import SignatureError, verify
from tests.release_key import ReleaseKey

SUMS = b"0" * 64 + b"  callmesh_0.2.0_amd64.deb\n"


@pytest.fixture
def sums(tmp_path: Path) -> Path:
    path = tmp_path / "SHA256SUMS"
    path.write_bytes(SUMS)
    return path


def refused(data: bytes, path: Path, trusted_keys: Path) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(data, path, trusted_keys)
    return caught.value.error_id


@pytest.mark.parametrize("suffix", [".asc", ".sig"])
def test_a_file_signed_by_a_release_signer_is_accepted(
    sums: Path, trusted_keys: Path, release_signer: ReleaseKey, suffix: str
) -> None:
    release_signer.sign(sums, suffix)
    assert verify(SUMS, sums, trusted_keys) == release_signer.fingerprint


def test_bytes_other_than_the_signed_ones_are_refused(
    sums: Path, trusted_keys: Path, release_signer: ReleaseKey
) -> None:
    release_signer.sign(sums)
    tampered = SUMS.replace(b"0" * 64, b"1" + b"0" * 63)
    assert refused(tampered, sums, trusted_keys) == "signature-bad"


def test_a_signature_by_a_key_not_trusted_here_is_refused(
    sums: Path, trusted_keys: Path, stranger_key: ReleaseKey
) -> None:
    stranger_key.sign(sums)
    assert refused(SUMS, sums, trusted_keys) == "signature-untrusted"


def test_a_file_without_a_signature_is_refused(sums: Path, trusted_keys: Path) -> None:
    assert refused(SUMS, sums, trusted_keys) == "signature-missing"


def test_garbage_in_place_of_a_signature_is_refused(sums: Path, trusted_keys: Path) -> None:
    sums.with_name("SHA256SUMS.asc").write_text("not a signature\n")
    assert refused(SUMS, sums, trusted_keys) == "signature-invalid"


def test_without_a_release_signer_nothing_is_accepted(
    sums: Path, tmp_path: Path, release_signer: ReleaseKey
) -> None:
    release_signer.sign(sums)
    assert refused(SUMS, sums, tmp_path / "empty.d") == "no-trusted-keys"
