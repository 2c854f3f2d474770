"""Lip-sync correction: estimate a constant audio/video offset and shift the mouth to remove it.

The mouth-opening curve (jaw_open) is cross-correlated with the audio's opening envelope
(acoustic openness × loudness) over lags within ±0.1 s; the best lag is refined to a fraction of
a frame with a parabola through the peak. Positive offset = the mouth is late (it moves after
the sound). The mouth channels are shifted by the rounded number of frames — whole frames keep
bilabial closures intact, which interpolation would blur — and only when the evidence is
clear (a well-correlated peak that beats zero lag, and at least 45 ms away), so a track that
is already in sync is never nudged by noise.
"""

from __future__ import annotations

import numpy as np

from mouthpiece.types import MOUTH_CHANNELS, MotionTrack

MAX_OFFSET_S = 0.1
MIN_PEAK_CORRELATION = 0.3
MIN_GAIN_OVER_ZERO = 0.02  # correlation at the best lag must beat lag 0 by this much
# Offsets under 45 ms are left alone: below the detectability threshold for audio leading
# video (ITU-R BT.1359), and the estimate itself carries ~±25 ms of content-dependent bias
# (measured on festival speech with exact timings), so "correcting" them would do harm.
DEAD_ZONE_S = 0.045


def audio_envelope(series: dict[str, np.ndarray]) -> np.ndarray | None:
    """The audio's mouth-opening envelope per frame, or None without loudness/openness."""
    loud, openness = series.get("loudness"), series.get("open")
    if loud is None and openness is None:
        return None
    if loud is None:
        return np.asarray(openness, np.float64)
    if openness is None:
        return np.asarray(loud, np.float64)
    return np.sqrt(np.clip(loud, 0, None) * np.clip(openness, 0, None))


def lagged_correlations(mouth: np.ndarray, audio: np.ndarray, max_lag: int) -> np.ndarray:
    """Pearson correlation of mouth[t + lag] with audio[t] for lag = −max_lag … max_lag."""
    out = np.full(2 * max_lag + 1, -1.0)
    n = len(mouth)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        a = mouth[max(lag, 0): n + min(lag, 0)]
        b = audio[max(-lag, 0): n - max(lag, 0)]
        if len(a) < 3 or a.std() < 1e-6 or b.std() < 1e-6:
            continue
        out[i] = float(np.corrcoef(a, b)[0, 1])
    return out


def estimate_offset(mouth: np.ndarray, audio: np.ndarray, fps: float
                    ) -> tuple[float, float, float]:
    """(offset_s, peak correlation, correlation at lag 0); offset > 0: mouth lags the audio."""
    max_lag = max(int(np.ceil(MAX_OFFSET_S * fps)), 1)
    corr = lagged_correlations(np.asarray(mouth, np.float64), np.asarray(audio, np.float64),
                               max_lag)
    best = int(np.argmax(corr))
    frac = 0.0
    if 0 < best < len(corr) - 1:
        left, mid, right = corr[best - 1: best + 2]
        curvature = left - 2 * mid + right
        if curvature < 0:
            frac = 0.5 * (left - right) / curvature
    offset_s = float(np.clip((best - max_lag + frac) / fps, -MAX_OFFSET_S, MAX_OFFSET_S))
    return offset_s, float(corr[best]), float(corr[max_lag])


def shift_channels(track: MotionTrack, frames: int, channels=MOUTH_CHANNELS) -> None:
    """Move `channels` earlier by `frames` (later if negative), in place; edges repeat."""
    if frames == 0:
        return
    idx = np.clip(np.arange(track.n_frames) + frames, 0, track.n_frames - 1)
    for name in channels:
        track[name] = track[name][idx]


def correct_offset(track: MotionTrack, series: dict[str, np.ndarray]) -> MotionTrack:
    """Estimate the A/V offset, shift the mouth if it is clear; report in `track.meta`:
    `av_offset_s` (estimate), `av_offset_applied_s` (shift actually applied)."""
    audio = audio_envelope(series)
    applied = 0
    estimate = 0.0
    if audio is not None and track.n_frames >= 8:
        estimate, peak, at_zero = estimate_offset(track["jaw_open"], audio, track.fps)
        frames = int(round(estimate * track.fps))
        if (peak >= MIN_PEAK_CORRELATION and peak - at_zero >= MIN_GAIN_OVER_ZERO
                and abs(estimate) >= DEAD_ZONE_S and frames != 0):
            applied = frames
            shift_channels(track, frames)
    track.meta["av_offset_s"] = round(estimate, 4)
    track.meta["av_offset_applied_s"] = round(applied / track.fps, 4)
    return track
