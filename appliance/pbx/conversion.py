"""What the recording conversion worker runs: pcap to WAV, size and SHA-256.

The worker is a spawned process, so it imports only what it names: this module, the
pcap decoder and the parent-death hook. It must not import the rest of the PBX or the
appliance's settings (``docs/pbx.md``, "Recordings").
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

from drivers.sip.recording import RecordingMeta, pcap_to_wav
from drivers.sip.supervisor import die_with_parent


def worker_init() -> None:
    """The conversion worker dies with the appliance, even on kill -9, and runs only on CPU
    time nothing else wants (``SCHED_IDLE``): rtpengine and Kamailio must answer within
    their timeouts while a WAV can wait (docs/pbx.md, "The media relay's control link")."""
    die_with_parent(signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(0)
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def warm_up() -> None:
    """Runs first in the worker: importing this module there loads the decoder up front."""


def convert(meta: RecordingMeta, wav: Path) -> tuple[float, int, str]:
    """Write the WAV; returns its seconds, bytes and SHA-256 (runs in the worker process)."""
    seconds = pcap_to_wav(meta, wav)
    with wav.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        os.fsync(f.fileno())
        size = os.fstat(f.fileno()).st_size
    return seconds, size, digest
