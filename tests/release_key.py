"""OpenPGP release keys made by the tests (never committed): sign checksum files as a build does."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReleaseKey:
    """A signing key in its own GnuPG home; ``fingerprint`` names it to gpg."""

    home: Path
    fingerprint: str

    @property
    def env(self) -> dict[str, str]:
        """The environment entry that points gpg (and image/build-deb) at this key's home."""
        return {"GNUPGHOME": str(self.home)}

    def sign(self, path: Path, suffix: str = ".asc") -> Path:
        """A detached signature of ``path`` beside it (armored for .asc, binary for .sig)."""
        signature = path.with_name(path.name + suffix)
        armor = ["--armor"] if suffix == ".asc" else []
        self._gpg("--yes", *armor, "--local-user", self.fingerprint,
                  "--output", str(signature), "--detach-sign", str(path))  # fmt: skip
        return signature

    def export(self, trusted: Path, name: str = "release.gpg") -> Path:
        """The public key as a binary keyring in the ``trusted`` directory."""
        trusted.mkdir(parents=True, exist_ok=True)
        ring = trusted / name
        ring.write_bytes(self._gpg("--export", self.fingerprint).stdout)
        return ring

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--pinentry-mode", "loopback",
             "--passphrase", "", *args],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done


@contextlib.contextmanager
def release_key(name: str) -> Iterator[ReleaseKey]:
    """A new ed25519 signing key; its gpg-agent is stopped and its home removed afterwards.

    The home is short and under /tmp: gpg-agent's socket path must fit in 108 bytes.
    """
    with tempfile.TemporaryDirectory(prefix="cm-gpg-") as home:
        Path(home).chmod(0o700)
        key = ReleaseKey(Path(home), "")
        try:
            key._gpg("--quick-gen-key", f"{name} <release@callmesh.invalid>",
                     "ed25519", "sign", "never")  # fmt: skip
            listed = key._gpg("--with-colons", "--list-secret-keys").stdout.decode()
            fingerprint = next(
                line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:")
            )
            yield ReleaseKey(Path(home), fingerprint)
        finally:
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"],
                           capture_output=True, timeout=30, check=False)  # fmt: skip
