"""Public face detection: BlazeFace candidates confirmed by the landmark model.

BlazeFace at fine tiling scales fires now and then on face-like texture (fabric, flags); the
FaceMesh model's face flag on the candidate's crop rejects those, and two candidates whose
landmarks land on the same face are one face.
"""

from __future__ import annotations

import logging

import numpy as np

from mouthpiece.face.detection import as_rgb, blazeface_detect
from mouthpiece.face.landmarks import MIN_FACE_SCORE, infer_landmarks, roi_from_box
from mouthpiece.types import FaceBox

log = logging.getLogger(__name__)

SAME_FACE_IOU = 0.5  # landmark boxes overlapping this much belong to one face


def detect_faces(image: np.ndarray) -> list[FaceBox]:
    """All faces in an (H, W, 3) uint8 RGB image, largest first, in image pixels.

    Short- and full-range BlazeFace (tiled on large photos, so faces from ~64 px up are
    found), each candidate confirmed by one landmark-model pass (~2 ms per candidate).
    """
    image = as_rgb(image)
    candidates = sorted(blazeface_detect(image), key=lambda f: f.score, reverse=True)
    faces: list[FaceBox] = []
    seen: list[np.ndarray] = []  # landmark boxes (x0, y0, x1, y1) of the accepted faces
    for box in candidates:
        marks = infer_landmarks(image, roi_from_box(box))
        if marks.score < MIN_FACE_SCORE:
            log.debug("dropped a detection (score %.2f): no face in its crop", box.score)
            continue
        extent = np.concatenate([marks.xy.min(0), marks.xy.max(0)])
        if any(_iou(extent, other) > SAME_FACE_IOU for other in seen):
            continue
        seen.append(extent)
        faces.append(box)
    faces.sort(key=lambda f: f.area, reverse=True)
    log.debug("found %d face(s) among %d detection(s)", len(faces), len(candidates))
    return faces


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
