import tracemalloc

import numpy as np
import pytest

from mouthpiece.speech import frame_features
from mouthpiece.types import Audio, InputError

SR = 16_000


def _vowel(seconds: float, f0: float = 120.0, formants=(700.0, 1100.0)) -> np.ndarray:
    """A glottal pulse train through two resonators: a crude, clearly periodic vowel."""
    from scipy.signal import lfilter

    n = int(seconds * SR)
    source = np.zeros(n)
    source[:: int(SR / f0)] = 1.0
    out = source
    for freq in formants:
        r = np.exp(-np.pi * 80.0 / SR)
        out = lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * freq / SR), r * r], out)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


@pytest.mark.parametrize("fps", [25, 30])
def test_shapes_and_ranges(bob, fps):
    audio, _ = bob
    n = int(np.ceil(audio.duration_s * fps))
    feats = frame_features(audio, fps, n)
    assert feats.fps == fps and feats.n_frames == n
    assert set(feats.series) == {"loudness", "voiced", "speech", "open", "round", "spread",
                                 "closure"}
    for series in feats.series.values():
        assert series.shape == (n,) and series.dtype == np.float32
        assert series.min() >= 0.0 and series.max() <= 1.0
    assert feats.mel.shape == (n, 80) and np.isfinite(feats.mel).all()
    # Frames past the end of the audio are silence, not an error.
    longer = frame_features(audio, fps, n + 10)
    assert longer.series["loudness"][-5:].max() == 0.0


@pytest.mark.parametrize("fps", [25, 30])
def test_silence_voicing_and_noise(fps):
    rng = np.random.default_rng(0)
    samples = np.concatenate([
        np.zeros(SR, np.float32),  # 0-1 s silence
        _vowel(1.0),  # 1-2 s vowel
        (0.05 * rng.standard_normal(SR)).astype(np.float32),  # 2-3 s noise (like "s")
    ])
    feats = frame_features(Audio(samples), fps, 3 * fps).series
    silent, vowel, noise = slice(0, fps - 3), slice(fps + 3, 2 * fps - 3), slice(2 * fps + 3, None)
    assert feats["loudness"][silent].max() == 0.0
    assert feats["speech"][silent].max() < 0.05
    assert feats["voiced"][vowel].mean() > 0.8
    assert feats["loudness"][vowel].mean() > 0.8
    assert feats["speech"][vowel].mean() > 0.9
    assert feats["voiced"][noise].mean() < 0.2
    assert feats["open"][vowel].mean() > feats["open"][noise].mean()


@pytest.mark.parametrize("fps", [25, 30])
def test_click_lands_in_its_frame(fps):
    times = [0.5013, 1.2345, 1.987, 2.6 + 0.5 / fps]  # seconds; near frame starts and middles
    samples = np.zeros(3 * SR, np.float32)
    for t in times:
        samples[int(round(t * SR))] = 0.9
    loudness = frame_features(Audio(samples), fps, 3 * fps).series["loudness"]
    for t in times:
        k = int(np.floor(t * fps))
        window = loudness[k - 3: k + 4]
        assert int(np.argmax(window)) == 3, (t, window)


def test_vowel_cues_follow_the_reference_phones(bob):
    audio, reference = bob
    fps = 100  # fine frames, to read cues inside single phones
    feats = frame_features(audio, fps, int(audio.duration_s * fps)).series

    def mean_over(phone: str, key: str) -> float:
        vals = [feats[key][int(s.start_s * fps): int(s.end_s * fps)].mean()
                for s in reference if s.phone == phone]
        return float(np.mean(vals))

    assert mean_over("AA", "open") > mean_over("IY", "open") + 0.3
    assert mean_over("IY", "spread") > mean_over("AA", "spread") + 0.3
    assert mean_over("P", "closure") > 0.5


def test_bad_input(bob):
    """(Speed is measured in bench/, not asserted here.)"""
    audio, _ = bob
    with pytest.raises(InputError):
        frame_features(audio, 0, 10)
    assert frame_features(audio, 25, 0).n_frames == 0


def _peak_bytes(seconds: int) -> int:
    noise = 0.1 * np.random.default_rng(0).standard_normal(seconds * SR)
    audio = Audio(noise.astype(np.float32))
    tracemalloc.start()
    try:
        frame_features(audio, 25, seconds * 25)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_only_by_small_per_frame_series():
    """Spectra are analysed block by block, the fine mel is pooled as it is made and no copy
    of the audio is taken: 2 minutes need ~1.3 MB more than 6 s (it was 110 MB more)."""
    frame_features(Audio(np.zeros(SR, np.float32)), 25, 25)  # imports out of the way
    assert _peak_bytes(120) < _peak_bytes(6) + 4 * 2**20
