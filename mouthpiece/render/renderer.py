"""Renderer: one FaceRig, precomputed once; then one RGB frame per row of motion values."""

from __future__ import annotations

import cv2
import numpy as np

from mouthpiece.render.compose import FrameCompositor
from mouthpiece.render.deform import FaceDeformer
from mouthpiece.render.eyes import EyelidPainter
from mouthpiece.render.mouth import MouthPainter
from mouthpiece.render.warp import FaceWarp
from mouthpiece.types import CHANNEL_NAMES, HEAD_CHANNELS, FaceRig, InputError

_HEAD = np.array([CHANNEL_NAMES.index(c) for c in HEAD_CHANNELS])
_BLINK = (CHANNEL_NAMES.index("blink_r"), CHANNEL_NAMES.index("blink_l"))  # EyelidPainter order


def _even(frame: np.ndarray) -> np.ndarray:
    """The frame cut to even width and height (what H.264 in 4:2:0 takes)."""
    h, w = frame.shape[:2]
    return frame[: h - h % 2, : w - w % 2]


class Renderer:
    """Animates the crop of `rig` and, with `full_frame`, composites it into the photo.

    The warp, head mask, mouth colours and the scaled photo are prepared here, so `render`
    only does per-frame work: deform the landmarks, build a backward map, remap, paint the
    mouth interior and the lids, paste.
    """

    def __init__(self, rig: FaceRig, *, full_frame: bool = True):
        crop = np.ascontiguousarray(rig.crop_image)
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
            raise InputError("the face crop must be an (h, w, 3) uint8 RGB image")
        self.rig = rig
        self.crop = crop
        h, w = crop.shape[:2]
        self.deformer = FaceDeformer(rig.landmarks.points)
        self.warp = FaceWarp(self.deformer, (w, h))
        self.mouth = MouthPainter(crop, rig.landmarks.points, self.deformer)
        self.eyes = EyelidPainter(crop, rig.landmarks.points, self.deformer)
        self.compositor = FrameCompositor(rig) if full_frame else None
        self._rest_xy = rig.landmarks.points[:, :2].astype(np.float64)

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the frames `render` returns — both even."""
        if self.compositor is not None:
            return self.compositor.output_size
        h, w = self.crop.shape[:2]
        return w - w % 2, h - h % 2

    def render(self, values: np.ndarray) -> np.ndarray:
        """One (h, w, 3) uint8 RGB frame for one row of channel values (`CHANNEL_NAMES`)."""
        frame = self.render_crop(values)
        if self.compositor is not None:
            return self.compositor.compose(frame)
        return _even(frame)

    def finish_i420(self, crop_frame: np.ndarray) -> np.ndarray:
        """The output frame of an animated crop (from `render_crop`) as (h * 3/2, w) I420,
        what `VideoWriter.write_deferred` encodes: `render` then RGB→I420, done cheaper."""
        if self.compositor is not None:
            return self.compositor.compose_i420(crop_frame)
        return cv2.cvtColor(np.ascontiguousarray(_even(crop_frame)), cv2.COLOR_RGB2YUV_I420)

    def render_crop(self, values: np.ndarray) -> np.ndarray:
        """The animated crop, (h, w, 3) uint8 RGB, at the rig's working resolution."""
        v = np.asarray(values, np.float64)
        if v.shape != (len(CHANNEL_NAMES),):
            raise InputError(f"expected one row of {len(CHANNEL_NAMES)} motion values, "
                             f"got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise InputError("motion values must be finite numbers")
        frame = self.crop.copy()
        offsets = self.deformer.expression_image_offsets(v)[:, :2]  # (468, 2) px
        head = (self.warp.head_field(*self.deformer.frame.head_motion(v))
                if v[_HEAD].any() else None)
        blinks = (float(np.clip(v[_BLINK[0]], 0, 1)), float(np.clip(v[_BLINK[1]], 0, 1)))
        # Where the warp puts each landmark: the forward field sampled at its rest position.
        head_shift = (self.warp.head_displacement_at(self._rest_xy, head)
                      if head is not None else 0.0)
        moved = self._rest_xy + offsets + head_shift
        still = self._rest_xy + head_shift
        has_expression = bool(np.abs(offsets).max() > 1e-3)
        if has_expression or head is not None:
            warp_map = self.warp.backward_map(offsets if has_expression else None, head)
            self.eyes.fix_map(warp_map.src, warp_map.region, moved, still, blinks)
            self.warp.apply(frame, self.crop, warp_map)
        self.mouth.paint(frame, moved)
        self.eyes.paint(frame, moved, still, blinks)
        return frame
