"""Temporal filtering of motion: strong on head/expression, light on the mouth.

Head and expression get a Gaussian low-pass (σ = 80 ms): the sampler is smooth already, this
removes any residual frame-to-frame grain. Mouth channels get a short Savitzky–Golay filter
(≈ 0.2 s, quadratic), which keeps peak heights far better than a moving average. Inside
`build_track` the mouth is filtered *before* the closure constraints are imposed, so no /p/ or
/f/ can be filtered away; `smooth_track` (for tracks from elsewhere, e.g. fitted to a video)
instead restores closures and tucks wherever the unfiltered track had them. Blinks are never
filtered: their shape is designed (fast close, slow open) and a low-pass would half-close them.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from mouthpiece.motion.signal import savgol
from mouthpiece.types import MOUTH_CHANNELS, MotionTrack

HEAD_SIGMA_S = 0.08
MOUTH_WINDOW_S = 0.2
MOUTH_POLYORDER = 2
HEAD_SMOOTHED = ("head_yaw", "head_pitch", "head_roll", "head_tx", "head_ty", "brow_up")
PRESS_KEEP = 0.85
TUCK_KEEP = 0.7


def smooth_head(track: MotionTrack) -> None:
    """Low-pass head pose and brows in place."""
    if track.n_frames < 3:
        return
    for name in HEAD_SMOOTHED:
        track[name] = gaussian_filter1d(track[name], sigma=HEAD_SIGMA_S * track.fps,
                                        mode="nearest")


def smooth_mouth(mouth: np.ndarray, fps: float) -> np.ndarray:
    """Savitzky–Golay filter of the mouth channels, (T, 7) → (T, 7), never below 0.

    At low frame rates (window < 5 frames) frames are ≥ 50 ms apart and it does nothing."""
    n = len(mouth)
    window = int(round(MOUTH_WINDOW_S * fps)) | 1  # odd, frames
    window = min(window, n if n % 2 else n - 1)
    if window <= MOUTH_POLYORDER + 2:
        return mouth
    out = savgol(mouth, window, MOUTH_POLYORDER)
    # the quadratic overshoots below zero at the edge of a rest stretch: that is not motion
    return np.maximum(out, 0.0).astype(mouth.dtype)


def smooth_track(track: MotionTrack) -> MotionTrack:
    """A smoothed copy of any `track`, keeping its lip closures and tucks."""
    out = MotionTrack(track.fps, track.values.copy(), track.channels, dict(track.meta))
    smooth_head(out)
    cols = [track.channels.index(c) for c in MOUTH_CHANNELS]
    out.values[:, cols] = smooth_mouth(track.values[:, cols], track.fps)
    press, tuck = track["lip_press"], track["lower_lip_tuck"]
    closed = press >= PRESS_KEEP
    out["lip_press"] = np.where(closed, np.maximum(out["lip_press"], press), out["lip_press"])
    out["jaw_open"] = np.where(closed, np.minimum(out["jaw_open"], track["jaw_open"]),
                               out["jaw_open"])
    tucked = tuck >= TUCK_KEEP
    out["lower_lip_tuck"] = np.where(tucked, np.maximum(out["lower_lip_tuck"], tuck),
                                     out["lower_lip_tuck"])
    return out
