"""Real speech for the speech tests: festival (exact phone timings) and espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
import wave

import numpy as np
import pytest
from scipy.signal import resample_poly

from mouthpiece.speech import synthesize_with_timings
from mouthpiece.types import Audio

needs_festival = pytest.mark.skipif(shutil.which("festival") is None, reason="festival missing")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")

BOB = "Bob bought my big puppy."


def read_audio(path) -> Audio:
    """16 kHz mono Audio from a 16-bit WAV (resampled if needed)."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    samples = pcm.astype(np.float32) / 32768.0
    if rate != 16_000:
        samples = resample_poly(samples, 16_000, rate).astype(np.float32)
    return Audio(samples)


@pytest.fixture(scope="session")
def bob(tmp_path_factory):
    """(Audio, reference segments) for BOB, spoken by festival."""
    if shutil.which("festival") is None:
        pytest.skip("festival missing")
    path = tmp_path_factory.mktemp("speech") / "bob.wav"
    segments = synthesize_with_timings(BOB, path)
    return read_audio(path), segments


@pytest.fixture(scope="session")
def espeak_speech(tmp_path_factory):
    """Factory: (voice, text) → Audio spoken by espeak-ng."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng missing")
    folder = tmp_path_factory.mktemp("espeak")

    def speak(voice: str, text: str) -> Audio:
        path = folder / f"{voice}-{abs(hash(text))}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
        return read_audio(path)

    return speak


def assert_tiles(segments, duration_s: float) -> None:
    """Segments cover [0, duration_s] exactly, in order, without gaps or overlaps."""
    assert segments, "no segments"
    assert segments[0].start_s == 0.0
    assert segments[-1].end_s == pytest.approx(duration_s, abs=1e-9)
    for prev, cur in zip(segments, segments[1:]):
        assert cur.start_s == prev.end_s
    assert all(s.end_s > s.start_s for s in segments)
    assert all(0.0 <= s.confidence <= 1.0 for s in segments)
