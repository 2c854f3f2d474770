"""Real-video path: the fit inverts the renderer's landmark model; rendered video round trip."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from mouthpiece.face import build_rig
from mouthpiece.media import load_image
from mouthpiece.training.video import FITTED, TrackFitter, rest_landmarks
from mouthpiece.types import CHANNEL_NAMES, MOUTH_CHANNELS, Landmarks, MotionTrack


@pytest.fixture(scope="module")
def rig(portrait_path):
    return build_rig(load_image(portrait_path), min_resolution=256)


def _speech_like_track(n: int, fps: float, seed: int = 0) -> MotionTrack:
    """Mouth shapes that alternate like speech (open vowels, closures, rounding), head moving."""
    rng = np.random.default_rng(seed)
    track = MotionTrack.zeros(n, fps)
    t = np.arange(n) / fps
    track["jaw_open"] = np.clip(0.5 + 0.45 * np.sin(2 * np.pi * 2.1 * t), 0, 1)
    track["lip_round"] = np.clip(np.sin(2 * np.pi * 0.7 * t), 0, 1) * 0.8
    track["lip_wide"] = np.clip(-np.sin(2 * np.pi * 0.7 * t), 0, 1) * 0.7
    press = (np.arange(n) % 12) < 2
    track["lip_press"] = press * 1.0
    track["jaw_open"] = np.where(press, 0.03, track["jaw_open"])
    track["lower_lip_tuck"] = ((np.arange(n) % 17) == 8) * 0.9
    track["head_yaw"] = 4 * np.sin(t * 1.3) + rng.normal(0, 0.2, n)
    track["head_pitch"] = 2 * np.cos(t * 0.9)
    track["head_roll"] = 2 * np.sin(t * 0.5)
    track["head_tx"] = 0.04 * np.sin(t)
    return track


def test_fit_inverts_deform_landmarks_exactly(rig):
    fitter = TrackFitter(rig.landmarks)
    track = _speech_like_track(24, 25.0)
    fitted, previous = [], None
    for row in track.values:
        observed = fitter.deformer.deform(row) * 1.3 + np.array([40.0, -12.0])  # camera moved
        previous = fitter.fit(observed, previous)
        fitted.append(previous)
    fitted = np.array(fitted)
    for j, name in enumerate(MOUTH_CHANNELS):
        truth = track[name]
        if truth.std() > 0:
            assert np.corrcoef(fitted[:, FITTED.index(name)], truth)[0, 1] > 0.9, name
    assert np.abs(fitted[:, FITTED.index("jaw_open")] - track["jaw_open"]).mean() < 0.05


def test_rest_face_is_taken_from_closed_mouth_frames(rig):
    fitter = TrackFitter(rig.landmarks)
    marks = []
    for jaw in np.linspace(0, 1, 20):
        row = np.zeros(len(CHANNEL_NAMES))
        row[CHANNEL_NAMES.index("jaw_open")] = jaw
        xy = fitter.deformer.deform(row)
        marks.append(Landmarks(np.c_[xy, rig.landmarks.points[:, 2]].astype(np.float32)))
    rest = rest_landmarks(marks)
    # the median of the two most closed frames (jaw 0 and 0.05) sits half a jaw step below
    # the rest on the lower lip: 0.54 px
    assert np.abs(rest.points[:, :2] - rig.landmarks.points[:, :2]).max() < 0.6  # px


@pytest.mark.slow
def test_rendered_video_round_trip_recovers_the_mouth(rig, tmp_path):
    """render → re-detect landmarks → fit: the fitted channels follow the true ones."""
    from mouthpiece.media import VideoWriter
    from mouthpiece.render import Renderer
    from mouthpiece.training.video import build_examples_from_video, fit_track_to_video

    fps, n = 25, 60
    track = _speech_like_track(n, fps)
    renderer = Renderer(rig, full_frame=False)
    video, wav = tmp_path / "rendered.mp4", tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Bob bought a big map."], check=True)
    with VideoWriter(video, fps, renderer.output_size, wav, n / fps) as writer:
        for row in track.values:
            writer.write(renderer.render(row))
    fitted = fit_track_to_video(video, rest=rig.landmarks)
    assert fitted.n_frames == n and fitted.meta["frames_with_face"] == n
    assert np.corrcoef(fitted["jaw_open"], track["jaw_open"])[0, 1] > 0.85
    assert np.corrcoef(fitted["lip_round"] - fitted["lip_wide"],
                       track["lip_round"] - track["lip_wide"])[0, 1] > 0.5
    # As training data, with the rest face estimated from the video itself.
    [example] = build_examples_from_video(video)
    assert example.inputs.shape == (n, 87) and example.targets.shape == (n, 7)
    assert np.corrcoef(example.targets[:, 0], track["jaw_open"])[0, 1] > 0.85
