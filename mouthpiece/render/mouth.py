"""The mouth interior seen when the lips part: cavity, upper and lower teeth, tongue.

Painted inside the deformed inner-lip polygon, in a coordinate system attached to the mouth
(u along the inner corners, −1…1; v across it, px), with colours taken from the photo's own
lips and skin so it is lit like the rest of the face. A photo whose mouth is already open gets
the same painted interior at every frame (never the photo's own teeth at some frames and
painted ones at others), and a dark seam where its lips are pressed together.
"""

from __future__ import annotations

import cv2
import numpy as np

from mouthpiece.render.deform import FaceDeformer
from mouthpiece.topology import (
    INNER_CORNER_L,
    INNER_CORNER_R,
    LIPS_INNER_LOWER,
    LIPS_INNER_UPPER,
    LIPS_OUTER,
    LIPS_INNER,
    LOWER_LIP_INNER_MID,
    UPPER_LIP_INNER_MID,
)

_UPPER = np.array(LIPS_INNER_UPPER)  # right corner → left corner
_LOWER = np.array(LIPS_INNER_LOWER[::-1])  # right corner → left corner
_POLYGON = np.array(LIPS_INNER)
SUPERSAMPLE = 4  # sub-pixel bits for polygon filling (2 bits = 4×)
TEETH_WHITE = np.array([236.0, 230.0, 216.0])
# Borders between upper teeth along the mouth (u = −1…1 between the inner corners).
_TOOTH_BORDERS = np.array([0.0, -0.2, 0.2, -0.37, 0.37, -0.52, 0.52, -0.66, 0.66])


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _median_in(image: np.ndarray, mask: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    pixels = image[mask > 0]
    return np.median(pixels, axis=0).astype(np.float64) if len(pixels) >= 8 else fallback


class MouthPainter:
    """Colours and sizes of one face's mouth, prepared once; `paint` per frame."""

    def __init__(self, crop: np.ndarray, points: np.ndarray, deformer: FaceDeformer):
        xy = points[:, :2].astype(np.float64)
        h, w = crop.shape[:2]
        self.unit = deformer.frame.unit  # px per inter-ocular distance
        lips = np.zeros((h, w), np.uint8)
        cv2.fillPoly(lips, [np.round(xy[list(LIPS_OUTER)]).astype(np.int32)], 1)
        cv2.fillPoly(lips, [np.round(xy[_POLYGON]).astype(np.int32)], 0)
        lip = _median_in(crop, lips, np.array([170.0, 100.0, 100.0]))
        cheeks = np.zeros((h, w), np.uint8)
        radius = max(2, int(0.06 * self.unit))
        for idx in (50, 280, 205, 425):  # cheek points beside the nose wings
            cv2.circle(cheeks, tuple(int(v) for v in np.round(xy[idx])), radius, 1, -1)
        skin = _median_in(crop, cheeks, lip * 1.1)
        light = float(np.clip(0.72 + 0.28 * _luma(skin) / 180.0, 0.6, 1.0))
        self.teeth = np.clip((0.93 * TEETH_WHITE + 0.07 * lip) * light, 0, 255)
        self.cavity_front = lip * 0.35
        self.cavity_back = lip * 0.10 + 4.0
        self.tongue = lip * np.array([0.62, 0.45, 0.45])
        self.seam = lip * 0.45
        self.lip = lip
        rest_gap = float(np.linalg.norm(xy[LOWER_LIP_INNER_MID] - xy[UPPER_LIP_INNER_MID]))
        # A mouth already open in the photo leaves teeth pixels between the lips when they
        # close: cover them with the dark line of closed lips.
        self.seam_strength = float(np.clip((rest_gap - 1.0) / 2.0, 0.0, 1.0))

    def paint(self, frame: np.ndarray, moved: np.ndarray) -> None:
        """Paint the interior in place; `moved`: (468, 2) landmark positions in `frame`."""
        upper, lower = moved[_UPPER].astype(np.float64), moved[_LOWER].astype(np.float64)
        right, left = moved[INNER_CORNER_R], moved[INNER_CORNER_L]
        axis = left - right
        half = float(np.linalg.norm(axis)) / 2
        if half < 1.0:
            return
        ex = axis / (2 * half)
        ey = np.array([-ex[1], ex[0]])  # perpendicular, pointing down the face
        centre = (right + left) / 2
        hgt, wid = frame.shape[:2]
        poly = np.vstack([upper, lower[::-1][1:-1]])
        x0 = int(max(np.floor(poly[:, 0].min()) - 3, 0))
        x1 = int(min(np.ceil(poly[:, 0].max()) + 4, wid))
        y0 = int(max(np.floor(poly[:, 1].min()) - 3, 0))
        y1 = int(min(np.ceil(poly[:, 1].max()) + 4, hgt))
        if x1 <= x0 or y1 <= y0:
            return
        # Mouth coordinates of the contours and of every pixel of the box.
        cu = ((upper - centre) @ ex) / half
        cv_up = (upper - centre) @ ey
        cl = ((lower - centre) @ ex) / half
        cv_lo = (lower - centre) @ ey
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        rel_x, rel_y = xs - centre[0], ys - centre[1]
        u = (rel_x * ex[0] + rel_y * ex[1]) / half
        v = rel_x * ey[0] + rel_y * ey[1]
        v_up = np.interp(u, *_sorted(cu, cv_up))
        v_lo = np.interp(u, *_sorted(cl, cv_lo))
        opening = np.clip(v_lo - v_up, 0, None)
        max_open = float(np.max(np.interp(np.linspace(-0.9, 0.9, 19), *_sorted(cl, cv_lo))
                                - np.interp(np.linspace(-0.9, 0.9, 19), *_sorted(cu, cv_up))))

        box = frame[y0:y1, x0:x1]
        if self.seam_strength > 0:
            self._paint_seam(box, (upper + lower) / 2 - [x0, y0], half)
        if max_open < 0.3:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = np.round((poly - [x0, y0]) * SUPERSAMPLE).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=2)
        alpha = cv2.GaussianBlur(mask, (3, 3), 0.6).astype(np.float32) / 255.0
        alpha *= min(1.0, max_open / 1.5)  # fades in over the first pixel of opening

        self.half = half
        colour = self._interior(u, v, v_up, v_lo, opening, max_open)
        a = alpha[..., None]
        box[:] = np.clip(box * (1 - a) + colour * a + 0.5, 0, 255).astype(np.uint8)

    def _interior(self, u, v, v_up, v_lo, opening, max_open) -> np.ndarray:
        """(h, w, 3) float colours of cavity, tongue and teeth for the box's pixels."""
        unit = self.unit
        depth_from_lips = np.minimum(v - v_up, v_lo - v) / max(0.5 * max_open, 1e-3)
        back = np.clip(depth_from_lips, 0, 1) * np.sqrt(np.clip(1 - u * u, 0, 1))
        colour = self.cavity_front + (self.cavity_back - self.cavity_front) * back[..., None]

        # Tongue: a soft dark-red mound resting at the bottom of the opening.
        tongue_h = np.clip(0.35 * opening - 0.01 * unit, 0, 0.09 * unit)
        tongue_top = v_lo - tongue_h * np.sqrt(np.clip(1 - (u / 0.7) ** 2, 0, 1))
        t_alpha = np.clip((v - tongue_top) / 1.5, 0, 1) * (tongue_h > 0.5)
        shade = 0.75 + 0.25 * np.clip((v - tongue_top) / np.maximum(tongue_h, 1e-3), 0, 1)
        colour += (self.tongue * shade[..., None] - colour) * t_alpha[..., None] * 0.85

        # Lower teeth: only when the mouth is well open, mostly hidden by the lower lip.
        low_h = np.clip(0.12 * (opening - 0.12 * unit), 0, 0.035 * unit)
        low_h *= np.sqrt(np.clip(1 - (u / 0.6) ** 2, 0, 1))
        low_alpha = np.clip((v - (v_lo - low_h)) / 1.0, 0, 1) * (low_h > 0.3)
        low_col = self.teeth * 0.78 * (1 - 0.5 * u * u)[..., None]
        colour += (low_col - colour) * low_alpha[..., None]

        # Upper teeth: a band under the upper lip, taller as the mouth opens.
        up_h = np.clip(0.4 * opening, 0, 0.075 * unit)
        up_h *= np.sqrt(np.clip(1 - (u / 0.88) ** 2, 0, 1))
        into = v - v_up
        up_alpha = np.clip((up_h - into) / 1.0 + 0.5, 0, 1) * (up_h > 0.3)
        shade = (1 - 0.5 * u * u) * (0.72 + 0.28 * np.clip(into / np.maximum(0.35 * up_h, 1e-3),
                                                            0, 1))
        # Faint lines between the teeth (distance to the nearest border in px).
        border_px = np.min(np.abs(u[..., None] - _TOOTH_BORDERS), axis=-1) * self.half
        shade *= 1 - 0.14 * np.exp(-((border_px / 0.7) ** 2))
        up_col = self.teeth * shade[..., None]
        colour += (up_col - colour) * up_alpha[..., None]
        return colour

    def _paint_seam(self, box: np.ndarray, midline: np.ndarray, half: float) -> None:
        thickness = max(1, int(round(0.012 * self.unit)))
        layer = np.zeros(box.shape[:2], np.uint8)
        pts = np.round(midline * SUPERSAMPLE).astype(np.int32)
        cv2.polylines(layer, [pts], False, 255, thickness, cv2.LINE_AA, shift=2)
        a = (layer.astype(np.float32) / 255.0 * self.seam_strength)[..., None]
        box[:] = np.clip(box * (1 - a) + self.seam * a + 0.5, 0, 255).astype(np.uint8)


def _sorted(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(xs)
    return xs[order], ys[order]
