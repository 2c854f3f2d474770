"""Real portraits, real landmarks (the face stage), rigs and renderers shared by the tests."""

from __future__ import annotations

import numpy as np
import pytest

from mouthpiece.face import build_rig, detect_landmarks
from mouthpiece.render import Renderer
from mouthpiece.topology import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from mouthpiece.types import CHANNEL_NAMES, FaceBox, Landmarks


def values(**channels: float) -> np.ndarray:
    """One row of motion values, zeros except the named channels."""
    row = np.zeros(len(CHANNEL_NAMES), np.float32)
    for name, value in channels.items():
        row[CHANNEL_NAMES.index(name)] = value
    return row


def redetect(image: np.ndarray, near: Landmarks) -> Landmarks:
    """Landmarks found again (by the face stage's model) in a rendered image, starting from a
    box around `near`."""
    xy = near.xy
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    keypoints = np.zeros((6, 2), np.float32)
    keypoints[0], keypoints[1] = xy[RIGHT_EYE_OUTER], xy[LEFT_EYE_OUTER]
    box = FaceBox(float(x0), float(y0), float(x1), float(y1), 1.0, keypoints)
    return detect_landmarks(image, box)


@pytest.fixture(scope="session")
def grace_rig(grace_photo):
    return build_rig(grace_photo)


@pytest.fixture(scope="session")
def astronaut_rig(astronaut_photo):
    return build_rig(astronaut_photo)


@pytest.fixture(scope="session")
def grace_crop_renderer(grace_rig) -> Renderer:
    return Renderer(grace_rig, full_frame=False)


@pytest.fixture(scope="session")
def astronaut_crop_renderer(astronaut_rig) -> Renderer:
    return Renderer(astronaut_rig, full_frame=False)
