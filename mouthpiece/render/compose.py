"""Pasting the animated crop back into the photo, seamlessly.

The photo is resampled once with exactly the pixel mapping the face stage used to make the
crop (`cv2.resize` pixel-centre convention, crop box origin on a whole output pixel), so the
crop's pixels fall on the photo's. The crop border never moves (the head mask is 0 there), so
the feathered blend of the border band is computed once; each frame only copies the inside
(and, for the encoder, converts only the inside to I420: the rest was converted once).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from mouthpiece.media.writer import i420_planes
from mouthpiece.types import FaceRig

log = logging.getLogger(__name__)

MAX_OUTPUT_SIDE = 2048  # px: full frames are capped at this long side
FEATHER = 0.015  # border band blended into the photo, × crop short side


def _even_floor(value: float) -> int:
    return max(2, 2 * int(value // 2))


class FrameCompositor:
    """Owns the scaled photo; `compose(crop_frame)` returns a full frame."""

    def __init__(self, rig: FaceRig):
        image = np.ascontiguousarray(rig.image)
        H, W = image.shape[:2]
        h, w = rig.crop_image.shape[:2]
        x0, y0, x1, y1 = rig.crop_box
        sx, sy = w / (x1 - x0), h / (y1 - y0)  # crop px per photo px
        longest = max(W * sx, H * sy)
        self.shrink = min(1.0, MAX_OUTPUT_SIDE / longest)
        if self.shrink < 1.0:
            log.info("full frame %.0f px on its long side, capped at %d: the animated crop is "
                     "downscaled ×%.3f before pasting", longest, MAX_OUTPUT_SIDE, self.shrink)
            self.paste_size = (max(1, round(w * self.shrink)), max(1, round(h * self.shrink)))
        else:
            self.paste_size = (w, h)
        pw, ph = self.paste_size
        psx, psy = pw / (x1 - x0), ph / (y1 - y0)  # pasted px per photo px
        self.output_size = (_even_floor(W * psx), _even_floor(H * psy))
        out_w, out_h = self.output_size
        self.origin = (round(x0 * psx), round(y0 * psy))  # crop (0, 0) → this output pixel
        ox, oy = self.origin
        # output o ↔ photo x:  o = psx·x + tx   (pixel centres, as cv2.resize maps them)
        tx = ox - 0.5 + psx * (0.5 - x0)
        ty = oy - 0.5 + psy * (0.5 - y0)
        self.background = self._resample(image, psx, psy, tx, ty, (out_w, out_h))

        # Where the pasted crop lands, clipped to the frame.
        self._dst = (max(oy, 0), min(oy + ph, out_h), max(ox, 0), min(ox + pw, out_w))
        dy0, dy1, dx0, dx1 = self._dst
        self._src = (dy0 - oy, dy1 - oy, dx0 - ox, dx1 - ox)
        band = max(3, int(FEATHER * min(pw, ph)))
        self.band = band
        # Feather only the crop sides that lie inside the photo.
        ys = np.arange(ph, dtype=np.float32)[:, None]
        xs = np.arange(pw, dtype=np.float32)[None, :]
        big = np.float32(1e6)
        d_top = ys + 0.5 if oy > 0 else big
        d_bottom = ph - ys - 0.5 if oy + ph < out_h else big
        d_left = xs + 0.5 if ox > 0 else big
        d_right = pw - xs - 0.5 if ox + pw < out_w else big
        dist = np.minimum(np.minimum(d_top, d_bottom), np.minimum(d_left, d_right))
        t = np.clip(dist / band, 0, 1)
        self._alpha = (t * t * (3 - 2 * t))[..., None].astype(np.float32)  # (ph, pw, 1)
        self._inner = (band, ph - band, band, pw - band)  # pasted every frame
        self._static = self._blend(self._scaled_crop(rig.crop_image))
        self._static_i420 = cv2.cvtColor(self._static, cv2.COLOR_RGB2YUV_I420)

    @staticmethod
    def _resample(image, sx, sy, tx, ty, size) -> np.ndarray:
        """The photo mapped by o = s·x + t onto a `size` grid (area-averaged when shrinking)."""
        H, W = image.shape[:2]
        if sx < 1 or sy < 1:
            pre_w, pre_h = max(1, round(W * sx)), max(1, round(H * sy))
            image = cv2.resize(image, (pre_w, pre_h), interpolation=cv2.INTER_AREA)
            ax, ay = pre_w / W, pre_h / H
            # pre-shrunk pixel o' ↔ photo x = (o' + 0.5)/a − 0.5
            m = np.array([[sx / ax, 0, sx * (0.5 / ax - 0.5) + tx],
                          [0, sy / ay, sy * (0.5 / ay - 0.5) + ty]])
        else:
            m = np.array([[sx, 0, tx], [0, sy, ty]])
        return cv2.warpAffine(image, m, size, flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REPLICATE)

    def _scaled_crop(self, crop: np.ndarray) -> np.ndarray:
        if self.shrink < 1.0:
            return cv2.resize(crop, self.paste_size, interpolation=cv2.INTER_AREA)
        return crop

    def _blend(self, pasted: np.ndarray) -> np.ndarray:
        out = self.background.copy()
        dy0, dy1, dx0, dx1 = self._dst
        sy0, sy1, sx0, sx1 = self._src
        bg = out[dy0:dy1, dx0:dx1].astype(np.float32)
        a = self._alpha[sy0:sy1, sx0:sx1]
        mixed = bg + a * (pasted[sy0:sy1, sx0:sx1].astype(np.float32) - bg)
        out[dy0:dy1, dx0:dx1] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
        return out

    def _inside(self) -> tuple[int, int, int, int] | None:
        """(y0, y1, x0, x1): the part of the crop pasted every frame, clipped to the frame,
        in crop px; None when nothing of it is inside."""
        iy0, iy1, ix0, ix1 = self._inner
        ox, oy = self.origin
        ow, oh = self.output_size
        y0, y1 = max(iy0, -oy), min(iy1, oh - oy)
        x0, x1 = max(ix0, -ox), min(ix1, ow - ox)
        return (y0, y1, x0, x1) if y1 > y0 and x1 > x0 else None

    def compose(self, crop_frame: np.ndarray) -> np.ndarray:
        """Full (out_h, out_w, 3) frame with the animated crop pasted in."""
        pasted = self._scaled_crop(crop_frame)
        out = self._static.copy()
        inside = self._inside()
        if inside is not None:
            y0, y1, x0, x1 = inside
            ox, oy = self.origin
            out[oy + y0:oy + y1, ox + x0:ox + x1] = pasted[y0:y1, x0:x1]
        return out

    def compose_i420(self, crop_frame: np.ndarray) -> np.ndarray:
        """`compose` as (out_h * 3/2, out_w) I420 (`cv2.COLOR_RGB2YUV_I420`), the same bytes
        as converting the full frame: only the even-aligned box around the pasted inside is
        converted (chroma covers 2×2 pixel blocks), the rest is the static frame's."""
        out = self._static_i420.copy()
        inside = self._inside()
        if inside is None:
            return out
        pasted = self._scaled_crop(crop_frame)
        y0, y1, x0, x1 = inside
        ox, oy = self.origin
        ow, oh = self.output_size
        by0, bx0 = (oy + y0) // 2 * 2, (ox + x0) // 2 * 2  # the box, output px, even corners
        by1, bx1 = min(-(-(oy + y1) // 2) * 2, oh), min(-(-(ox + x1) // 2) * 2, ow)
        box = self._static[by0:by1, bx0:bx1].copy()
        box[oy + y0 - by0:oy + y1 - by0, ox + x0 - bx0:ox + x1 - bx0] = pasted[y0:y1, x0:x1]
        y_box, u_box, v_box = i420_planes(cv2.cvtColor(box, cv2.COLOR_RGB2YUV_I420))
        y_out, u_out, v_out = i420_planes(out)
        y_out[by0:by1, bx0:bx1] = y_box
        u_out[by0 // 2:by1 // 2, bx0 // 2:bx1 // 2] = u_box
        v_out[by0 // 2:by1 // 2, bx0 // 2:bx1 // 2] = v_box
        return out
