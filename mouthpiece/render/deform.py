"""The "blendshape" model: one row of channel values → target landmark positions.

Every channel is a displacement basis over the 468 landmarks, defined in the head frame
(`frame.HeadFrame`) with smooth spatial falloff, so one set of numbers suits any face size,
in-plane rotation or head turn. Mouth shapes follow the articulators (JALI-like): the jaw is a
rotation about a hinge near the ears, the lips are displaced on top of it, and `lip_press` is
applied last as a constraint that brings the inner lips together whatever the jaw does.
Rigid head motion (3-D rotation using the landmarks' depth, then translation) comes after.
"""

from __future__ import annotations

import numpy as np

from mouthpiece.render.frame import HeadFrame
from mouthpiece.topology import (
    LEFT_BROW,
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    LIPS_INNER_LOWER,
    LIPS_INNER_UPPER,
    MOUTH_CORNER_L,
    MOUTH_CORNER_R,
    RIGHT_BROW,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
)
from mouthpiece.types import CHANNEL_NAMES, N_LANDMARKS, Landmarks

# Inner-lip columns: (upper, lower) landmark pairs from the subject's right corner to the left.
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = tuple(
    zip(LIPS_INNER_UPPER, LIPS_INNER_LOWER[::-1])
)
JAW_HINGE = np.array([0.0, 0.3, 0.9])  # head units: in front of the ears, behind the face
JAW_GAP_OF_MOUTH_WIDTH = 0.40  # inner-lip gap at jaw_open = 1, × mouth width
JAW_BLEND_MAX = 0.12  # head units: widest jaw/skull transition band, far beside the mouth
JAW_TOP, JAW_TOP_RAMP = -0.45, 0.15  # head units below the lip line: above it, no jaw at all
BROW_LIFT = 0.07  # head units at brow_up = 1
_CH = {name: i for i, name in enumerate(CHANNEL_NAMES)}


def deform_landmarks(landmarks: Landmarks, values: np.ndarray) -> np.ndarray:
    """(468, 2) image positions of `landmarks` animated by one row of channel values
    (order `CHANNEL_NAMES`). All zeros returns the landmarks' own x, y."""
    return FaceDeformer(landmarks.points).deform(values)


def _interp(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    order = np.argsort(xs)
    return np.interp(x, xs[order], ys[order])


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3 - 2 * t)


