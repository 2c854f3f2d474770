"""The mouth interior seen when the lips part: cavity, upper and lower teeth, tongue.

The warp keeps whatever the photo shows between its lips (nothing for a closed mouth, teeth
for an open smile) attached under the upper lip, like the upper teeth are. What opens beyond
that band is painted here, inside the deformed inner-lip polygon, in coordinates attached to
the mouth (u along the inner corners, −1…1; v across, px): a dark cavity, darker at the back,
upper teeth under the upper lip, a hint of lower teeth and tongue when wide open. Colours come
from the photo's lips and skin so the interior is lit like the face. Where an open photo mouth
closes, a dark seam covers the squeezed teeth.
"""

from __future__ import annotations

import cv2
import numpy as np

from mouthpiece.render.blend import blend_over
from mouthpiece.render.deform import FaceDeformer
from mouthpiece.topology import (
    INNER_CORNER_L,
    INNER_CORNER_R,
    LIPS_INNER,
    LIPS_INNER_LOWER,
    LIPS_INNER_UPPER,
    LIPS_OUTER,
    LOWER_LIP_INNER_MID,
    UPPER_LIP_INNER_MID,
)

_UPPER = np.array(LIPS_INNER_UPPER)  # right corner → left corner
_LOWER = np.array(LIPS_INNER_LOWER[::-1])  # right corner → left corner
_POLYGON = np.array(LIPS_INNER)
_SHIFT = 2  # sub-pixel bits for polygon drawing
TEETH_WHITE = np.array([204.0, 193.0, 172.0])  # lit teeth, before the photo's light level
CAVITY_FRONT = np.array([92.0, 36.0, 33.0])
CAVITY_BACK = np.array([20.0, 7.0, 7.0])
TONGUE = np.array([150.0, 66.0, 66.0])
# Borders between upper teeth along the mouth (u between the inner corners).
_TOOTH_BORDERS = np.array([0.0, -0.24, 0.24, -0.45, 0.45, -0.64, 0.64])
_LUMA = np.array([0.299, 0.587, 0.114])


