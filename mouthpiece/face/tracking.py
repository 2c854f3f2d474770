"""Landmarks through a video: track from the previous frame, re-detect only when lost."""

from __future__ import annotations

import numpy as np

from mouthpiece.face.detection import as_rgb
from mouthpiece.face.faces import detect_faces
from mouthpiece.face.landmarks import (
    MIN_FACE_SCORE,
    Roi,
    detect_landmarks,
    infer_landmarks,
    roi_change,
    roi_from_landmarks,
)
from mouthpiece.types import Landmarks

# When the face moved this many tolerances away from the crop, the frame is run again on the
# re-centred crop instead of waiting for the next frame (fast head motion).
RERUN_CHANGE = 4.0


class LandmarkTracker:
    """Landmarks for consecutive video frames.

    Each frame is cropped where the previous frame's landmarks put the face (one model pass,
    ~2 ms at any frame size); the crop only moves when the face moved beyond a small
    tolerance, so a still face gives exactly still landmarks. The face detector runs on the
    first frame and whenever the face flag drops below `min_score`. Deterministic: the same
    frames give the same landmarks.
    """

    def __init__(self, min_score: float = MIN_FACE_SCORE) -> None:
        self.min_score = min_score
        self._roi: Roi | None = None
        self.detections = 0  # how many times the detector had to run

    def reset(self) -> None:
        """Forget the tracked face (e.g. at a scene cut)."""
        self._roi = None

    def track(self, frame: np.ndarray) -> Landmarks | None:
        """Landmarks of the tracked (at first: the largest) face in `frame` (H, W, 3) uint8
        RGB, in frame pixels, or None when no face is found."""
        frame = as_rgb(frame)
        if self._roi is not None:
            marks = infer_landmarks(frame, self._roi)
            if marks.score >= self.min_score:
                proposal = roi_from_landmarks(marks.points)
                change = roi_change(self._roi, proposal)
                if change >= RERUN_CHANGE:
                    rerun = infer_landmarks(frame, proposal)
                    if rerun.score >= self.min_score:
                        marks, proposal = rerun, roi_from_landmarks(rerun.points)
                        change = roi_change(self._roi, proposal)
                if change >= 1.0:
                    self._roi = proposal
                return marks
        self._roi = None
        self.detections += 1
        faces = detect_faces(frame)
        if not faces:
            return None
        marks = detect_landmarks(frame, faces[0])
        if marks.score < self.min_score:
            return None
        self._roi = roi_from_landmarks(marks.points)
        return marks
