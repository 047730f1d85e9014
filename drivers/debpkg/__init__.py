"""The Debian package system and systemd as ``callmesh upgrade`` drives them.

``read_deb`` reads a ``.deb``'s control fields; ``DebianSystem`` asks dpkg what is
installed, installs packages with apt, rebuilds an installed package with dpkg-repack,
restarts and inspects systemd units, probes an HTTP health URL and writes to the
journal. Every command runs with a timeout.

Errors (each carries a stable ``error_id``)::

    PackageSystemError   a command failed, timed out or answered something unreadable
"""

from drivers.debpkg.system import (
    DebianSystem,
    DebInfo,
    PackageSystemError,
    UnitState,
    read_deb,
)

__all__ = ["DebInfo", "DebianSystem", "PackageSystemError", "UnitState", "read_deb"]
