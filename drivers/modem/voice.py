"""The modem's PCM voice port: S16LE mono, 20 ms frames (320 B at 8 kHz, 640 B at 16 kHz).

The event loop reads the tty with ``add_reader`` and cuts downlink frames into a bounded buffer;
a paced task writes one uplink frame every 20 ms while streaming, silence when the caller has
nothing queued (modems expect a continuous stream). :meth:`VoicePort.pop_frame` and
:meth:`VoicePort.push_frame` are safe to call from any thread, because pjsua2's
``AudioMediaPort.onFrameRequested``/``onFrameReceived`` run on the conference bridge's clock
thread: they never block, return silence on underrun and drop the oldest frame (counted) on
overrun, so the bridge keeps its timing whatever the modem does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass

from drivers.modem.serialio import SerialLink

log = logging.getLogger(__name__)
FRAME_SECONDS = 0.02


@dataclass
class VoiceCounters:
    """Frame counters for one voice port."""

    frames_in: int = 0
    frames_out: int = 0
    underruns: int = 0
    overruns_in: int = 0
    overruns_out: int = 0
    write_stalls: int = 0


class VoicePort:
    """Bounded, thread-safe PCM frame buffers over one voice tty."""

    def __init__(self, path: str, *, sample_rate: int = 8000, buffer_frames: int = 25) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.frame_bytes = sample_rate // 50 * 2
        self.counters = VoiceCounters()
        self._silence = bytes(self.frame_bytes)
        self._rx: deque[bytes] = deque(maxlen=buffer_frames)
        self._tx: deque[bytes] = deque(maxlen=buffer_frames)
        self._lock = threading.Lock()
        self._partial = bytearray()
        self._link: SerialLink | None = None
        self._writer: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        """True while the tty is open."""
        return self._link is not None

    @property
    def streaming(self) -> bool:
        """True while uplink frames are being written."""
        return self._writer is not None

    async def open(self) -> None:
        """Open the voice tty and start reading downlink frames."""
        link = await asyncio.to_thread(SerialLink.open, self.path)
        self._link = link
        asyncio.get_running_loop().add_reader(link.fd, self._on_readable)

    async def close(self) -> None:
        """Stop streaming and close the tty."""
        await self.stop_streaming()
        link, self._link = self._link, None
        if link is not None:
            asyncio.get_running_loop().remove_reader(link.fd)
            link.close()

    def start_streaming(self) -> None:
        """Begin writing one uplink frame per 20 ms."""
        if self._writer is None and self._link is not None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def stop_streaming(self) -> None:
        """Stop the uplink writer and drop buffered frames."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        with self._lock:
            self._tx.clear()
            self._rx.clear()

    def pop_frame(self) -> bytes:
        """The oldest downlink frame, or silence when none is buffered (any thread)."""
        with self._lock:
            if self._rx:
                return self._rx.popleft()
            self.counters.underruns += 1
            return self._silence

    def push_frame(self, frame: bytes) -> None:
        """Queue one uplink frame (any thread); a wrong-sized frame is padded or cut."""
        frame = frame[: self.frame_bytes].ljust(self.frame_bytes, b"\x00")
        with self._lock:
            if len(self._tx) == self._tx.maxlen:
                self.counters.overruns_out += 1
            self._tx.append(frame)

    def buffered(self) -> int:
        """Downlink frames waiting to be popped."""
        with self._lock:
            return len(self._rx)

    def _on_readable(self) -> None:
        link = self._link
        if link is None:
            return
        try:
            data = os.read(link.fd, 65536)
        except BlockingIOError:
            return
        except OSError as err:
            log.warning("%s: voice port lost: %s", self.path, err)
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(link.fd)
            return
        self._partial += data
        self._cut_frames()

    def _cut_frames(self) -> None:
        size = self.frame_bytes
        with self._lock:
            while len(self._partial) >= size:
                if len(self._rx) == self._rx.maxlen:
                    self.counters.overruns_in += 1
                self._rx.append(bytes(self._partial[:size]))
                del self._partial[:size]
                self.counters.frames_in += 1

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while self._link is not None:
            self._write_frame(self._next_uplink())
            deadline += FRAME_SECONDS
            delay = deadline - loop.time()
            if delay < -FRAME_SECONDS:
                deadline = loop.time()
            await asyncio.sleep(max(delay, 0.0))

    def _next_uplink(self) -> bytes:
        with self._lock:
            return self._tx.popleft() if self._tx else self._silence

    def _write_frame(self, frame: bytes) -> None:
        link = self._link
        if link is None:
            return
        try:
            written = os.write(link.fd, frame)
        except BlockingIOError:
            written = 0
        except OSError as err:
            log.warning("%s: voice write failed: %s", self.path, err)
            written = 0
        if written < len(frame):
            self.counters.write_stalls += 1
        else:
            self.counters.frames_out += 1
