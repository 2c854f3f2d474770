"""Real portraits and composed scenes shared by the face tests (no downloads)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def group_photo(grace_photo: np.ndarray, astronaut_photo: np.ndarray) -> np.ndarray:
    """Both portraits side by side: Grace's face (~200 px, left) is the larger one."""
    small = cv2.resize(astronaut_photo, (384, 384), interpolation=cv2.INTER_AREA)  # face ~70 px
    canvas = np.full((640, 1000, 3), 90, np.uint8)
    canvas[20:620, 20:532] = grace_photo
    canvas[120:504, 580:964] = small
    return canvas


@pytest.fixture(scope="session")
def small_face(grace_photo: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Grace scaled so her face is ~70 px wide, pasted into a 1024×768 canvas.
    Returns the canvas and the pasted region (x0, y0, x1, y1)."""
    portrait = cv2.resize(grace_photo, None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    canvas = np.full((768, 1024, 3), (160, 170, 150), np.uint8)
    y0, x0 = 420, 700
    canvas[y0:y0 + portrait.shape[0], x0:x0 + portrait.shape[1]] = portrait
    return canvas, (x0, y0, x0 + portrait.shape[1], y0 + portrait.shape[0])


def rotate(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the centre (cv2 convention: positive = counter-clockwise on screen).
    Returns the rotated image and the (2, 3) affine that maps original → rotated px."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT), matrix
