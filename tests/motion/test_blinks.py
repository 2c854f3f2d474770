"""Blinks: rate, refractory period, shape, both eyes, seeded."""

import numpy as np

from mouthpiece.motion.blinks import REFRACTORY_S, blink_times, lid_shape, sample_blinks
from tests.motion.synth import features, segments, sentence

FPS = 25


def _peaks(curve):
    return [k for k in range(1, len(curve) - 1)
            if curve[k] >= 0.9 and curve[k] >= curve[k - 1] and curve[k] > curve[k + 1]]


def test_blink_rate_over_a_minute_is_natural_speaking_or_silent():
    segs = segments(sentence(16))[:-1]
    n = 60 * FPS
    speech = features(segs, n, FPS).series
    for series in (speech, {}):
        counts = []
        for seed in range(10):
            blinks = sample_blinks(series, n, FPS, np.random.default_rng(seed))
            counts.append(len(_peaks(blinks[:, 0])))
        assert 12 <= np.mean(counts) <= 20, counts
        assert min(counts) >= 8 and max(counts) <= 26, counts


def test_refractory_period_and_full_closure_on_a_frame():
    for seed in range(10):
        times = blink_times(120.0, np.random.default_rng(seed), None, FPS)
        assert np.all(np.diff(times) >= REFRACTORY_S - 1e-9)
        blinks = sample_blinks({}, 30 * FPS, FPS, np.random.default_rng(seed))
        assert blinks.max() >= 0.97  # a rendered frame shows the closed lid


def test_blink_shape_closes_fast_opens_slowly_both_eyes_together():
    tau = np.linspace(-0.3, 0.5, 801)
    shape = lid_shape(tau, 0.08, 0.02, 0.18)
    closing = tau[(shape > 0.05) & (tau < 0)]
    opening = tau[(shape > 0.05) & (tau > 0.02)]
    assert np.ptp(closing) < 0.09 and np.ptp(opening) > 0.14
    blinks = sample_blinks({}, 60 * FPS, FPS, np.random.default_rng(0))
    left, right = blinks[:, 0], blinks[:, 1]
    assert np.corrcoef(left, right)[0, 1] > 0.95
    assert np.abs(left - right).max() < 0.3


def test_blinks_prefer_phrase_boundaries():
    n = 600 * FPS
    times = np.arange(n) / FPS
    speech = ((times % 4.2) < 3.5).astype(np.float32)  # 3.5 s phrases, 0.7 s pauses
    edges = np.flatnonzero(np.diff(speech > 0.5)) / FPS
    found = blink_times(n / FPS, np.random.default_rng(0), speech, FPS)
    near = np.mean([np.min(np.abs(edges - t)) < 0.3 for t in found])
    share_of_time = np.mean([np.min(np.abs(edges - t)) < 0.3 for t in np.arange(0, 600, 0.01)])
    assert near > 1.5 * share_of_time
    assert 12 <= len(found) / 10 <= 20  # per minute, unchanged by the preference
