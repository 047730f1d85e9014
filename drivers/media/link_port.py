"""A conference-bridge port whose audio comes from and goes to a ``PcmLink``.

pjsua2 calls both callbacks on its clock thread, every 20 ms: the bridge asks for the
next frame to play into the mix and hands over the mix's frame for this port.

A port leaves the bridge through ``destroy``, never by dropping its last reference. Dropped,
SWIG deletes the C++ port from inside the Python object's deallocation, with the GIL
released; the clock thread, which takes the port's lock before it waits for the GIL to call
back, then runs a callback on the half-freed object, and the worker dies with SIGSEGV (in
that thread, or in the next garbage collection that meets the object). ``destroy`` deletes
the C++ port while the Python object is whole: its destructor waits for that lock, so a
callback in flight finishes normally, and detaches the callbacks before it returns.
"""

from __future__ import annotations

import pjsua2 as pj

from drivers.media.pcm import PcmLink, vector_bytes


class PcmLinkPort(pj.AudioMediaPort):
    """Feeds the bridge from ``link.downlink()`` and hands the mix to ``link.uplink()``."""

    def __init__(self, link: PcmLink) -> None:
        super().__init__()
        self.link = link

    def destroy(self) -> None:
        """Take the port out of the bridge; no callback runs once this returns (idempotent).
        None of its pjsua2 methods may be called afterwards."""
        if self.thisown:
            pj.AudioMediaPort.__swig_destroy__(self)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        frame.buf = pj.ByteVector(self.link.downlink())
        frame.size = self.link.frame_bytes
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            self.link.uplink(vector_bytes(frame.buf))