def _median_in(image: np.ndarray, mask: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    pixels = image[mask > 0]
    return np.median(pixels, axis=0).astype(np.float64) if len(pixels) >= 8 else fallback


def _sorted(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(xs)
    return xs[order], ys[order]


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
        # Light level of the face, from the skin's luma relative to a typical lit face.
        light = float(np.clip(0.55 + 0.45 * (skin @ _LUMA) / 175.0, 0.55, 1.05))
        tint = lip / max(float(lip @ _LUMA), 1.0)  # the lips' hue, unit luma
        self.teeth = np.clip(TEETH_WHITE * light * (0.94 + 0.06 * tint), 0, 255)
        self.cavity_front = 0.75 * CAVITY_FRONT * light + 0.25 * lip * 0.35
        self.cavity_back = CAVITY_BACK * light
        self.tongue = np.clip(0.7 * TONGUE * light + 0.3 * lip * 0.7, 0, 255)
        self.seam = lip * np.array([0.5, 0.36, 0.36])
        self.lip = lip

        # The band the photo shows between its lips, per u (px), which the warp carries
        # along under the upper lip; painting starts below it.
        right, left = xy[INNER_CORNER_R], xy[INNER_CORNER_L]
        ex = (left - right) / max(np.linalg.norm(left - right), 1e-6)
        ey = np.array([-ex[1], ex[0]])
        centre, half = (right + left) / 2, max(np.linalg.norm(left - right) / 2, 1.0)
        cu_up = (xy[_UPPER] - centre) @ ex / half
        cu_lo = (xy[_LOWER] - centre) @ ex / half
        self._band_u = np.linspace(-1, 1, 41)
        band = (np.interp(self._band_u, *_sorted(cu_lo, (xy[_LOWER] - centre) @ ey))
                - np.interp(self._band_u, *_sorted(cu_up, (xy[_UPPER] - centre) @ ey)))
        self._band = np.clip(band, 0, None)
        rest_gap = float(np.linalg.norm(xy[LOWER_LIP_INNER_MID] - xy[UPPER_LIP_INNER_MID]))
        self.seam_strength = float(np.clip((rest_gap - 1.0) / 2.0, 0.0, 1.0))
        self.teeth_above = self._teeth_above_lip_line(crop, xy, ey, lip) if rest_gap > 3 else 0.0

    def _teeth_above_lip_line(self, crop: np.ndarray, xy: np.ndarray, down: np.ndarray,
                              lip: np.ndarray) -> float:
        """How far (px) teeth show above the detected inner upper lip line of an open photo
        mouth (the landmark sits a little low on bright teeth): the closed-lip seam covers it."""
        h, w = crop.shape[:2]
        luma = crop.astype(np.float32) @ _LUMA.astype(np.float32)
        threshold = float(lip @ _LUMA) + 25.0
        reach = []
        for idx in _UPPER[3:-3]:  # the middle of the upper lip
            n = 0
            for step in range(1, int(0.05 * self.unit) + 1):
                x, y = np.round(xy[idx] - step * down).astype(int)
                if not (0 <= x < w and 0 <= y < h) or luma[y, x] < threshold:
                    break
                n = step
            reach.append(n)
        return float(np.median(reach)) if reach else 0.0

    def paint(self, frame: np.ndarray, moved: np.ndarray) -> None:
        """Paint the interior in place; `moved`: (468, 2) landmark positions in `frame`."""
        upper, lower = moved[_UPPER].astype(np.float64), moved[_LOWER].astype(np.float64)
        right, left = moved[INNER_CORNER_R].astype(np.float64), moved[INNER_CORNER_L]
        axis = left - right
        half = float(np.linalg.norm(axis)) / 2
        if half < 1.0:
            return
        ex = axis / (2 * half)
        ey = np.array([-ex[1], ex[0]])  # across the mouth, down the face
        centre = (right + left) / 2
        cu_up, cv_up = (upper - centre) @ ex / half, (upper - centre) @ ey
        cu_lo, cv_lo = (lower - centre) @ ex / half, (lower - centre) @ ey
        probe = np.linspace(-0.9, 0.9, 19)
        max_open = float(np.max(np.interp(probe, *_sorted(cu_lo, cv_lo))
                                - np.interp(probe, *_sorted(cu_up, cv_up))))
        hgt, wid = frame.shape[:2]
        poly = np.vstack([upper, lower[::-1][1:-1]])
        x0 = int(max(np.floor(poly[:, 0].min()) - 3, 0))
        x1 = int(min(np.ceil(poly[:, 0].max()) + 4, wid))
        y0 = int(max(np.floor(poly[:, 1].min()) - 3, 0))
        y1 = int(min(np.ceil(poly[:, 1].max()) + 4, hgt))
        if x1 <= x0 or y1 <= y0:
            return
        box = frame[y0:y1, x0:x1]
        if self.seam_strength > 0:
            self._paint_seam(box, upper - [x0, y0], lower - [x0, y0])
        if max_open < 0.5:
            return

        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = np.round((poly - [x0, y0]) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
        # Only the pixels inside the opening: coordinates along (u) and across (v) the mouth.
        ys, xs = np.nonzero(mask)
        rel_x = (xs + (x0 - centre[0])).astype(np.float32)
        rel_y = (ys + (y0 - centre[1])).astype(np.float32)
        u = (rel_x * np.float32(ex[0]) + rel_y * np.float32(ex[1])) * np.float32(1 / half)
        v = rel_x * np.float32(ey[0]) + rel_y * np.float32(ey[1])
        v_up = np.interp(u, *_sorted(cu_up, cv_up)).astype(np.float32)
        v_lo = np.interp(u, *_sorted(cu_lo, cv_lo)).astype(np.float32)
        band = np.interp(u, self._band_u, self._band).astype(np.float32)
        # Painted only below the photo's own band (soft edge), fading in as the lips part.
        alpha = mask[ys, xs].astype(np.float32) * np.float32(1 / 255)
        alpha *= np.clip((v - v_up - band) * np.float32(0.5) + np.float32(0.5), 0, 1)
        keep = alpha > 1 / 512
        if not keep.any():
            return
        ys, xs, u, v, v_up, v_lo = ys[keep], xs[keep], u[keep], v[keep], v_up[keep], v_lo[keep]
        colour = self._interior(u, v, v_up, v_lo, half, max_open)  # (n, 3)
        under = box[ys, xs].astype(np.float32)
        mixed = under + (colour - under) * alpha[keep][:, None] + np.float32(0.5)
        box[ys, xs] = np.clip(mixed, 0, 255).astype(np.uint8)

    def _interior(self, u, v, v_up, v_lo, half: float, max_open: float) -> np.ndarray:
        """(n, 3) float32 colours of cavity, tongue and teeth for pixels at mouth coordinates
        (u, v); `v_up`, `v_lo`: the inner lip lines at their u."""
        unit = self.unit
        opening = np.clip(v_lo - v_up, 0, None)
        across = np.clip(1 - u * u, 0, 1)
        # Cavity: lit near the lips, dark at the back (the middle of the opening).
        depth = np.clip(np.minimum(v - v_up, v_lo - v) / max(0.45 * max_open, 1e-3), 0, 1)
        back = (depth * np.sqrt(across))[..., None]
        colour = self.cavity_front + (self.cavity_back - self.cavity_front) * back

        # Tongue: a soft dark-red mound resting on the floor of the mouth.
        tongue_h = np.clip(0.3 * opening - 0.02 * unit, 0, 0.08 * unit)
        tongue_h *= np.sqrt(np.clip(1 - (u / 0.75) ** 2, 0, 1))
        above = v - (v_lo - tongue_h)
        t_alpha = np.clip(above / 2.0, 0, 1) * (tongue_h > 0.5)
        t_shade = 0.6 + 0.4 * np.clip(above / np.maximum(tongue_h, 1e-3), 0, 1)
        colour += (self.tongue * t_shade[..., None] - colour) * (0.9 * t_alpha)[..., None]

        # Lower teeth: a thin band just over the lower lip when wide open, in shadow.
        low_h = np.clip(0.15 * (opening - 0.14 * unit), 0, 0.025 * unit)
        low_h *= np.sqrt(np.clip(1 - (u / 0.5) ** 2, 0, 1))
        low_alpha = np.clip((v - (v_lo - low_h)) / 1.5, 0, 1) * (low_h > 0.4)
        low_col = self.teeth * (0.7 * (1 - 0.8 * u * u))[..., None]
        colour += (low_col - colour) * low_alpha[..., None]

        # Upper teeth: a band under the upper lip, taller as the mouth opens.
        up_h = np.clip(0.42 * opening, 0, 0.075 * unit)
        up_h *= np.sqrt(np.clip(1 - (u / 0.85) ** 2, 0, 1))
        into = v - v_up
        up_alpha = np.clip((up_h - into) / 1.2 + 0.5, 0, 1) * (up_h > 0.4)
        # Shading: in the upper lip's shadow at the top, darker towards the corners.
        shade = (1 - 0.75 * u * u) * (0.6 + 0.4 * np.clip(into / np.maximum(0.5 * up_h, 1e-3),
                                                          0, 1))
        # Each tooth a little rounder (brighter mid-tooth), faint gaps between them.
        border = np.abs(u - _TOOTH_BORDERS[0])
        for b in _TOOTH_BORDERS[1:]:
            np.minimum(border, np.abs(u - b), out=border)
        border_px = border * half
        shade *= 0.9 + 0.1 * np.clip(border_px / (0.1 * half), 0, 1)
        shade *= 1 - 0.1 * np.exp(-((border_px / 0.8) ** 2))
        colour += (self.teeth * shade[..., None] - colour) * up_alpha[..., None]
        return colour

    @staticmethod
    def _up_dir(upper: np.ndarray) -> np.ndarray:
        along = upper[-1] - upper[0]
        along = along / max(float(np.linalg.norm(along)), 1e-6)
        return np.array([along[1], -along[0]])  # perpendicular, towards the nose

    def _paint_seam(self, box: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> None:
        """Where lips that are parted in the photo close: lip colour over the squeezed teeth
        with a dark line where the lips meet, only along the closed columns."""
        core = max(1, int(round(0.008 * self.unit)))
        soft = max(2, int(round(0.035 * self.unit + self.teeth_above)))
        closed = np.clip(1.5 - np.linalg.norm(lower - upper, axis=1) / 2.0, 0, 1)
        mid = (upper + lower) / 2
        # The lip-coloured band sits mostly above the seam, over teeth the upper lip's
        # detected edge leaves uncovered.
        up_face = self._up_dir(upper)
        lifted = mid + up_face * (0.15 * soft)
        for line, colour, thickness, weight in ((lifted, self.lip * 0.85, soft, 0.85),
                                                (mid, self.seam, core, 1.0)):
            pts = np.round(line * (1 << _SHIFT)).astype(np.int32)
            layer = np.zeros(box.shape[:2], np.uint8)
            for i in range(len(pts) - 1):
                level = int(255 * weight * self.seam_strength * min(closed[i], closed[i + 1]))
                if level > 0:
                    cv2.line(layer, tuple(pts[i]), tuple(pts[i + 1]), level, thickness,
                             cv2.LINE_AA, shift=_SHIFT)
            if layer.any():
                if thickness > 1:
                    layer = cv2.GaussianBlur(layer, (0, 0), thickness / 3)
                blend_over(box, colour, layer.astype(np.float32) * np.float32(1 / 255))