class FaceDeformer:
    """Per-face bases, precomputed once; `deform(values)` is then a few small array ops."""

    def __init__(self, points: np.ndarray):
        self.points = np.asarray(points, np.float64)  # (468, 3) px
        if self.points.shape != (N_LANDMARKS, 3):
            raise ValueError(f"expected ({N_LANDMARKS}, 3) landmarks, got {self.points.shape}")
        self.frame = HeadFrame.from_points(self.points)
        self.rest = self.frame.to_head(self.points)  # (468, 3) head units
        self._build_mouth()
        self._build_eyes_and_brows()

    # ---- mouth ------------------------------------------------------------------------------
    def _build_mouth(self) -> None:
        q = self.rest
        X, Y = q[:, 0], q[:, 1]
        right, left = q[MOUTH_CORNER_R], q[MOUTH_CORNER_L]
        centre = (right + left) / 2
        self.mouth_half_width = hw = float(np.linalg.norm((left - right)[:2]) / 2)
        up = np.array([u for u, _ in INNER_LIP_PAIRS])
        lo = np.array([low for _, low in INNER_LIP_PAIRS])
        mid_x = (q[up, 0] + q[lo, 0]) / 2
        mid_y = (q[up, 1] + q[lo, 1]) / 2
        s = (X - centre[0]) / hw  # −1 … 1 between the outer corners
        dv = Y - _interp(X, mid_x, mid_y)  # head units below the lip midline
        a = np.abs(s)
        self._s, self._dv = s, dv
        # Terms that move the two lips differently must vanish at the inner corners, or the
        # lips would tear open beyond the corners of the opening.
        inner_a = float(np.mean(np.abs(s[[INNER_LIP_PAIRS[0][0], INNER_LIP_PAIRS[-1][0]]])))
        between = np.clip(1 - (a / inner_a) ** 2, 0, 1)
        # Lateral profile that stretches the mouth: s inside, decays beyond the corners.
        lateral = np.where(a <= 1, s, np.sign(s) * np.exp(-(((a - 1) / 0.7) ** 2)))
        upper_lip = (dv < 0) * np.exp(-((dv / 0.10) ** 2)) * between
        lower_lip = (dv > 0) * np.exp(-((dv / 0.10) ** 2)) * between
        inner_upper = (dv < 0) * np.exp(dv / 0.05) * between
        inner_lower = (dv > 0) * np.exp(-dv / 0.05) * between
        near_mouth = np.exp(-((dv / 0.22) ** 2))
        bulge = np.sqrt(between)  # round-opening profile

        # Jaw: share of the jaw rotation each point follows. A step between the lips, then
        # smoother from the inner corners outwards (the corners stretch, they do not tear);
        # the lip corners sit half way. The blend stays a band around the lip line (it grew
        # without bound before, so the outer eye corners followed 35 % of the jaw: 3 px at
        # jaw_open 0.3), and nothing above the cheekbones follows the jaw at all.
        sigma = 0.004 + np.minimum(1.5 * np.clip(a - inner_a, 0, None), JAW_BLEND_MAX)
        with np.errstate(over="ignore"):
            self._jaw_weight = (1.0 / (1.0 + np.exp(-dv / sigma))
                                * _smoothstep((dv - JAW_TOP) / JAW_TOP_RAMP))
        gap_target = JAW_GAP_OF_MOUTH_WIDTH * 2 * hw
        rest_gap = float(q[14, 1] - q[13, 1])
        # A photo with parted lips opens less far, but always by at least half the target.
        added = float(np.clip(gap_target - rest_gap, 0.5 * gap_target, gap_target))
        # The lips part a little more than the jaw turns: lower lip drops, upper lip lifts.
        self._lip_drop = added * (0.25 * inner_lower - 0.06 * inner_upper)
        self._jaw_angle = self._solve_jaw_angle(added)

        z3 = np.zeros((N_LANDMARKS, 3))
        wide = z3.copy()
        wide[:, 0] = 0.06 * lateral * near_mouth
        wide[:, 2] = 0.03 * np.clip(a, 0, 1.5) ** 2 * near_mouth
        wide[:, 1] = 0.012 * (upper_lip - lower_lip) * (1 - np.exp(-np.abs(dv) / 0.03))

        rnd = z3.copy()
        rnd[:, 0] = -0.32 * hw * lateral * near_mouth
        rnd[:, 1] = (-0.035 * upper_lip - 0.045 * lower_lip) * bulge
        rnd[:, 1] += (-0.02 * inner_upper + 0.02 * inner_lower) * bulge
        rnd[:, 2] = -0.06 * (upper_lip + lower_lip)

        lip_up = z3.copy()
        snarl = np.clip(1 - (a / inner_a) ** 4, 0, 1) ** 0.5
        lip_up[:, 1] = -0.07 * (dv < 0) * np.exp(-((dv / 0.16) ** 2)) * snarl * between

        smile = z3.copy()
        spread = np.where(a <= 1, a * a, np.exp(-(((a - 1) / 0.6) ** 2)))
        falloff = np.exp(-((dv / 0.25) ** 2)) * spread
        smile[:, 0] = 0.045 * np.sign(s) * falloff
        smile[:, 1] = -0.05 * falloff
        smile[:, 2] = 0.02 * falloff

        self._linear_mouth = {
            "lip_wide": wide, "lip_round": rnd, "upper_lip_up": lip_up,
            "smile": smile,
        }
        # lip_press: the lip bodies follow their inner edge as it closes; outer parts less.
        self._press_upper = (dv < 0) * np.exp(-((dv / 0.09) ** 2)) * between ** 0.5
        self._press_lower = (dv > 0) * np.exp(-((dv / 0.09) ** 2)) * between ** 0.5
        self._pairs_up, self._pairs_lo = up, lo

    def _solve_jaw_angle(self, added_gap: float) -> float:
        """Jaw rotation (radians) at jaw_open = 1 that opens the inner-lip centre by
        `added_gap` head units (bisection; the gap grows monotonically with the angle)."""
        lo_angle, hi_angle = 0.0, 0.8
        for _ in range(40):
            angle = (lo_angle + hi_angle) / 2
            d = self._jaw_offsets(1.0, angle)
            gap = d[14, 1] - d[13, 1]
            lo_angle, hi_angle = (angle, hi_angle) if gap < added_gap else (lo_angle, angle)
        return (lo_angle + hi_angle) / 2

    def _jaw_offsets(self, jaw: float, max_angle: float) -> np.ndarray:
        """(468, 3) head-unit offsets of the jaw rotated by jaw × max_angle about the hinge."""
        rel = self.rest - JAW_HINGE
        c, s = np.cos(jaw * max_angle), np.sin(jaw * max_angle)
        d = np.zeros_like(rel)
        d[:, 1] = (rel[:, 1] * c - rel[:, 2] * s - rel[:, 1]) * self._jaw_weight
        d[:, 2] = (rel[:, 1] * s + rel[:, 2] * c - rel[:, 2]) * self._jaw_weight
        d[:, 1] += jaw * self._lip_drop
        return d

    # ---- eyes and brows ---------------------------------------------------------------------
    def _build_eyes_and_brows(self) -> None:
        q = self.rest
        X, Y = q[:, 0], q[:, 1]
        brow_lower = np.array(RIGHT_BROW[:5] + LEFT_BROW[:5])
        y_brow = _interp(X, q[brow_lower, 0], q[brow_lower, 1])
        self._blink = {}
        for channel, upper, lower in (
            ("blink_r", RIGHT_EYE_UPPER, RIGHT_EYE_LOWER),
            ("blink_l", LEFT_EYE_UPPER, LEFT_EYE_LOWER),
        ):
            upper, lower = np.array(upper), np.array(lower)
            x_lo, x_hi = q[upper, 0].min(), q[upper, 0].max()
            width = x_hi - x_lo
            y_u = _interp(X, q[upper, 0], q[upper, 1])
            y_l = _interp(X, q[lower, 0], q[lower, 1])
            y_close = y_l - 0.15 * np.clip(y_l - y_u, 0, None)  # lids meet near the bottom
            y_b = _interp(X, q[upper, 0], y_brow[upper])
            outside = np.clip(np.maximum(x_lo - X, X - x_hi), 0, None)
            lateral = np.exp(-((outside / (0.25 * width)) ** 2))
            lid = np.clip(1 - (y_u - Y) / np.maximum(y_u - y_b, 1e-3), 0, 1) ** 1.5
            lid = np.where(Y > y_u, 0.0, lid) * lateral
            d = np.zeros_like(q)
            d[:, 1] = (y_close - y_u) * lid
            d[upper, 1] = y_close[upper] - Y[upper]
            d[lower, 1] = y_close[lower] - Y[lower]
            self._blink[channel] = d

        upper_lids = np.array(RIGHT_EYE_UPPER + LEFT_EYE_UPPER)
        y_lid = _interp(X, q[upper_lids, 0], q[upper_lids, 1])
        brows = np.array(RIGHT_BROW + LEFT_BROW)
        x_lo, x_hi = q[brows, 0].min() - 0.1, q[brows, 0].max() + 0.1
        outside = np.clip(np.maximum(x_lo - X, X - x_hi), 0, None)
        lateral = np.exp(-((outside / 0.2) ** 2))
        between = np.clip((y_lid - Y) / np.maximum(y_lid - y_brow, 1e-3), 0, 1)
        above = np.exp(-np.clip(y_brow - Y, 0, None) / 0.6)
        w = np.where(Y < y_brow, above, between) * (Y < y_lid) * lateral
        brow = np.zeros_like(q)
        brow[:, 1] = -BROW_LIFT * w
        self._brow = brow

    # ---- evaluation -------------------------------------------------------------------------
    def expression_offsets(self, values: np.ndarray) -> np.ndarray:
        """(468, 3) head-unit displacements of every non-head channel of one value row."""
        v = np.asarray(values, np.float64)
        if v.shape != (len(CHANNEL_NAMES),):
            raise ValueError(f"expected {len(CHANNEL_NAMES)} channel values, got {v.shape}")
        d = np.zeros_like(self.rest)
        jaw = v[_CH["jaw_open"]]
        if jaw != 0:
            d += self._jaw_offsets(jaw, self._jaw_angle)
        for name, basis in self._linear_mouth.items():
            if v[_CH[name]] != 0:
                d += v[_CH[name]] * basis
        for name, basis in self._blink.items():
            if v[_CH[name]] != 0:
                d += np.clip(v[_CH[name]], 0, 1) * basis
        if v[_CH["brow_up"]] != 0:
            d += v[_CH["brow_up"]] * self._brow
        tuck = float(np.clip(v[_CH["lower_lip_tuck"]], 0, 1))
        if tuck > 0:
            d += tuck * self._tuck_offsets(d)
        press = float(np.clip(v[_CH["lip_press"]], 0, 1))
        if press > 0:
            d += press * self._press_offsets(d)
        return d

    def _tuck_offsets(self, d: np.ndarray) -> np.ndarray:
        """Displacement that lifts the lower lip up and back under the upper teeth, whose edge
        stays where the photo's upper inner lip is (the teeth are fixed to the skull)."""
        cur = self.rest + d
        up, lo = self._pairs_up, self._pairs_lo
        target = self.rest[up] + [0.0, 0.01, 0.04]  # just under the teeth edge, tucked back
        lift = np.zeros((len(lo), 3))
        lift[:, 1:] = target[:, 1:] - cur[lo, 1:]
        lift[[0, -1]] = 0.0  # the corners stay
        out = np.zeros_like(d)
        for axis in (1, 2):
            out[:, axis] = _interp(cur[:, 0], cur[lo, 0], lift[:, axis]) * self._press_lower
        out[lo] = lift
        return out

    def _press_offsets(self, d: np.ndarray) -> np.ndarray:
        """Displacement that makes each inner-lip pair meet at its midpoint (given the current
        deformation `d`), spread over the lip bodies, plus a slight thinning of the lips."""
        cur = self.rest + d
        up, lo = self._pairs_up, self._pairs_lo
        mid = (cur[up] + cur[lo]) / 2  # (11, 3)
        close_up = mid - cur[up]
        close_lo = mid - cur[lo]
        X = cur[:, 0]
        out = np.zeros_like(d)
        for axis in range(3):
            out[:, axis] = (
                _interp(X, cur[up, 0], close_up[:, axis]) * self._press_upper
                + _interp(X, cur[lo, 0], close_lo[:, axis]) * self._press_lower
            )
        out[up] = close_up  # the inner edges meet exactly
        out[lo] = close_lo
        thin = 0.012 * (self._press_upper - self._press_lower) * (np.abs(self._dv) > 0.03)
        thin[up] = thin[lo] = 0.0
        out[:, 1] += thin
        return out

    def expression_image_offsets(self, values: np.ndarray) -> np.ndarray:
        """(468, 3) image-px displacements of the expression channels (no head motion)."""
        return self.frame.vectors_to_image(self.expression_offsets(values))

    def deform(self, values: np.ndarray) -> np.ndarray:
        """(468, 2) image positions for one row of channel values."""
        moved = self.points + self.expression_image_offsets(values)  # (468, 3) px
        matrix, offset = self.frame.head_motion(values)
        moved = moved @ matrix.T + offset
        return moved[:, :2].astype(np.float32)
