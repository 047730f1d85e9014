"""Opening serial devices for the driver: exclusive, non-blocking, with clear errors.

Two locks keep a second process off a modem port: pyserial's ``exclusive`` flock (advisory,
honoured by other callmesh tools and ModemManager) and ``TIOCEXCL`` (refuses further opens by
unprivileged processes). Reads and writes go through the raw fd so the asyncio loop can watch it
with ``add_reader`` instead of parking a thread per port.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import termios

import serial

from drivers.modem.errors import PortBusy, PortNotFound, TransportError

BAUDRATE = 115200  # USB CDC/option ttys ignore it; 115200 is the convention


class SerialLink:
    """An open serial device whose fd is non-blocking."""

    def __init__(self, path: str, port: serial.Serial) -> None:
        self.path = path
        self._port = port
        self.fd: int = port.fileno()

    @classmethod
    def open(cls, path: str) -> SerialLink:
        """Open ``path`` exclusively; raises PortNotFound, PortBusy or TransportError."""
        if not os.path.exists(path):
            raise PortNotFound(f"no such port: {path}")
        port = serial.Serial()
        port.port = path
        port.baudrate = BAUDRATE
        port.timeout = 0
        port.exclusive = True
        try:
            port.open()
        except serial.SerialException as err:
            raise _classify(path, err) from err
        fd = port.fileno()
        fcntl.ioctl(fd, termios.TIOCEXCL)
        os.set_blocking(fd, False)
        port.reset_input_buffer()
        return cls(path, port)

    def close(self) -> None:
        """Release the locks and close; safe to call twice."""
        if not self._port.is_open:
            return
        # A vanished tty fails both calls; the fd is released either way.
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.fd, termios.TIOCNXCL)
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.close()


def _classify(path: str, err: serial.SerialException) -> TransportError:
    code = err.errno if isinstance(err.errno, int) else None
    if "exclusively lock" in str(err) or code in (errno.EBUSY, errno.EAGAIN):
        return PortBusy(f"port busy: {path} is held by another process")
    if code == errno.ENOENT:
        return PortNotFound(f"no such port: {path}")
    if code == errno.EACCES:
        return TransportError(f"permission denied on {path} (is the user in group dialout?)")
    return TransportError(f"cannot open {path}: {err}")
