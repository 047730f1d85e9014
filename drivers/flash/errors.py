"""The flash tool's exception tree (drawn in ``drivers/flash/__init__.py``)."""

from __future__ import annotations


class FlashError(Exception):
    """Flashing stopped; ``error_id`` is stable, the message says what to do."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


class ImageError(FlashError):
    """The image cannot be used."""


class TargetError(FlashError):
    """The device must not or cannot be written."""


class VerifyError(FlashError):
    """The device does not hold the image after writing."""
