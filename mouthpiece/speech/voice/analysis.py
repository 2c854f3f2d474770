"""Acoustic statistics of speech used for voice and prosody transfer: F0 (WORLD DIO +
StoneMask), speech activity, energy, speaking rate (syllable nuclei per second), long-term
spectral envelope (WORLD CheapTrick)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

FRAME_S = 0.005  # seconds per WORLD frame
FLOOR_DB = -55.0  # dBFS below which a frame is never speech


@dataclass(frozen=True)
class World:
    """WORLD parameters of one signal. f0: (T,) Hz (0 = unvoiced); sp: (T, F) power
    envelope; ap: (T, F) aperiodicity; rate: Hz of the analysed signal."""

    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray
    rate: int


def pyworld_module():
    """pyworld, imported without its pkg_resources deprecation notice."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import pyworld
    return pyworld


def world_analyze(samples: np.ndarray, rate: int, with_ap: bool = True) -> World:
    pyworld = pyworld_module()

    x = np.asarray(samples, np.float64)
    f0, times = pyworld.dio(x, rate, f0_floor=60.0, f0_ceil=600.0, frame_period=FRAME_S * 1000)
    f0 = pyworld.stonemask(x, f0, times, rate)
    sp = pyworld.cheaptrick(x, f0, times, rate)
    ap = pyworld.d4c(x, f0, times, rate) if with_ap else np.zeros((0, 0))
    return World(f0, sp, ap, rate)


def frame_levels_db(samples: np.ndarray, rate: int) -> np.ndarray:
    """(T,) RMS level in dBFS per WORLD frame (5 ms hop, 25 ms window)."""
    hop, win = int(rate * FRAME_S), int(rate * 0.025)
    padded = np.pad(np.asarray(samples, np.float64), (win // 2, win // 2))
    n = 1 + max(0, (len(padded) - win) // hop)
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]  # (T, win)
    power = np.mean(padded[idx] ** 2, axis=1)
    return 10 * np.log10(power + 1e-12)


def speech_mask(levels_db: np.ndarray) -> np.ndarray:
    """(T,) bool: frames within 35 dB of the loud (95th percentile) level and above the floor."""
    if not len(levels_db):
        return np.zeros(0, bool)
    loud = np.percentile(levels_db, 95)
    return (levels_db > max(loud - 35.0, FLOOR_DB))


def syllable_rate(levels_db: np.ndarray, voiced: np.ndarray, mask: np.ndarray) -> float:
    """Syllable nuclei per second of speech: peaks of the smoothed level contour that are
    voiced, ≥ 3 dB prominent and ≥ 100 ms apart (de Jong & Wempe style)."""
    kernel = np.hanning(9)  # ~45 ms
    smooth = np.convolve(levels_db, kernel / kernel.sum(), mode="same")
    peaks, _ = find_peaks(smooth, prominence=3.0, distance=int(0.1 / FRAME_S))
    n = min(len(voiced), len(smooth))
    peaks = [p for p in peaks if p < n and voiced[p] and mask[p]]
    speech_s = max(float(mask.sum()) * FRAME_S, 0.2)
    return len(peaks) / speech_s


@dataclass(frozen=True)
class Prosody:
    """Speaker-level prosody: F0 in log2 Hz (mean, std → semitones = 12·log2), F0 dynamics
    (std of frame-to-frame log F0 change, octaves per frame), speech level and its spread in
    dB, syllables per second of speech."""

    logf0_mean: float
    logf0_std: float
    logf0_delta_std: float
    level_db: float
    level_std_db: float
    syllables_per_s: float

    def as_dict(self) -> dict:
        return {
            "f0_mean_hz": round(2 ** self.logf0_mean, 1),
            "f0_range_semitones": round(12 * self.logf0_std, 2),
            "level_db": round(self.level_db, 1),
            "level_std_db": round(self.level_std_db, 2),
            "syllables_per_s": round(self.syllables_per_s, 2),
        }


def prosody_of(world: World, levels_db: np.ndarray) -> Prosody:
    n = min(len(world.f0), len(levels_db))
    f0, levels = world.f0[:n], levels_db[:n]
    mask = speech_mask(levels)
    voiced = (f0 > 0) & mask
    if voiced.sum() < 20:
        raise ValueError("too little voiced speech to measure pitch")
    logf0 = np.log2(f0[voiced])
    both = voiced[1:] & voiced[:-1]
    deltas = np.diff(np.log2(np.where(f0 > 0, f0, 1.0)))[both]
    speech_levels = levels[mask]
    return Prosody(
        logf0_mean=float(np.mean(logf0)),
        logf0_std=float(np.std(logf0)),
        logf0_delta_std=float(np.std(deltas)) if len(deltas) else 0.0,
        level_db=float(np.mean(speech_levels)),
        level_std_db=float(np.std(speech_levels)),
        syllables_per_s=syllable_rate(levels, f0 > 0, mask),
    )


def mean_log_envelope(world: World, levels_db: np.ndarray) -> np.ndarray:
    """(F,) mean natural-log power envelope over voiced speech frames, level-normalised
    (each frame's envelope divided by its mean power) so loudness does not bias it."""
    n = min(len(world.f0), len(levels_db))
    mask = speech_mask(levels_db[:n]) & (world.f0[:n] > 0)
    if mask.sum() < 10:
        mask = speech_mask(levels_db[:n])
    log_sp = np.log(world.sp[:n][mask] + 1e-16)  # (T', F)
    log_sp -= log_sp.mean(axis=1, keepdims=True)
    return log_sp.mean(axis=0)
