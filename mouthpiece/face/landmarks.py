"""468-point face landmarks (MediaPipe FaceMesh model).

The landmark model sees a 192×192 crop, rotated so the eyes are level and scaled 1.5× around
the face. The crop ("region of interest") comes from a detection's eye keypoints for the first
pass, then from the landmarks themselves: further passes re-centre the crop on the face, and in
video the previous frame's landmarks give the next frame's crop, so detection runs only when
the face-presence score drops.

Coordinates are continuous pixel coordinates (pixel i covers [i, i+1)), as in MediaPipe.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mouthpiece.face.detection import as_rgb
from mouthpiece.face.runtime import get_model
from mouthpiece.topology import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from mouthpiece.types import N_LANDMARKS, FaceBox, Landmarks


LANDMARK_MODEL = "face_landmark.tflite"
CROP_SIZE = 192  # px, the landmark model's input
ROI_SCALE = 1.5  # crop side = 1.5 × the face's extent (MediaPipe's RectTransformation)
MIN_FACE_SCORE = 0.5  # face-flag probability below which the crop holds no face
MAX_REFINEMENTS = 3  # landmark-based re-crops after the detection's crop


@dataclass(frozen=True)
class Roi:
    """A square, rotated crop: centre (px), side (px), angle (radians, the image direction of
    the crop's x axis; positive turns clockwise on screen since y points down)."""

    cx: float
    cy: float
    size: float
    angle: float

    def crop_to_image(self) -> np.ndarray:
        """(2, 3) affine: continuous crop px (0..CROP_SIZE) → continuous image px."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = self.size / CROP_SIZE
        rot = np.array([[c, -s], [s, c]]) * k
        shift = np.array([self.cx, self.cy]) - rot @ np.array([CROP_SIZE / 2, CROP_SIZE / 2])
        return np.hstack([rot, shift[:, None]])


def roi_from_box(box: FaceBox) -> Roi:
    """Crop for a detection: box centre, eye keypoints give the angle, 1.5× the long side."""
    right_eye, left_eye = box.keypoints[0], box.keypoints[1]
    angle = _eye_angle(right_eye, left_eye)
    size = max(box.width, box.height) * ROI_SCALE
    return Roi((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, size, angle)


def roi_from_landmarks(points: np.ndarray) -> Roi:
    """Crop for landmarks: eye corners give the angle; the extent is measured in the rotated
    frame, so the crop's scale does not depend on the head's roll."""
    xy = points[:, :2].astype(np.float64)
    angle = _eye_angle(xy[RIGHT_EYE_OUTER], xy[LEFT_EYE_OUTER])
    c, s = np.cos(angle), np.sin(angle)
    local = xy @ np.array([[c, -s], [s, c]])  # (468, 2) image → face-aligned frame
    lo, hi = local.min(0), local.max(0)
    mid = (lo + hi) / 2
    cx, cy = np.array([[c, -s], [s, c]]) @ mid  # back to image px
    return Roi(float(cx), float(cy), float((hi - lo).max() * ROI_SCALE), angle)


def _eye_angle(right_eye: np.ndarray, left_eye: np.ndarray) -> float:
    """Angle of the line from the subject's right eye to their left (image px, y down)."""
    d = np.asarray(left_eye, np.float64) - np.asarray(right_eye, np.float64)
    return float(np.arctan2(d[1], d[0])) if np.any(d) else 0.0


def infer_landmarks(image: np.ndarray, roi: Roi) -> Landmarks:
    """One landmark-model pass on the crop `roi` of `image` → landmarks in image px."""
    model = get_model(LANDMARK_MODEL)
    affine = roi.crop_to_image()
    # cv2 samples at integer pixel centres: shift the continuous mapping by half a pixel
    to_idx = affine.copy()
    to_idx[:, 2] += affine[:, :2] @ [0.5, 0.5] - 0.5
    crop = cv2.warpAffine(
        image, to_idx, (CROP_SIZE, CROP_SIZE),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )  # (192, 192, 3) uint8
    outputs = model.run(crop.astype(np.float32) * (1.0 / 255.0))  # model expects [0, 1]
    raw = next(o for o in outputs if o.size == N_LANDMARKS * 3).reshape(N_LANDMARKS, 3)
    flag = float(next(o for o in outputs if o.size == 1).reshape(()))
    score = float(1.0 / (1.0 + np.exp(-np.clip(flag, -100.0, 100.0))))
    xy = raw[:, :2].astype(np.float64) @ affine[:, :2].T + affine[:, 2]  # (468, 2) image px
    z = raw[:, 2:3] * (roi.size / CROP_SIZE)  # same px scale as x, y
    return Landmarks(np.hstack([xy, z]).astype(np.float32), score)


def detect_landmarks(image: np.ndarray, box: FaceBox) -> Landmarks:
    """468 landmarks (image px) of the face in `box` of an (H, W, 3) uint8 RGB image.

    A first pass on the detection's crop, then passes on crops re-centred and re-levelled on
    the previous landmarks (a detection is coarse; the landmark-based crop is what the model
    was trained on, which matters for turned and rotated heads) until the crop settles
    (at most `MAX_REFINEMENTS`). `score` is the face-flag probability; below ~0.5 there is
    no usable face.
    """
    image = as_rgb(image)
    best = infer_landmarks(image, roi_from_box(box))
    roi = roi_from_landmarks(best.points)
    for _ in range(MAX_REFINEMENTS):
        marks = infer_landmarks(image, roi)
        if marks.score < min(best.score, MIN_FACE_SCORE):
            break  # the re-centred crop lost the face: keep the detection's result
        best = marks
        proposal = roi_from_landmarks(marks.points)
        if roi_change(roi, proposal) < 1.0:
            break
        roi = proposal
    return best


# A crop within these of the one the landmarks ask for gives landmarks within ~0.01
# inter-ocular distances of it; moving the crop for less only adds jitter (crop → landmarks →
# crop can oscillate by ~0.015 IOD per frame on a still face). Smaller tolerances do not
# always settle.
ROI_TOLERANCE_SHIFT = 0.01  # of the crop size
ROI_TOLERANCE_SIZE = 0.02  # relative
ROI_TOLERANCE_ANGLE = np.radians(2.0)


def roi_change(current: Roi, proposal: Roi) -> float:
    """How far `proposal` is from `current`, in units of the tolerances (< 1: keep current)."""
    shift = np.hypot(current.cx - proposal.cx, current.cy - proposal.cy) / current.size
    resize = abs(current.size - proposal.size) / current.size
    turn = abs(np.angle(np.exp(1j * (current.angle - proposal.angle))))  # radians, wrapped
    return float(max(
        shift / ROI_TOLERANCE_SHIFT, resize / ROI_TOLERANCE_SIZE, turn / ROI_TOLERANCE_ANGLE
    ))
