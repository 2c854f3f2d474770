"""Natural eye blinks: a renewal process with a refractory period, denser at phrase boundaries.

Blink times follow a hazard λ(t) ∝ 1 + BOUNDARY_BOOST · b(t), normalised to a mean of
BASE_RATE over the clip, that only starts after a refractory period since the previous blink;
b(t) is a bump around speech onsets and offsets (people blink at pauses and phrase edges), so
boundaries attract blinks without changing the overall rate (≈ 15–17 per minute). Each blink
closes fast (70–100 ms), may hold briefly, and opens slowly (150–200 ms); the moment of full
closure is snapped to a frame so a rendered video always shows the closed lid. Both eyes blink
together; the right lid lags by a few milliseconds and closes a hair less (natural asymmetry).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

BASE_RATE = 0.42  # blinks per second once the refractory period is over
REFRACTORY_S = 1.6
BOUNDARY_BOOST = 3.0
BOUNDARY_SIGMA_S = 0.3
HAZARD_GRID_HZ = 100.0  # resolution of the hazard integral


def boundary_bumps(speech: np.ndarray | None, fps: float, times: np.ndarray) -> np.ndarray:
    """(len(times),) in [0, 1]: bumps around speech onsets/offsets (phrase boundaries)."""
    if speech is None or len(speech) < 2:
        return np.zeros(len(times))
    frame_times = np.arange(len(speech)) / fps
    active = gaussian_filter1d((np.asarray(speech) > 0.5).astype(float), sigma=1.0)
    edges = frame_times[np.flatnonzero(np.abs(np.diff(active > 0.5)))] + 0.5 / fps
    bumps = np.zeros(len(times))
    for edge in edges:
        lo, hi = np.searchsorted(times, [edge - 4 * BOUNDARY_SIGMA_S, edge + 4 * BOUNDARY_SIGMA_S])
        bump = np.exp(-0.5 * ((times[lo:hi] - edge) / BOUNDARY_SIGMA_S) ** 2)
        bumps[lo:hi] = np.maximum(bumps[lo:hi], bump)
    return bumps


def blink_times(duration_s: float, rng: np.random.Generator, speech: np.ndarray | None,
                fps: float) -> np.ndarray:
    """Times (seconds) of full lid closure within [0, duration_s)."""
    grid = np.arange(0.0, duration_s, 1.0 / HAZARD_GRID_HZ)
    if len(grid) == 0:
        return np.zeros(0)
    boost = 1.0 + BOUNDARY_BOOST * boundary_bumps(speech, fps, grid)
    hazard = BASE_RATE * boost / boost.mean()  # 1/s; boundaries move blinks, not add them
    cumulative = np.concatenate([[0.0], np.cumsum(hazard) / HAZARD_GRID_HZ])  # at grid edges
    # the last blink before the clip happened some time ago
    free_from = -rng.uniform(0.0, REFRACTORY_S + 1.0 / BASE_RATE) + REFRACTORY_S
    times = []
    while True:
        start = int(np.clip(np.ceil(free_from * HAZARD_GRID_HZ), 0, len(grid)))
        if start >= len(grid):
            break
        target = cumulative[start] + rng.exponential()
        k = int(np.searchsorted(cumulative, target))
        if k > len(grid):
            break
        t = grid[k - 1] if k > 0 else 0.0
        times.append(t)
        free_from = t + REFRACTORY_S
    return np.asarray(times)


def blink_curves(times_s: np.ndarray, n_frames: int, fps: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Lid closure per frame for blinks at `times_s` → (T, 2): blink_l, blink_r in [0, 1]."""
    frame_times = np.arange(n_frames) / fps
    out = np.zeros((n_frames, 2), np.float32)
    for t in times_s:
        peak = round(t * fps) / fps  # snap full closure onto a frame
        close_s = rng.uniform(0.07, 0.10)
        hold_s = rng.uniform(0.0, 0.04)
        open_s = rng.uniform(0.15, 0.20)
        lag_s = rng.uniform(0.0, 0.008)
        depth_r = rng.uniform(0.97, 1.0)
        lo, hi = np.searchsorted(frame_times, [peak - close_s, peak + 0.3])
        for eye, (shift, depth) in enumerate(((0.0, 1.0), (lag_s, depth_r))):
            out[lo:hi, eye] = np.maximum(out[lo:hi, eye], depth * lid_shape(
                frame_times[lo:hi] - (peak + shift), close_s, hold_s, open_s))
    return out


def lid_shape(tau: np.ndarray, close_s: float, hold_s: float, open_s: float) -> np.ndarray:
    """Closure at time `tau` relative to the moment of full closure (τ = 0)."""
    shape = np.zeros_like(tau, dtype=np.float64)
    closing = (tau > -close_s) & (tau < 0)
    shape[closing] = np.sin(0.5 * np.pi * (tau[closing] + close_s) / close_s) ** 2
    shape[(tau >= 0) & (tau <= hold_s)] = 1.0
    opening = (tau > hold_s) & (tau < hold_s + open_s)
    shape[opening] = 0.5 * (1.0 + np.cos(np.pi * (tau[opening] - hold_s) / open_s))
    return shape


def sample_blinks(series: dict[str, np.ndarray], n_frames: int, fps: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Blinks for a clip → (T, 2) (blink_l, blink_r)."""
    times = blink_times(n_frames / fps, rng, series.get("speech"), fps)
    return blink_curves(times, n_frames, fps, rng)
