"""Eyelids that close for blinks and look like lids, not like a squashed eye.

The warp drags the upper-lid skin down over the eye (`deform` moves the upper lid contour onto
the lower one). Two fixes make that read as a lid: the eyeball visible in the remaining opening
does not move with the lid (it is sampled where it was, moved only by the head), and the area
the lid has swept is painted in the lid's own colour — taken from the photo between the lid
and the brow — with a darker lash line along the lid margin.
"""

from __future__ import annotations

import cv2
import numpy as np

from mouthpiece.render.blend import blend_over
from mouthpiece.render.deform import FaceDeformer
from mouthpiece.topology import (
    LEFT_BROW,
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    RIGHT_BROW,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
)

_SHIFT = 2  # sub-pixel bits for polygon drawing
_LUMA = np.array([0.299, 0.587, 0.114])
# (upper lid, lower lid, brow) per eye, in the order of the renderer's (blink_r, blink_l)
_EYES = (
    (np.array(RIGHT_EYE_UPPER), np.array(RIGHT_EYE_LOWER), np.array(RIGHT_BROW[:5])),
    (np.array(LEFT_EYE_UPPER), np.array(LEFT_EYE_LOWER), np.array(LEFT_BROW[:5])),
)


def _polygon_mask(shape: tuple[int, int], polygon: np.ndarray, origin) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    pts = np.round((polygon - origin) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return mask


class EyelidPainter:
    """Lid and lash colours of both eyes, prepared once; `fix_map` and `paint` per frame."""

    def __init__(self, crop: np.ndarray, points: np.ndarray, deformer: FaceDeformer):
        xy = points[:, :2].astype(np.float64)
        self.unit = deformer.frame.unit
        self.rest_xy = xy
        self.lid_colour, self.lash_colour = [], []
        h, w = crop.shape[:2]
        for upper, lower, brow in _EYES:
            # Lid skin: the band 25–65 % of the way from the lid margin up to the brow.
            brow_y = np.interp(xy[upper, 0], *self._sorted(xy[brow, 0], xy[brow, 1]))
            top = xy[upper].copy()
            top[:, 1] += 0.65 * (brow_y - top[:, 1])
            bottom = xy[upper].copy()
            bottom[:, 1] += 0.25 * (brow_y - bottom[:, 1])
            band = _polygon_mask((h, w), np.vstack([bottom, top[::-1]]), 0) > 127
            pixels = crop[band].astype(np.float64)
            if len(pixels) < 8:
                pixels = crop[np.clip(np.round(xy[upper, 1]).astype(int) - 3, 0, h - 1),
                              np.clip(np.round(xy[upper, 0]).astype(int), 0, w - 1)]
            luma = pixels @ _LUMA
            bright = pixels[luma >= np.percentile(luma, 30)]
            self.lid_colour.append(np.median(bright, axis=0) * 0.96)
            margin = _polygon_mask((h, w), np.vstack([xy[upper] - [0, 2], xy[upper][::-1]]), 0)
            dark = crop[margin > 127].astype(np.float64)
            if len(dark) >= 4:
                lash = dark[(dark @ _LUMA) <= np.percentile(dark @ _LUMA, 25)].mean(axis=0)
            else:
                lash = self.lid_colour[-1] * 0.4
            self.lash_colour.append(np.minimum(lash, self.lid_colour[-1] * 0.5))

    @staticmethod
    def _sorted(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(xs)
        return xs[order], ys[order]

    def fix_map(self, src: np.ndarray, region: tuple[int, int, int, int], moved: np.ndarray,
                still: np.ndarray, blinks: tuple[float, float]) -> None:
        """Inside each closing eye's opening, sample the eyeball where it is (head motion
        only) instead of squashing it with the lid."""
        ry0, ry1, rx0, rx1 = region
        for (upper, lower, _), blink in zip(_EYES, blinks):
            if blink <= 0:
                continue
            opening = np.vstack([moved[upper], moved[lower][::-1]])
            x0 = int(max(np.floor(opening[:, 0].min()) - 1, rx0))
            x1 = int(min(np.ceil(opening[:, 0].max()) + 2, rx1))
            y0 = int(max(np.floor(opening[:, 1].min()) - 1, ry0))
            y1 = int(min(np.ceil(opening[:, 1].max()) + 2, ry1))
            if x1 <= x0 or y1 <= y0:
                continue
            mask = _polygon_mask((y1 - y0, x1 - x0), opening, [x0, y0])
            # The eyeball only follows the head.
            shift = (still[lower] - self.rest_xy[lower]).mean(axis=0)
            ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            eyeball = np.dstack([xs - shift[0], ys - shift[1]]).astype(np.float32)
            patch = src[y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]
            a = (mask.astype(np.float32) / 255.0)[..., None]
            patch[:] = patch + (eyeball - patch) * a

    def paint(self, frame: np.ndarray, moved: np.ndarray, still: np.ndarray,
              blinks: tuple[float, float]) -> None:
        """Paint closed-lid skin and the lash line in place. `moved`: landmark positions in
        `frame`; `still`: where they would be with the same head motion but no expression
        (the open lid's margin)."""
        hgt, wid = frame.shape[:2]
        for (upper, _, _), blink, lid, lash in zip(_EYES, blinks, self.lid_colour,
                                                   self.lash_colour):
            if blink <= 0.05:
                continue
            margin, was = moved[upper], still[upper]
            swept = np.vstack([was, margin[::-1]])
            pad = 0.04 * self.unit + 2
            x0 = int(max(np.floor(swept[:, 0].min() - pad), 0))
            x1 = int(min(np.ceil(swept[:, 0].max() + pad), wid))
            y0 = int(max(np.floor(swept[:, 1].min() - pad), 0))
            y1 = int(min(np.ceil(swept[:, 1].max() + pad), hgt))
            if x1 <= x0 or y1 <= y0:
                continue
            box = frame[y0:y1, x0:x1]
            shape = box.shape[:2]
            strength = float(np.clip((blink - 0.05) / 0.45, 0, 1))
            # Lid skin over the swept area: flat lid colour, darker towards the margin,
            # keeping a little of the warped texture.
            area = _polygon_mask(shape, swept, [x0, y0]).astype(np.float32) / 255.0
            if area.any():
                area = cv2.GaussianBlur(area, (0, 0), max(0.8, 0.012 * self.unit))
                ys = np.arange(y0, y1, dtype=np.float32)[:, None]
                top = np.interp(np.arange(x0, x1), *self._sorted(was[:, 0], was[:, 1]))
                bottom = np.interp(np.arange(x0, x1), *self._sorted(margin[:, 0], margin[:, 1]))
                t = np.clip((ys - top) / np.maximum(bottom - top, 1.0), 0, 1)  # 1 at the margin
                skin = lid * (1.0 - 0.12 * t)[..., None]
                # Opaque near the margin (smeared lashes and eye), fading towards the crease
                # so the patch has no edge of its own.
                blend_over(box, skin, strength * area * (0.1 + 0.75 * t))
            # Lash line along the lid margin: thin, heavier towards the outer corner.
            thickness = max(1, int(round(0.012 * self.unit)))
            layer = np.zeros(shape, np.uint8)
            pts = np.round((margin - [x0, y0]) * (1 << _SHIFT)).astype(np.int32)
            n = len(pts) - 1
            for i in range(n):  # contours run from the outer to the inner corner
                level = int(255 * (1.0 - 0.6 * i / n))
                cv2.line(layer, tuple(pts[i]), tuple(pts[i + 1]), level, thickness,
                         cv2.LINE_AA, shift=_SHIFT)
            layer = cv2.GaussianBlur(layer, (0, 0), max(0.5, 0.006 * self.unit))
            blend_over(box, lash, layer.astype(np.float32) * np.float32(0.8 * strength / 255))
