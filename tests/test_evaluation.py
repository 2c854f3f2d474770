"""Lip sync measured on the output video against exact synthesizer phoneme timings.

These assert the figures of the engine issue so a regression fails the test.
"""

from __future__ import annotations

import pytest

from mouthpiece.engine import generate
from mouthpiece.evaluation import lipsync_report, mouth_openings
from mouthpiece.params import GenerationParams
from mouthpiece.types import MotionTrack


@pytest.fixture(scope="module")
def measured(tmp_path_factory, portrait_path, festival_speech):
    wav, text, segments = festival_speech
    tmp = tmp_path_factory.mktemp("lipsync")
    reports = {}
    for name, transcript in (("recognition", None), ("transcript", text)):
        out = tmp / f"{name}.mp4"
        generate(portrait_path, wav, out, GenerationParams(min_resolution=384, seed=5, transcript=transcript))
        reports[name] = lipsync_report(mouth_openings(out), segments, fps=25)
    return reports


@pytest.mark.parametrize("mode", ["recognition", "transcript"])
def test_lip_sync_figures(measured, mode):
    report = measured[mode]
    assert report.frames_with_face == 1.0
    assert abs(report.best_lag_frames) <= 1, report
    assert report.bilabial_count >= 6
    assert report.bilabial_closed >= 0.85, report
    assert report.silence_closed >= 0.9, report
    assert report.correlation >= 0.5, report


def test_metric_fails_a_still_face(tmp_path, portrait_path, festival_speech):
    """A video whose mouth never moves must score badly: the metric can fail."""
    wav, _, segments = festival_speech
    out = tmp_path / "still.mp4"
    probe = generate(portrait_path, wav, tmp_path / "probe.mp4", GenerationParams(min_resolution=128, seed=1))
    still = MotionTrack.zeros(probe.frames, 25)
    generate(portrait_path, wav, out, GenerationParams(min_resolution=384, seed=1), motion_in=still)
    report = lipsync_report(mouth_openings(out), segments, fps=25)
    assert report.correlation < 0.3
