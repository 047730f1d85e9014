"""The upgrade's exception tree (drawn in ``appliance/upgrade/__init__.py``)."""

from __future__ import annotations


class UpgradeError(Exception):
    """The upgrade stopped; ``error_id`` is stable and ``next_step`` says what to do."""

    def __init__(self, error_id: str, message: str, next_step: str) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.next_step = next_step


class ReleaseError(UpgradeError):
    """The packages cannot be installed here; nothing was changed."""


class HealthError(UpgradeError):
    """The installed release is not healthy."""
