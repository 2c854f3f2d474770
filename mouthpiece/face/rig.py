"""Prepare one face of a photo for animation: choose it, find its landmarks, crop around it."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from mouthpiece.face.detection import as_rgb
from mouthpiece.face.faces import detect_faces
from mouthpiece.face.landmarks import MIN_FACE_SCORE, detect_landmarks
from mouthpiece.types import FaceRig, InputError, Landmarks

log = logging.getLogger(__name__)

NO_FACE_MESSAGE = (
    "no face found in the image: use a photo with a clearly visible, roughly frontal face "
    "(not too small, not cut off by the border, eyes and mouth visible)"
)
# The crop's centre sits this fraction of the face size below the face's centre, so that the
# chin and jaw keep room to move when the mouth opens.
CENTRE_DROP = 0.08


def build_rig(
    image: np.ndarray,
    *,
    face_index: int = 0,
    expand_ratio: float = 0.5,
    min_resolution: int = 512,
) -> FaceRig:
    """Detect faces in `image` ((H, W, 3) uint8 RGB), take face number `face_index`
    (0 = largest), find its landmarks and cut the square crop that will be animated.

    The crop side is the face size (landmark extent) × (1 + 2 × expand_ratio), shifted to stay
    inside the photo where it fits and clipped where it does not; it is resized so its short
    side is `min_resolution` (both sides even, for yuv420p video).
    """
    if expand_ratio < 0:
        raise InputError(f"expand_ratio must be ≥ 0, got {expand_ratio}")
    if min_resolution < 16:
        raise InputError(f"min_resolution must be ≥ 16, got {min_resolution}")
    image = as_rgb(image)
    faces = detect_faces(image)
    if not faces:
        raise InputError(NO_FACE_MESSAGE)
    if not 0 <= face_index < len(faces):
        raise InputError(
            f"face_index {face_index} is out of range: found {len(faces)} face"
            f"{'s' if len(faces) != 1 else ''} in the image (valid: 0 to {len(faces) - 1}, "
            "0 = largest)"
        )
    full = detect_landmarks(image, faces[face_index])
    if full.score < MIN_FACE_SCORE:
        raise InputError(NO_FACE_MESSAGE)

    crop_box = face_crop_box(full.points, image.shape[1], image.shape[0], expand_ratio)
    x0, y0, x1, y1 = crop_box
    box_w, box_h = x1 - x0, y1 - y0
    scale = min_resolution / min(box_w, box_h)  # working px per original px
    out_w = _even(box_w * scale)
    out_h = _even(box_h * scale)
    crop = image[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    crop_image = cv2.resize(crop, (out_w, out_h), interpolation=interp)  # (out_h, out_w, 3)

    points = full.points.copy()
    points[:, 0] = (points[:, 0] - x0) * (out_w / box_w)
    points[:, 1] = (points[:, 1] - y0) * (out_h / box_h)
    points[:, 2] *= scale
    log.info(
        "face %d of %d: crop %s → %dx%d (scale %.3f)", face_index, len(faces), crop_box,
        out_w, out_h, scale,
    )
    return FaceRig(
        image=image,
        crop_box=crop_box,
        crop_image=np.ascontiguousarray(crop_image),
        scale=float(scale),
        landmarks=Landmarks(points, full.score),
        full_landmarks=full,
    )


def face_crop_box(
    points: np.ndarray, width: int, height: int, expand_ratio: float
) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) square around the landmarks, inside a width×height image."""
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    face_size = float((hi - lo).max())
    side = face_size * (1.0 + 2.0 * expand_ratio)
    cx = (lo[0] + hi[0]) / 2
    cy = (lo[1] + hi[1]) / 2 + CENTRE_DROP * face_size
    side_x = min(round(side), width)
    side_y = min(round(side), height)
    x0 = int(np.clip(round(cx - side_x / 2), 0, width - side_x))
    y0 = int(np.clip(round(cy - side_y / 2), 0, height - side_y))
    return x0, y0, x0 + side_x, y0 + side_y


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))
