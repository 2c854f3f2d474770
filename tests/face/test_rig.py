"""build_rig: face choice, crop geometry and scale, user-facing errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mouthpiece import topology as T
from mouthpiece.face import build_rig
from mouthpiece.types import FaceRig, InputError


@pytest.fixture(scope="module")
def grace_rig(grace_photo: np.ndarray) -> FaceRig:
    return build_rig(grace_photo)


def test_crop_geometry(grace_photo: np.ndarray, grace_rig: FaceRig) -> None:
    rig = grace_rig
    x0, y0, x1, y1 = rig.crop_box
    assert all(isinstance(v, int) for v in rig.crop_box)
    assert 0 <= x0 < x1 <= grace_photo.shape[1] and 0 <= y0 < y1 <= grace_photo.shape[0]
    h, w = rig.crop_image.shape[:2]
    assert min(h, w) == 512 and h % 2 == 0 and w % 2 == 0
    assert rig.scale == pytest.approx(512 / min(x1 - x0, y1 - y0))
    assert rig.image is not None and rig.image.shape == grace_photo.shape
    # square around the face: face size × (1 + 2 × 0.5)
    face = np.ptp(rig.full_landmarks.xy, axis=0).max()
    assert x1 - x0 == y1 - y0 == pytest.approx(2 * face, abs=1)
    # the face sits in the crop, a bit above its centre (room for the jaw)
    face_centre_y = (rig.landmarks.xy[:, 1].min() + rig.landmarks.xy[:, 1].max()) / 2
    assert face_centre_y < h / 2
    assert rig.landmarks.xy.min() > 0 and rig.landmarks.xy[:, 0].max() < w


def test_crop_landmarks_match_crop_pixels(grace_rig: FaceRig) -> None:
    rig = grace_rig
    x0, y0, x1, y1 = rig.crop_box
    back = rig.landmarks.xy / [rig.crop_image.shape[1] / (x1 - x0),
                               rig.crop_image.shape[0] / (y1 - y0)] + [x0, y0]
    np.testing.assert_allclose(back, rig.full_landmarks.xy, atol=1e-3)
    np.testing.assert_allclose(rig.landmarks.points[:, 2],
                               rig.full_landmarks.points[:, 2] * rig.scale, rtol=1e-5)
    # the resized crop shows what the original shows at the same landmarks
    crop = rig.image[y0:y1, x0:x1]
    expected = cv2.resize(crop, rig.crop_image.shape[1::-1], interpolation=cv2.INTER_AREA)
    diff = np.abs(expected.astype(int) - rig.crop_image.astype(int)).mean()
    assert diff < 4


def test_expand_ratio_and_resolution(grace_photo: np.ndarray, grace_rig: FaceRig) -> None:
    tight = build_rig(grace_photo, expand_ratio=0.2, min_resolution=256)
    side = lambda rig: rig.crop_box[2] - rig.crop_box[0]  # noqa: E731
    assert side(tight) < side(grace_rig)
    assert min(tight.crop_image.shape[:2]) == 256
    wide = build_rig(grace_photo, expand_ratio=1.0, min_resolution=1024)
    # the square would be ~3× the face (≈ 600 px) but the photo is 512 wide: clipped
    x0, y0, x1, y1 = wide.crop_box
    assert (x0, x1) == (0, 512) and y1 - y0 > x1 - x0
    assert wide.crop_image.shape[1] == 1024 and wide.crop_image.shape[0] % 2 == 0


def test_face_near_the_border_keeps_a_square_inside_the_photo(astronaut_photo: np.ndarray) -> None:
    rig = build_rig(astronaut_photo)  # her face is near the top edge
    x0, y0, x1, y1 = rig.crop_box
    assert y0 >= 0 and x1 - x0 == y1 - y0
    assert rig.crop_image.shape[:2] == (512, 512)


def test_choose_among_faces(group_photo: np.ndarray) -> None:
    largest = build_rig(group_photo)
    second = build_rig(group_photo, face_index=1)
    assert largest.full_landmarks.xy[:, 0].max() < 532
    assert second.full_landmarks.xy[:, 0].min() > 580
    with pytest.raises(InputError, match=r"found 2 faces"):
        build_rig(group_photo, face_index=5)
    with pytest.raises(InputError, match=r"out of range"):
        build_rig(group_photo, face_index=-1)


def test_small_face(small_face) -> None:
    canvas, _ = small_face
    rig = build_rig(canvas)
    assert rig.scale > 2  # a ~70 px face is enlarged to the working resolution
    assert min(rig.crop_image.shape[:2]) == 512
    assert T.inter_ocular(rig.full_landmarks.points) > 25


def test_no_face_is_a_clear_input_error() -> None:
    rng = np.random.default_rng(1)
    for image in (np.zeros((400, 400, 3), np.uint8),
                  rng.integers(0, 256, (400, 600, 3), dtype=np.uint8)):
        with pytest.raises(InputError, match="no face found"):
            build_rig(image)


def test_invalid_parameters(grace_photo: np.ndarray) -> None:
    with pytest.raises(InputError):
        build_rig(grace_photo, expand_ratio=-0.1)
    with pytest.raises(InputError):
        build_rig(grace_photo, min_resolution=0)
