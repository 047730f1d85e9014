"""Tone checks on WAV files without numpy: Goertzel power at candidate frequencies."""

from __future__ import annotations

import array
import math
import wave
from pathlib import Path


def read_channels(path: Path) -> tuple[int, list[array.array[int]]]:
    """Sample rate and one sample array per channel (16-bit PCM)."""
    with wave.open(str(path), "rb") as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        samples = array.array("h")
        samples.frombytes(wav.readframes(wav.getnframes()))
    return rate, [samples[c::channels] for c in range(channels)]


def power(samples: array.array[int], rate: int, freq: float) -> float:
    """Goertzel power of ``freq`` over ``samples``, normalised by length."""
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / max(1, len(samples)) ** 2


def dominant(samples: array.array[int], rate: int, candidates: list[float]) -> float:
    """The candidate frequency with the most power (a 1 s window from the middle)."""
    mid = len(samples) // 2
    window = samples[max(0, mid - rate // 2) : mid + rate // 2]
    return max(candidates, key=lambda f: power(window, rate, f))


def loudness(samples: array.array[int]) -> float:
    """RMS level."""
    return math.sqrt(sum(x * x for x in samples) / max(1, len(samples)))
