"""The face-aligned 3-D frame every deformation is defined in, and rigid head motion.

Head frame: origin midway between the outer eye corners, x from the subject's right eye to
their left eye, y down the face, z into the picture (away from the viewer), unit = the 3-D
inter-ocular distance. MediaPipe's z shares the x/y pixel scale, so the frame follows the
face's size, in-plane rotation and turn in the photo; a displacement defined in it projects to
the image foreshortened the way the photo's own head pose requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mouthpiece.topology import CHIN, FOREHEAD, LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from mouthpiece.types import CHANNEL_NAMES

# Rigid head rotations turn about a point near the top of the neck, behind and below the eyes
# (head-frame units): yaw/roll then swing the nose more than the ears, as a real head does.
HEAD_PIVOT = np.array([0.0, 0.6, 1.0], np.float32)

_YAW, _PITCH, _ROLL, _TX, _TY = (
    CHANNEL_NAMES.index(c) for c in ("head_yaw", "head_pitch", "head_roll", "head_tx", "head_ty")
)


@dataclass(frozen=True)
class HeadFrame:
    """`origin`: (3,) image px (x, y, z); `axes`: (3, 3) columns = head x, y, z axes in image
    space; `unit`: px per head unit (3-D inter-ocular distance)."""

    origin: np.ndarray
    axes: np.ndarray
    unit: float

    @classmethod
    def from_points(cls, points: np.ndarray) -> "HeadFrame":
        """Estimate the frame from (468, 3) landmarks (pixels, MediaPipe z)."""
        p = np.asarray(points, np.float64)
        right, left = p[RIGHT_EYE_OUTER], p[LEFT_EYE_OUTER]
        unit = float(np.linalg.norm(left - right))
        if not np.isfinite(unit) or unit < 1e-6:
            raise ValueError("degenerate landmarks: the eye corners coincide")
        ex = (left - right) / unit
        down = p[CHIN] - p[FOREHEAD]
        ey = down - down.dot(ex) * ex
        ey /= np.linalg.norm(ey)
        ez = np.cross(ex, ey)
        axes = np.stack([ex, ey, ez], axis=1)  # (3, 3)
        return cls(origin=(right + left) / 2, axes=axes, unit=unit)

    def to_head(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) image px → (N, 3) head units."""
        return ((np.asarray(points, np.float64) - self.origin) @ self.axes) / self.unit

    def vectors_to_image(self, vectors: np.ndarray) -> np.ndarray:
        """(N, 3) head-unit displacements → (N, 3) image px displacements."""
        return (np.asarray(vectors, np.float64) @ self.axes.T) * self.unit

    def head_motion(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rigid head motion of one row of channel values as an image-space affine map of 3-D
        points: new = matrix @ p + offset, p = (x, y, z) px. Returns ((3, 3), (3,))."""
        v = np.asarray(values, np.float64)
        yaw, pitch, roll = np.radians([v[_YAW], v[_PITCH], v[_ROLL]])
        # Head-frame rotations (y down, z away from the viewer):
        # yaw > 0 swings the nose towards +x (the subject's left), pitch > 0 drops the chin,
        # roll > 0 turns the face clockwise in the picture.
        cy, sy = np.cos(yaw), np.sin(yaw)
        ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
        cp, sp = np.cos(pitch), np.sin(pitch)
        rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        cr, sr = np.cos(roll), np.sin(roll)
        rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        rot_head = rz @ ry @ rx
        matrix = self.axes @ rot_head @ self.axes.T  # (3, 3) in image space
        pivot = self.origin + self.axes @ HEAD_PIVOT * self.unit
        offset = pivot - matrix @ pivot
        offset[:2] += np.array([v[_TX], v[_TY]]) * self.unit
        return matrix, offset
