"""CurveZMQ key files: generate a keypair, load public and secret keys.

Key files are ZeroMQ's certificate format (``NAME.key`` holds the public key,
``NAME.key_secret`` both keys; z85 text), so they interoperate with zmq tools.

Exceptions::

    KeyFileError      a key file is missing, unreadable or not a CurveZMQ certificate
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth

Z85_KEY_LENGTH = 40


class KeyFileError(Exception):
    """A key file cannot be used; the message names it and says why."""


def generate(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (mode 0600) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(directory), name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


def load_public(path: Path) -> bytes:
    """The z85 public key in a ``.key`` or ``.key_secret`` file."""
    public, _ = _load(path)
    return public


def load_secret(path: Path) -> tuple[bytes, bytes]:
    """The z85 (public, secret) keys of a ``.key_secret`` file."""
    public, secret = _load(path)
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def check_z85_key(text: str) -> bytes:
    """A z85 public key given as text, validated; raises ValueError when malformed."""
    key = text.encode("ascii", errors="replace")
    if len(key) != Z85_KEY_LENGTH:
        raise ValueError(f"a CurveZMQ key is {Z85_KEY_LENGTH} z85 characters, got {len(key)}")
    try:
        zmq.utils.z85.decode(key)
    except (ValueError, KeyError):
        raise ValueError("not a z85-encoded key") from None
    return key


def _load(path: Path) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise KeyFileError(f"{path}: no such key file (create one with `callmesh keys gen`)")
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as err:
        raise KeyFileError(f"{path}: not a CurveZMQ certificate ({err})") from None
    if public is None:
        raise KeyFileError(f"{path}: no public key in the file")
    return public, secret
