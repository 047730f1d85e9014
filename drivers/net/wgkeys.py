"""WireGuard keys: base64 Curve25519 keys, made and checked with libzmq's Curve25519.

A WireGuard key is 32 bytes in base64 (44 characters). CurveZMQ's keys are the same
Curve25519 keys in z85, so libzmq (already a dependency) makes and derives them.
"""

from __future__ import annotations

import base64
import binascii

import zmq
from zmq.utils import z85

KEY_BYTES = 32


def check_key(text: str) -> str:
    """``text`` if it is a base64 WireGuard key; ValueError naming what is wrong."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64 (a WireGuard key looks like `wg genkey` output)") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"decodes to {len(raw)} bytes, a WireGuard key has {KEY_BYTES}")
    return text.strip()


def generate_private() -> str:
    """A new private key, clamped as ``wg genkey`` does."""
    _, secret = zmq.curve_keypair()
    raw = bytearray(z85.decode(secret))
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return base64.b64encode(bytes(raw)).decode()


def public_of(private: str) -> str:
    """The public key of ``private`` (what ``wg pubkey`` prints)."""
    raw = base64.b64decode(check_key(private))
    public = zmq.curve_public(z85.encode(raw))
    return base64.b64encode(z85.decode(public)).decode()
