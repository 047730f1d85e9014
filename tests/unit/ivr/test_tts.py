"""espeak-ng renders prompts once, at 8 kHz mono 16-bit, with speech in them."""

from __future__ import annotations

import array
import asyncio
import shutil
import wave
from pathlib import Path

import pytest

from drivers.media.tts import EspeakTts, TtsError, resample

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def test_text_is_spoken_to_an_8k_wav_and_cached_by_content(tmp_path: Path) -> None:
    tts = EspeakTts(tmp_path)
    path = asyncio.run(tts.render("Press one for sales.", "en"))
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        samples = array.array("h", wav.readframes(wav.getnframes()))
    assert len(samples) > 8000
    assert max(abs(s) for s in samples) > 3000
    broken = EspeakTts(tmp_path, binary="no-such-espeak")
    assert asyncio.run(broken.render("Press one for sales.", "en")) == path
    with pytest.raises(TtsError):
        asyncio.run(broken.render("Something new.", "en"))
    other = asyncio.run(tts.render("Press one for sales.", "de"))
    assert other != path


def test_an_unknown_voice_is_a_tts_error(tmp_path: Path) -> None:
    with pytest.raises(TtsError):
        asyncio.run(EspeakTts(tmp_path).render("Hello.", "xx-nonexistent"))


def test_resampling_keeps_duration_and_level() -> None:
    tone = array.array("h", [10000 if (i // 20) % 2 else -10000 for i in range(22050)])
    out = resample(tone, 22050, 8000)
    assert len(out) == 8000
    assert max(out) > 5000
