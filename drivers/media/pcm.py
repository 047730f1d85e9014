"""A modem's PCM voice tty as seen from the conference bridge's clock thread (no pjsua2 here).

The media worker reads and writes the voice tty itself, inside the bridge's frame callbacks:
one non-blocking ``read`` and one non-blocking ``write`` per 20 ms frame, a few microseconds
each, so audio takes no detour through another process or event loop. ``PcmLink`` keeps the
adaptive downlink buffer that absorbs the drift and jitter between the modem's clock and the
bridge's clock:

- it starts serving the modem's audio once ``target`` frames are buffered (silence before);
- on underrun it inserts one silence frame and waits again for ``target`` frames;
- when the buffer stayed above ``target + 1`` frames for a whole second (a modem clock
  running fast), it drops the surplus oldest frames at frame edges; past ``limit`` frames
  (the worker stalled) it drops down to ``target`` at once.

Uplink frames are written as the bridge produces them; a frame the tty does not take whole
(the modem is not draining, or its queue holds more than ``limit`` frames where the tty
reports it) is dropped at its edge and counted. A read or write error other than
``EAGAIN`` means the device went away: ``lost`` is set and the link serves silence.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import struct
import termios
import tty
from dataclasses import dataclass
from typing import Any

WINDOW_FRAMES = 50
READ_LIMIT = 65536
_OUTQ = struct.pack("i", 0)


@dataclass
class PcmCounters:
    """Frames through one link; everything except ``frames_*`` is a loss or an insertion."""

    frames_in: int = 0
    frames_out: int = 0
    underruns: int = 0
    trimmed: int = 0
    uplink_dropped: int = 0


def vector_bytes(vector: Any) -> bytes:
    """The bytes of a pjsua2 ``ByteVector`` read straight from its std::vector (about 1 µs).

    ``bytes(vector)`` walks the SWIG sequence element by element (about 286 µs a frame).
    libstdc++ lays a vector out as three pointers: begin, end, end of storage.
    """
    address = int(vector.this)
    begin = ctypes.c_void_p.from_address(address).value
    end = ctypes.c_void_p.from_address(address + ctypes.sizeof(ctypes.c_void_p)).value
    if not begin or not end or end <= begin:
        return b""
    return ctypes.string_at(begin, end - begin)


def open_tty(path: str) -> int:
    """Open a voice tty raw and non-blocking, with stale bytes flushed."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        tty.setraw(fd)
        termios.tcflush(fd, termios.TCIOFLUSH)
    except BaseException:
        os.close(fd)
        raise
    return fd


class PcmLink:
    """Adaptive frame buffer and uplink writer over one open voice tty (clock thread only)."""

    def __init__(self, fd: int, frame_bytes: int, target: int = 2, limit: int = 10) -> None:
        self.fd = fd
        self.frame_bytes = frame_bytes
        self.target = max(1, target)
        self.limit = max(self.target + 2, limit)
        self.counters = PcmCounters()
        self.lost = False
        self.silence = bytes(frame_bytes)
        self._buffer = bytearray()
        self._playing = False
        self._window = 0
        self._window_min = 0

    @property
    def depth(self) -> int:
        """Whole downlink frames buffered."""
        return len(self._buffer) // self.frame_bytes

    def downlink(self) -> bytes:
        """The next frame for the bridge: the modem's audio, or silence."""
        self._read()
        depth = self.depth
        if depth > self.limit:
            self._drop(depth - self.target)
            depth = self.target
        if not self._playing:
            if depth < self.target:
                return self.silence
            self._playing = True
            self._window, self._window_min = 0, depth
        if depth == 0:
            self.counters.underruns += 1
            self._playing = False
            return self.silence
        self._track(depth)
        size = self.frame_bytes
        frame = bytes(self._buffer[:size])
        del self._buffer[:size]
        self.counters.frames_out += 1
        return frame

    def uplink(self, frame: bytes) -> None:
        """Write one frame from the bridge to the modem, or drop it whole."""
        if self.lost or len(frame) != self.frame_bytes:
            return
        if self._queued() > self.limit * self.frame_bytes:
            self.counters.uplink_dropped += 1
            return
        try:
            written = os.write(self.fd, frame)
        except BlockingIOError:
            written = 0
        except OSError:
            self.lost = True
            return
        if written != len(frame):
            self.counters.uplink_dropped += 1

    def close(self) -> None:
        """Close the tty (idempotent)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read(self) -> None:
        if self.lost or self.fd < 0:
            return
        while len(self._buffer) < READ_LIMIT:
            try:
                chunk = os.read(self.fd, READ_LIMIT)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno != errno.EINTR:
                    self.lost = True
                return
            if not chunk:
                self.lost = True
                return
            before = self.depth
            self._buffer += chunk
            self.counters.frames_in += self.depth - before

    def _track(self, depth: int) -> None:
        """Once a second: drop what stayed above the target (a modem clock running fast)."""
        self._window += 1
        self._window_min = min(self._window_min, depth)
        if self._window < WINDOW_FRAMES:
            return
        surplus = self._window_min - self.target
        if surplus > 1:
            self._drop(surplus)
        self._window, self._window_min = 0, self.depth

    def _drop(self, frames: int) -> None:
        del self._buffer[: frames * self.frame_bytes]
        self.counters.trimmed += frames

    def _queued(self) -> int:
        """Bytes the tty still holds for the modem (0 where the tty cannot tell, e.g. a pty)."""
        try:
            return int(struct.unpack("i", fcntl.ioctl(self.fd, termios.TIOCOUTQ, _OUTQ))[0])
        except OSError:
            return 0
