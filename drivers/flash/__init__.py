"""Writing a firmware image to a block device, with progress and read-back verification.

Errors (each carries a stable ``error_id``)::

    FlashError
    ├── ImageError    the image is unreadable, has no checksum, its checksum is not
    │                 signed by a trusted key, or the image does not match it
    ├── TargetError   the device is not a block device, is mounted, holds the running
    │                 system, or is too small
    └── VerifyError   what was read back from the device differs from the image
"""

from drivers.flash.errors import FlashError, ImageError, TargetError, VerifyError
from drivers.flash.image import Image
from drivers.flash.target import Target
from drivers.flash.writer import Progress, verify, write

__all__ = [
    "FlashError",
    "Image",
    "ImageError",
    "Progress",
    "Target",
    "TargetError",
    "VerifyError",
    "verify",
    "write",
]
