"""OpenPGP signatures of release checksum files, checked with Debian's ``gpgv``.

A release publishes its checksums (``SHA256SUMS``, ``IMAGE.img.sha256``) with a detached
signature beside them (``FILE.asc``, armored, or ``FILE.sig``, binary) made by the
release key. A box trusts the keys in ``/etc/callmesh/trusted.gpg.d/*.gpg`` (binary
OpenPGP keyrings, ``gpg --export KEY``); the ``callmesh`` package built with a release key
ships that key there.

The caller reads the checksum file once and hands its bytes here: ``gpgv`` checks exactly
those bytes (copied into a private directory), so the file cannot change between the
check and its use. ``gpgv`` runs with an empty home directory and only the trusted
keyrings, so no user keyring is ever consulted.

Errors (each carries a stable ``error_id``)::

    SignatureError
        signature-missing     no FILE.asc or FILE.sig beside the checksum file
        no-trusted-keys       the trusted key directory holds no keyring
        signature-bad         signed by a trusted key, but not these bytes (tampered)
        signature-untrusted   signed by a key that is not trusted here (or expired,
                              or revoked)
        signature-invalid     the signature file is not an OpenPGP signature
        gpgv-missing          gpgv is not installed
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

DEFAULT_TRUSTED = Path("/etc/callmesh/trusted.gpg.d")
SIGNATURE_SUFFIXES = (".asc", ".sig")
_TIMEOUT = 60.0


class SignatureError(Exception):
    """The checksum file is not signed by a trusted key; ``error_id`` is stable."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


def signature_of(path: Path) -> Path:
    """The detached signature published beside ``path``."""
    for suffix in SIGNATURE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    raise SignatureError(
        "signature-missing",
        f"{path} has no signature ({path.name}.asc or {path.name}.sig beside it): "
        "fetch the release's signature too, or ask for a signed release",
    )


def verify(data: bytes, path: Path, trusted: Path = DEFAULT_TRUSTED) -> str:
    """Check that ``data`` (read from ``path``) is signed by a key in ``trusted``.

    Returns the signing key's fingerprint.
    """
    signature = signature_of(path)
    keyrings = trusted_keyrings(trusted)
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise SignatureError("gpgv-missing", "gpgv is not installed: apt-get install gpgv")
    with tempfile.TemporaryDirectory(prefix="callmesh-gpgv-") as home:
        copy = Path(home, "data")
        copy.write_bytes(data)
        shutil.copyfile(signature, Path(home, "signature"))
        argv = [gpgv, "--homedir", home, "--status-fd", "1"]
        argv += [arg for ring in keyrings for arg in ("--keyring", str(ring))]
        done = subprocess.run(
            [*argv, str(Path(home, "signature")), str(copy)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    return _verdict(done.stdout, path, signature, trusted)


def trusted_keyrings(trusted: Path) -> list[Path]:
    """The keyrings in the trusted directory (absolute: gpgv reads others from its home)."""
    rings = sorted(trusted.resolve().glob("*.gpg")) if trusted.is_dir() else []
    if not rings:
        raise SignatureError(
            "no-trusted-keys",
            f"no trusted release key in {trusted} (*.gpg): install the callmesh package "
            "built with the release key, or put the key there (gpg --export KEY > "
            f"{trusted}/release.gpg)",
        )
    return rings


def _verdict(status: str, path: Path, signature: Path, trusted: Path) -> str:
    """The signer's fingerprint from gpgv's status lines, or the reason there is none."""
    words = [line.split()[1:] for line in status.splitlines() if line.startswith("[GNUPG:] ")]
    found = {fields[0]: fields[1:] for fields in words if fields}
    if "VALIDSIG" in found and "GOODSIG" in found and found["VALIDSIG"]:
        return found["VALIDSIG"][0]
    if "BADSIG" in found:
        raise SignatureError(
            "signature-bad",
            f"{path} does not match its signature {signature}: it was changed after "
            "signing or is not this release; fetch the release again",
        )
    if found.keys() & {"NO_PUBKEY", "ERRSIG", "EXPKEYSIG", "REVKEYSIG"}:
        raise SignatureError(
            "signature-untrusted",
            f"{signature} is made by a key that is not trusted here ({trusted}): use a "
            "release signed by the callmesh release key",
        )
    raise SignatureError(
        "signature-invalid", f"{signature} is not an OpenPGP signature of {path.name}"
    )
