"""A conference-bridge port whose audio comes from and goes to a ``PcmLink``.

pjsua2 calls both callbacks on its clock thread, every 20 ms: the bridge asks for the
next frame to play into the mix and hands over the mix's frame for this port.
"""

from __future__ import annotations

import pjsua2 as pj

from drivers.media.pcm import PcmLink, vector_bytes


class PcmLinkPort(pj.AudioMediaPort):
    """Feeds the bridge from ``link.downlink()`` and hands the mix to ``link.uplink()``."""

    def __init__(self, link: PcmLink) -> None:
        super().__init__()
        self.link = link

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        frame.buf = pj.ByteVector(self.link.downlink())
        frame.size = self.link.frame_bytes
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            self.link.uplink(vector_bytes(frame.buf))
