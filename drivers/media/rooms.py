"""Room links of a media worker: one meet-me room's bridge joined to another worker's.

Theory of operation. A room larger than one worker (4 calls) spans several workers; the
appliance links each extra worker's bridge to the room's first worker (a star, so audio
crosses at most two links). A link is a ``LinkAudioPort`` in each of the two bridges,
joined to the room like a participant, carrying 20 ms frames of 16-bit PCM at 8 kHz in
UDP datagrams between the two workers. It takes no call slot and makes no CDR: it is no
call, only two conference ports wired back to back.

Each bridge sends into the link the mix of everything else in its room (its own calls and
its other links, never what arrived on the link itself), so every participant hears every
other once, and a star has no loop for audio to circle in.

Set-up takes two steps because each side's port is known only once it is bound: the
appliance sends ``room-link`` (room, link) to the first worker, which binds a socket on
its own address and reports ``room-link`` (link, port); then ``room-link`` with ``peer`` to
the second worker, which binds, connects to the peer and joins the room; then the same
to the first worker with the second's address. A connected UDP socket takes datagrams
from its peer only. The port's callbacks run on the bridge's clock thread and only call
``PcmLink`` (one non-blocking read, one non-blocking write a frame), as GSM ports do.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pjsua2 as pj

from drivers.media.link_port import PcmLinkPort
from drivers.media.pcm import PcmLink
from drivers.media.protocol import Emit, ErrorEvent, RoomCommand, RoomLinkEvent, RoomUnlink

log = logging.getLogger("callmesh.media")

RATE = 8000
FRAME_USEC = 20000
FRAME_BYTES = RATE // 50 * 2


class LinkAudioPort(PcmLinkPort):
    """One end of a link between two workers' bridges, on its UDP socket."""


@dataclass
class RoomLink:
    """One end of a link: its socket, and its port once the peer is known."""

    name: str
    room: str
    sock: socket.socket
    audio: LinkAudioPort | None = None


class RoomLinks:
    """The worker's room links, by link name; every method runs on the main thread."""

    def __init__(
        self,
        host: str,
        jitter_frames: int,
        join: Callable[[str, RoomLink], None],
        leave: Callable[[str, RoomLink], None],
        emit: Emit,
    ) -> None:
        self.links: dict[str, RoomLink] = {}
        self._host = host
        self._jitter = jitter_frames
        self._join = join
        self._leave = leave
        self._emit = emit

    def command(self, cmd: RoomCommand) -> None:
        """``room-link`` (room, link, peer?) or ``room-unlink`` (link)."""
        name = cmd.link
        if isinstance(cmd, RoomUnlink):
            self.unlink(name)
            return
        try:
            self._link(name, cmd.room, cmd.peer or "")
        except OSError as err:
            self._failed(name, str(err))
        except pj.Error as err:
            self._failed(name, err.info())

    def _failed(self, name: str, reason: str) -> None:
        self.unlink(name)
        self._emit(ErrorEvent(id=name, message=f"room link {name}: {reason}"))

    def _link(self, name: str, room: str, peer: str) -> None:
        link = self.links.get(name) or self._open(name, room)
        if peer and link.audio is None:
            host, _, port = peer.rpartition(":")
            link.sock.connect((host, int(port)))
            link.audio = _open_port(link, self._jitter)
            self._join(link.room, link)

    def unlink(self, name: str) -> None:
        """Take the link's port out of its room's bridge, then close its socket."""
        link = self.links.pop(name, None)
        if link is None:
            return
        if link.audio is not None:
            self._leave(link.room, link)
            port, link.audio = link.audio, None
            log.info("room %s link %s closed: %s", link.room, name, asdict(port.link.counters))
            port.destroy()
        link.sock.close()

    def shutdown(self) -> None:
        """Drop every port (libDestroy aborts while one is referenced)."""
        for name in list(self.links):
            self.unlink(name)

    def _open(self, name: str, room: str) -> RoomLink:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self._host, 0))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        link = self.links[name] = RoomLink(name, room, sock)
        self._emit(RoomLinkEvent(link=name, room=room, port=sock.getsockname()[1]))
        return link


def _open_port(link: RoomLink, jitter_frames: int) -> LinkAudioPort:
    port = LinkAudioPort(PcmLink(link.sock.fileno(), FRAME_BYTES, target=jitter_frames))
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, RATE, 1, FRAME_USEC, 16)
    port.createPort(f"link-{link.name}", fmt)
    return port
