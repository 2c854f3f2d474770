"""Face detection: BlazeFace anchors and decoding, several faces, small faces, no faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from mouthpiece.face import detect_faces
from mouthpiece.face.detection import FULL_RANGE, SHORT_RANGE, blazeface_detect, ssd_anchors


def test_anchor_grids_match_the_models() -> None:
    short = ssd_anchors(SHORT_RANGE.input_size, SHORT_RANGE.strides, True)
    full = ssd_anchors(FULL_RANGE.input_size, FULL_RANGE.strides, False)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # stride 8: 16×16 cells, 2 anchors each, row-major; then 8×8 cells with 6 anchors
    np.testing.assert_allclose(short[:4], [[1 / 32, 1 / 32]] * 2 + [[3 / 32, 1 / 32]] * 2)
    np.testing.assert_allclose(short[512:518], [[1 / 16, 1 / 16]] * 6)
    np.testing.assert_allclose(full[-1], [95 / 96, 95 / 96])


def _contains(face, point) -> bool:
    return face.x0 < point[0] < face.x1 and face.y0 < point[1] < face.y1


def test_one_face_with_keypoints_in_place(grace_photo: np.ndarray, astronaut_photo: np.ndarray) -> None:
    for image, width in ((grace_photo, 200), (astronaut_photo, 95)):
        faces = detect_faces(image)
        assert len(faces) == 1
        face = faces[0]
        assert face.score > 0.8
        assert 0.75 < face.width / width < 1.3
        right_eye, left_eye, nose, mouth = face.keypoints[:4]
        assert right_eye[0] < nose[0] < left_eye[0]  # subject's right eye is on image left
        assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
        assert all(_contains(face, p) for p in (right_eye, left_eye, nose, mouth))


def test_group_photo_largest_first(group_photo: np.ndarray) -> None:
    faces = detect_faces(group_photo)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].x1 < 532 < 580 < faces[1].x0  # Grace on the left, astronaut_photo right


def test_small_face_in_large_canvas(small_face) -> None:
    canvas, (x0, y0, x1, y1) = small_face
    faces = detect_faces(canvas)
    assert len(faces) == 1
    face = faces[0]
    assert 55 < face.width < 90
    assert x0 < face.x0 and face.x1 < x1 and y0 < face.y0 and face.y1 < y1


def test_small_face_in_12_megapixel_photo(grace_photo: np.ndarray) -> None:
    portrait = cv2.resize(grace_photo, None, fx=0.33, fy=0.33, interpolation=cv2.INTER_AREA)
    photo = np.full((3024, 4032, 3), 128, np.uint8)
    photo[1500:1500 + portrait.shape[0], 2500:2500 + portrait.shape[1]] = portrait
    faces = detect_faces(photo)
    assert len(faces) == 1 and 55 < faces[0].width < 85
    assert 2500 < faces[0].x0 < 2500 + portrait.shape[1]


def test_no_face_in_blank_or_noise() -> None:
    rng = np.random.default_rng(0)
    assert detect_faces(np.zeros((480, 640, 3), np.uint8)) == []
    assert detect_faces(np.full((300, 300, 3), 200, np.uint8)) == []
    assert detect_faces(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)) == []
    assert detect_faces(skimage.data.coffee()) == []


def test_landmark_check_rejects_texture_and_keeps_faces() -> None:
    """LFW patches (25 px, upscaled): faces are found, face-like texture is not."""
    patches = skimage.data.lfw_subset()  # (200, 25, 25): 100 faces then 100 non-faces
    picks = np.r_[0:100:3, 100:200:3]
    found, raw = [], []
    for index in picks:
        patch = cv2.resize((patches[index] * 255).astype(np.uint8), (100, 100),
                           interpolation=cv2.INTER_CUBIC)
        canvas = np.full((256, 256), 128, np.uint8)
        canvas[78:178, 78:178] = patch
        canvas = np.repeat(canvas[:, :, None], 3, axis=2)
        found.append(len(detect_faces(canvas)) > 0)
        raw.append(len(blazeface_detect(canvas)) > 0)
    found, raw = np.array(found), np.array(raw)
    is_face = picks < 100
    assert found[is_face].mean() >= 0.95
    assert found[~is_face].sum() == 0
    assert raw[~is_face].sum() >= found[~is_face].sum()


def test_grey_and_rgba_inputs_accepted(grace_photo: np.ndarray) -> None:
    grey = cv2.cvtColor(grace_photo, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([grace_photo, np.full(grace_photo.shape[:2], 255, np.uint8)])
    assert len(detect_faces(grey)) == 1 and len(detect_faces(rgba)) == 1
    with pytest.raises(TypeError):
        detect_faces(grace_photo.astype(np.float32))


def test_deterministic(group_photo: np.ndarray) -> None:
    first, second = detect_faces(group_photo), detect_faces(group_photo.copy())
    for a, b in zip(first, second, strict=True):
        assert (a.x0, a.y0, a.x1, a.y1, a.score) == (b.x0, b.y0, b.x1, b.y1, b.score)
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
