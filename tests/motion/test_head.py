"""Head/expression sampler: seeding, steps, scale, idle motion, natural amplitudes."""

import numpy as np

from mouthpiece.motion import build_track
from mouthpiece.motion.head import HEAD_EXPR_CHANNELS, denoise_sample, prior_spectra, sample_head
from mouthpiece.types import HEAD_CHANNELS
from tests.motion.synth import features, segments, sentence

FPS = 25


def _speech(repeats=2):
    segs = segments(sentence(repeats))
    n = int(round(segs[-1].end_s * FPS))
    return segs, features(segs, n, FPS), n


def test_same_seed_same_track_different_seed_different_and_seed_0_works():
    segs, feats, n = _speech()
    a = build_track(segs, feats, n_frames=n, fps=FPS, seed=0)
    b = build_track(segs, feats, n_frames=n, fps=FPS, seed=0)
    c = build_track(segs, feats, n_frames=n, fps=FPS, seed=1)
    assert np.array_equal(a.values, b.values)
    head = [a.channels.index(h) for h in HEAD_CHANNELS]
    assert np.abs(a.values[:, head] - c.values[:, head]).max() > 0.3
    assert np.abs(a.values[:, head]).max() > 0.3  # seed 0 is a real seed, not "no motion"
    # the mouth follows the phones, not the seed
    assert np.array_equal(a.values[:, :7] > 0.5, c.values[:, :7] > 0.5)


def test_inference_steps_change_the_result_and_converge():
    n, fps = 500, 25.0
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((len(HEAD_EXPR_CHANNELS), 600))
    mean = np.zeros_like(noise)
    spectra = prior_spectra(600, fps)
    runs = {k: denoise_sample(noise, mean, spectra, k)[:, :n] for k in (2, 5, 10, 25, 50, 100, 200)}
    gaps = [np.abs(runs[a] - runs[b]).mean() for a, b in ((5, 10), (25, 50), (100, 200))]
    assert gaps[0] > 0.05  # steps matter
    assert gaps[0] > 3 * gaps[1] > 9 * gaps[2]  # and converge (≈ 1/steps)
    # more steps → closer to the prior's variance (few steps under-disperse: stiff motion)
    target = 1.0
    err = [abs(runs[k].std() - target) for k in (2, 25, 200)]
    assert err[0] > err[1] >= err[2] - 0.02
    # the converged sample has the prior's spectrum shape: energy below 0.5 Hz dominates
    power = np.abs(np.fft.rfft(runs[200], axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / fps)
    assert power[:, freqs < 0.5].sum() > 5 * power[:, freqs > 1.0].sum()


def test_build_track_steps_change_head_not_mouth_or_blinks():
    segs, feats, n = _speech(1)
    a = build_track(segs, feats, n_frames=n, fps=FPS, inference_steps=5)
    b = build_track(segs, feats, n_frames=n, fps=FPS, inference_steps=25)
    assert not np.allclose(a["head_yaw"], b["head_yaw"], atol=0.05)
    assert np.array_equal(a.values[:, :6], b.values[:, :6])  # mouth articulators
    assert np.array_equal(a.values[:, 7:9], b.values[:, 7:9])  # blinks


def test_motion_scale_zero_is_a_still_head_and_scale_is_linear():
    segs, feats, n = _speech(1)
    still = build_track(segs, feats, n_frames=n, fps=FPS, motion_scale=0.0)
    for name in HEAD_CHANNELS + ("brow_up",):
        assert np.all(still[name] == 0), name
    one = build_track(segs, feats, n_frames=n, fps=FPS, motion_scale=1.0, smoothing=False)
    half = build_track(segs, feats, n_frames=n, fps=FPS, motion_scale=0.5, smoothing=False)
    assert np.allclose(half["head_yaw"], 0.5 * one["head_yaw"], atol=1e-4)
    assert still["blink_l"].max() > 0.9  # blinks are physiological: they stay


def test_head_never_frozen_in_silence():
    segs = segments([("SIL", 5.0)])
    n = 5 * FPS
    silent = features(segs, n, FPS)
    for seed in range(5):
        track = build_track(segs, silent, n_frames=n, fps=FPS, seed=seed)
        yaw, pitch = track["head_yaw"], track["head_pitch"]
        # moving all the time (no frozen stretch of 1 s), by a visible but small amount
        speed = np.abs(np.diff(yaw)) + np.abs(np.diff(pitch))
        assert np.all(np.convolve(speed, np.ones(FPS), "valid") > 0.02), seed
        assert np.ptp(yaw) + np.ptp(pitch) > 0.5, seed
        assert np.all(track.values[:, :6] == 0)  # while the mouth rests


def test_amplitudes_are_natural():
    segs, feats, n = _speech(6)  # ~25 s of speech with pauses
    limits = {"head_yaw": 6.0, "head_pitch": 5.0, "head_roll": 3.0, "head_tx": 0.06,
              "head_ty": 0.05, "brow_up": 0.4}
    stds = []
    for seed in range(6):
        track = build_track(segs, feats, n_frames=n, fps=FPS, seed=seed)
        for name, lim in limits.items():
            assert np.abs(track[name]).max() <= lim, (seed, name, np.abs(track[name]).max())
        stds.append([track[c].std() for c in ("head_yaw", "head_pitch", "head_roll")])
    yaw, pitch, roll = np.mean(stds, axis=0)
    assert 0.5 < yaw < 3.0 and 0.4 < pitch < 2.5 and 0.2 < roll < 1.2


def test_prosody_drives_nods():
    # an accented, loud syllable after a pause → a nod (chin down) around it, on average
    segs, feats, n = _speech(2)
    loud = feats.series["loudness"]
    peaks = [k for k in range(1, n - 1) if loud[k] > 0.6 and loud[k - 1] < 0.3]
    assert peaks
    pitch_near = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        with_prosody = sample_head(feats.series, n, FPS, rng, 25, 1.0)
        rng = np.random.default_rng(seed)
        flat = sample_head({}, n, FPS, rng, 25, 1.0)
        diff = with_prosody[:, 1] - flat[:, 1]
        pitch_near.append(np.mean(np.abs(diff)))
    assert np.mean(pitch_near) > 0.1  # degrees: prosody visibly shapes the head
