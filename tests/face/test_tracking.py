"""LandmarkTracker on a short synthetic video of a moving real face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mouthpiece import topology as T
from mouthpiece.face import LandmarkTracker, build_rig


@pytest.fixture(scope="module")
def clip(grace_photo: np.ndarray):
    """24 frames of the 512-px face crop drifting and tilting, with the true landmarks."""
    rig = build_rig(grace_photo)
    frames, truth = [], []
    for i in range(24):
        matrix = cv2.getRotationMatrix2D((256, 256), 4 * np.sin(i / 4), 1.0)
        matrix[:, 2] += [10 * np.sin(i / 3), 6 * np.cos(i / 5)]
        frames.append(cv2.warpAffine(rig.crop_image, matrix, (512, 512),
                                     borderMode=cv2.BORDER_REPLICATE))
        truth.append(rig.landmarks.xy @ matrix[:, :2].T + matrix[:, 2])
    return frames, truth, T.inter_ocular(rig.landmarks.points)


def test_tracks_a_moving_face_with_one_detection(clip) -> None:
    frames, truth, iod = clip
    tracker = LandmarkTracker()
    errors = []
    for frame, expected in zip(frames, truth):
        marks = tracker.track(frame)
        assert marks is not None and marks.score > 0.9
        errors.append(np.linalg.norm(marks.xy - expected, axis=1).mean() / iod)
    assert tracker.detections == 1
    assert max(errors) < 0.02


def test_lost_face_then_redetected(clip) -> None:
    frames, truth, iod = clip
    tracker = LandmarkTracker()
    assert tracker.track(frames[0]) is not None
    assert tracker.track(np.zeros_like(frames[0])) is None  # cut to black
    marks = tracker.track(frames[5])
    assert marks is not None and tracker.detections == 3
    assert np.linalg.norm(marks.xy - truth[5], axis=1).mean() < 0.02 * iod


def test_still_face_gives_still_landmarks(clip) -> None:
    frames, _, _ = clip
    tracker = LandmarkTracker()
    points = np.stack([tracker.track(frames[0]).points for _ in range(10)])
    np.testing.assert_array_equal(points[2:], np.broadcast_to(points[2], points[2:].shape))


def test_fast_motion_is_followed_within_the_frame(clip) -> None:
    frames, truth, iod = clip
    tracker = LandmarkTracker()
    tracker.track(frames[0])
    jump = np.float32([[1, 0, 60], [0, 1, -40]])  # the head jumps by ~half its width
    moved = cv2.warpAffine(frames[0], jump, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    marks = tracker.track(moved)
    assert marks is not None and tracker.detections == 1
    assert np.linalg.norm(marks.xy - (truth[0] + [60, -40]), axis=1).mean() < 0.02 * iod


def test_deterministic(clip) -> None:
    frames, _, _ = clip
    runs = []
    for _ in range(2):
        tracker = LandmarkTracker()
        runs.append(np.stack([tracker.track(f).points for f in frames[:8]]))
    np.testing.assert_array_equal(runs[0], runs[1])
