"""Text to speech with espeak-ng (Debian package ``espeak-ng``), cached by content hash.

``EspeakTts.render`` speaks a text in a language or voice once: espeak-ng writes a WAV
(22050 Hz) to stdout, which is resampled here to what the media workers play (8 kHz,
16-bit, mono) and stored as ``<sha256 of voice and text>.wav`` in the cache directory.
The same text in the same voice is never rendered twice, and a file appears in the cache
only complete (written aside, then renamed).

Exceptions::

    TtsError        espeak-ng is missing, failed, timed out or wrote no audio
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import hashlib
import io
import os
import shutil
import wave
from pathlib import Path

RATE = 8000
TIMEOUT_S = 20.0


class TtsError(RuntimeError):
    """The text could not be spoken (``error_id`` ``tts-failed``)."""

    error_id = "tts-failed"


class EspeakTts:
    """Renders and caches prompts with espeak-ng."""

    def __init__(self, cache_dir: Path, binary: str = "espeak-ng", timeout_s: float = TIMEOUT_S):
        self.cache_dir = cache_dir
        self.binary = binary
        self.timeout_s = timeout_s

    def cached(self, text: str, voice: str) -> Path:
        """Where the rendering of ``text`` in ``voice`` is (or will be) stored."""
        digest = hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()
        return self.cache_dir / f"{digest}.wav"

    async def render(self, text: str, voice: str) -> Path:
        """The 8 kHz WAV of ``text`` spoken in ``voice`` (a language code or voice name)."""
        path = self.cached(text, voice)
        if path.exists():
            return path
        if shutil.which(self.binary) is None:
            raise TtsError(f"{self.binary} is not installed (Debian package espeak-ng)")
        raw = await self._speak(text, voice)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(to_8k_wav(raw))
        partial.replace(path)
        return path

    async def _speak(self, text: str, voice: str) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-v", voice, "--stdout", "--", text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise TtsError(f"{self.binary} took longer than {self.timeout_s} s") from None
        if proc.returncode != 0 or len(out) <= 44:
            raise TtsError(f"{self.binary} -v {voice} failed: {err.decode(errors='replace')}")
        return out


def to_8k_wav(data: bytes) -> bytes:
    """A mono 16-bit WAV at any rate as an 8 kHz mono 16-bit WAV."""
    try:
        with wave.open(io.BytesIO(data)) as src:
            if src.getnchannels() != 1 or src.getsampwidth() != 2:
                raise TtsError("espeak-ng wrote audio that is not mono 16-bit")
            rate = src.getframerate()
            samples = array.array("h", src.readframes(src.getnframes()))
    except (wave.Error, EOFError) as err:
        raise TtsError(f"espeak-ng wrote no WAV: {err}") from None
    out = io.BytesIO()
    with wave.open(out, "wb") as dst:
        dst.setnchannels(1)
        dst.setsampwidth(2)
        dst.setframerate(RATE)
        dst.writeframes(resample(samples, rate, RATE).tobytes())
    return out.getvalue()


def resample(samples: array.array[int], rate: int, target: int) -> array.array[int]:
    """Linear-interpolation resampling after a moving average that tames aliasing."""
    width = max(1, round(rate / target))
    if width > 1:
        total, smooth = 0, array.array("h")
        for i, value in enumerate(samples):
            total += value - (samples[i - width] if i >= width else 0)
            smooth.append(total // width)
        samples = smooth
    count = len(samples) * target // rate
    out = array.array("h", bytes(2 * count))
    step = rate / target
    last = len(samples) - 1
    for i in range(count):
        pos = i * step
        low = int(pos)
        frac = pos - low
        high = min(low + 1, last)
        out[i] = int(samples[low] * (1 - frac) + samples[high] * frac)
    return out
