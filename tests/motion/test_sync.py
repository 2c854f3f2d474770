"""A/V offset: the estimator recovers an artificial shift; build_track removes it."""

import numpy as np
import pytest

from mouthpiece.motion import build_track, estimate_offset, frame_series
from mouthpiece.types import PhonemeSegment
from tests.motion.synth import features, segments, sentence

FPS = 25


def _shifted(segs, dt):
    return [PhonemeSegment(s.phone, s.start_s + dt, s.end_s + dt, s.confidence) for s in segs]


@pytest.mark.parametrize("frames", [-2, -1, 0, 2])
def test_estimator_recovers_a_shift_of_the_mouth(frames):
    segs = segments(sentence(3))
    n = int(round(segs[-1].end_s * FPS)) + 5
    feats = features(segs, n, FPS)
    track = build_track(segs, feats, n_frames=n, fps=FPS, lip_sync_correction=False)
    jaw = np.roll(track["jaw_open"], frames)  # mouth `frames` late
    series = frame_series(feats, n, FPS)  # at the frame times
    envelope = np.sqrt(series["loudness"] * series["open"])
    offset, peak, _ = estimate_offset(jaw, envelope, FPS)
    assert offset == pytest.approx(frames / FPS, abs=0.5 / FPS)
    assert peak > 0.5


def test_build_track_detects_and_removes_a_2_frame_lag():
    segs = segments(sentence(3), start_s=0.3)
    n = int(round(segs[-1].end_s * FPS)) + 5
    feats = features(segs, n, FPS)
    late = _shifted(segs, 2 / FPS)  # phone timings 80 ms late relative to the audio
    reference = build_track(segs, feats, n_frames=n, fps=FPS)
    corrected = build_track(late, feats, n_frames=n, fps=FPS)
    uncorrected = build_track(late, feats, n_frames=n, fps=FPS, lip_sync_correction=False)
    assert corrected.meta["av_offset_s"] == pytest.approx(0.08, abs=0.02)
    assert corrected.meta["av_offset_applied_s"] == pytest.approx(0.08)
    mouth = slice(0, 6)
    err_corrected = np.abs(corrected.values[:-3, mouth] - reference.values[:-3, mouth]).mean()
    err_uncorrected = np.abs(uncorrected.values[:-3, mouth] - reference.values[:-3, mouth]).mean()
    assert err_corrected < 0.4 * err_uncorrected
    # the closures are back on the audio's bilabials
    for s in segs:
        if s.phone in ("P", "B", "M"):
            assert corrected["lip_press"][int(round((s.start_s + s.end_s) / 2 * FPS))] >= 0.9
    assert reference.meta["av_offset_applied_s"] == 0.0  # in sync: left alone
    assert abs(reference.meta["av_offset_s"]) < 0.03
