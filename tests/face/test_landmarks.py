"""468 landmarks: anatomy in the right order, equivariance to rotation and mirroring."""

from __future__ import annotations

import numpy as np
import pytest

from mouthpiece import topology as T
from mouthpiece.face import detect_faces, detect_landmarks
from mouthpiece.face.landmarks import infer_landmarks, roi_from_box, roi_from_landmarks
from mouthpiece.types import Landmarks

from .conftest import rotate


def _landmarks(image: np.ndarray) -> Landmarks:
    return detect_landmarks(image, detect_faces(image)[0])


def _eye_angle(points: np.ndarray) -> float:
    d = points[T.LEFT_EYE_OUTER, :2] - points[T.RIGHT_EYE_OUTER, :2]
    return float(np.degrees(np.arctan2(d[1], d[0])))


@pytest.fixture(scope="module")
def grace_marks(grace_photo: np.ndarray) -> Landmarks:
    return _landmarks(grace_photo)


def test_anatomy(grace_marks: Landmarks, astronaut_photo: np.ndarray) -> None:
    for marks in (grace_marks, _landmarks(astronaut_photo)):
        p = marks.points
        assert p.shape == (468, 3) and p.dtype == np.float32 and marks.score > 0.9
        eyes_y = p[[T.RIGHT_EYE_OUTER, T.LEFT_EYE_OUTER], 1].max()
        assert eyes_y < p[T.NOSE_TIP, 1] < p[T.UPPER_LIP_OUTER_MID, 1]
        assert p[T.UPPER_LIP_OUTER_MID, 1] < p[T.UPPER_LIP_INNER_MID, 1]
        assert p[T.UPPER_LIP_INNER_MID, 1] <= p[T.LOWER_LIP_INNER_MID, 1]
        assert p[T.LOWER_LIP_INNER_MID, 1] < p[T.LOWER_LIP_OUTER_MID, 1] < p[T.CHIN, 1]
        assert p[T.FOREHEAD, 1] < eyes_y
        # subject's right side is image left; inner corners inside outer ones
        assert p[T.RIGHT_EYE_OUTER, 0] < p[T.RIGHT_EYE_INNER, 0] < p[T.NOSE_TIP, 0]
        assert p[T.NOSE_TIP, 0] < p[T.LEFT_EYE_INNER, 0] < p[T.LEFT_EYE_OUTER, 0]
        assert p[T.MOUTH_CORNER_R, 0] < p[T.INNER_CORNER_R, 0] < p[T.INNER_CORNER_L, 0]
        assert p[T.INNER_CORNER_L, 0] < p[T.MOUTH_CORNER_L, 0]
        # the nose tip is the nearest point (z smaller = nearer), the face oval is behind it
        assert p[T.NOSE_TIP, 2] < p[list(T.FACE_OVAL), 2].min()
        # z is in pixels: depth range comparable to the face width
        depth, width = np.ptp(p[:, 2]), np.ptp(p[:, 0])
        assert 0.2 * width < depth < 1.0 * width


def test_grace_eye_corners_where_a_person_sees_them(grace_marks: Landmarks) -> None:
    # hand-read from the photo: outer eye corners ~(200, 193) and ~(327, 188)
    p = grace_marks.points
    assert np.linalg.norm(p[T.RIGHT_EYE_OUTER, :2] - [200, 193]) < 10
    assert np.linalg.norm(p[T.LEFT_EYE_OUTER, :2] - [327, 188]) < 10


@pytest.mark.parametrize("degrees", [25, -25])
def test_rotated_face_follows_the_rotation(
    grace_photo: np.ndarray, grace_marks: Landmarks, degrees: float
) -> None:
    rotated, matrix = rotate(grace_photo, degrees)
    marks = _landmarks(rotated)
    # cv2 turns counter-clockwise on screen; with y down that is a negative image angle
    assert _eye_angle(marks.points) - _eye_angle(grace_marks.points) == pytest.approx(
        -degrees, abs=1.5
    )
    expected = grace_marks.xy @ matrix[:, :2].T + matrix[:, 2]
    error = np.linalg.norm(marks.xy - expected, axis=1).mean()
    assert error < 0.02 * T.inter_ocular(grace_marks.points)


def test_mirrored_face_gives_mirrored_landmarks(
    grace_photo: np.ndarray, grace_marks: Landmarks
) -> None:
    flipped = np.ascontiguousarray(grace_photo[:, ::-1])
    marks = _landmarks(flipped)
    width = grace_photo.shape[1]
    # the mirror of the subject's right eye corner is the new left eye corner, etc.
    pairs = [(T.RIGHT_EYE_OUTER, T.LEFT_EYE_OUTER), (T.MOUTH_CORNER_R, T.MOUTH_CORNER_L),
             (T.NOSE_TIP, T.NOSE_TIP), (T.CHIN, T.CHIN)]
    iod = T.inter_ocular(grace_marks.points)
    for a, b in pairs:
        mirrored = [width - grace_marks.points[a, 0], grace_marks.points[a, 1]]
        assert np.linalg.norm(marks.points[b, :2] - mirrored) < 0.05 * iod


def test_refinement_recentres_on_the_face(grace_photo: np.ndarray) -> None:
    """A detection box shifted by 15% of the face still yields the same landmarks."""
    box = detect_faces(grace_photo)[0]
    reference = detect_landmarks(grace_photo, box)
    shift = 0.15 * box.width
    moved = type(box)(box.x0 + shift, box.y0 - shift, box.x1 + shift, box.y1 - shift,
                      box.score, box.keypoints + [shift, -shift])
    one_pass = infer_landmarks(grace_photo, roi_from_box(moved))
    two_pass = detect_landmarks(grace_photo, moved)
    iod = T.inter_ocular(reference.points)
    err_one = np.linalg.norm(one_pass.xy - reference.xy, axis=1).mean() / iod
    err_two = np.linalg.norm(two_pass.xy - reference.xy, axis=1).mean() / iod
    assert err_two < 0.01 and err_two <= err_one


def test_roi_from_landmarks_is_level_and_covers_the_face(grace_marks: Landmarks) -> None:
    roi = roi_from_landmarks(grace_marks.points)
    assert abs(np.degrees(roi.angle) - _eye_angle(grace_marks.points)) < 1e-6
    extent = np.ptp(grace_marks.xy, axis=0).max()
    assert 1.4 * extent < roi.size < 1.6 * extent
    centre = grace_marks.xy.min(0) / 2 + grace_marks.xy.max(0) / 2
    assert np.linalg.norm(centre - [roi.cx, roi.cy]) < 0.05 * extent


def test_deterministic(grace_photo: np.ndarray, grace_marks: Landmarks) -> None:
    again = _landmarks(grace_photo.copy())
    np.testing.assert_array_equal(again.points, grace_marks.points)
    assert again.score == grace_marks.score
