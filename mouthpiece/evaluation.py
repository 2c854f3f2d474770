"""Measuring what users judge: lip sync against known phoneme timings, and identity kept.

Lip sync is measured on the *output video*: landmarks are re-detected on every frame, the
inner-lip gap is compared with an "expected openness" series built from the phoneme timings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mouthpiece.face import LandmarkTracker
from mouthpiece.media import read_video_frames
from mouthpiece.topology import inter_ocular
from mouthpiece.types import PhonemeSegment

# Expected jaw/lip opening per phone (0 closed … 1 widest), a coarse articulatory table.
OPENNESS: dict[str, float] = {
    "AA": 1.0, "AE": 0.85, "AH": 0.75, "AO": 0.85, "AW": 0.9, "AY": 0.9, "EH": 0.65, "ER": 0.45,
    "EY": 0.55, "IH": 0.45, "IY": 0.3, "OW": 0.6, "OY": 0.65, "UH": 0.4, "UW": 0.3,
    "P": 0.0, "B": 0.0, "M": 0.0, "F": 0.1, "V": 0.1, "W": 0.2, "TH": 0.2, "DH": 0.2,
    "S": 0.15, "Z": 0.15, "SH": 0.2, "ZH": 0.2, "CH": 0.2, "JH": 0.2, "T": 0.25, "D": 0.25,
    "N": 0.25, "L": 0.3, "R": 0.3, "Y": 0.3, "K": 0.3, "G": 0.3, "NG": 0.3, "HH": 0.4, "SIL": 0.0,
}
BILABIALS = frozenset({"P", "B", "M"})
# Inner-lip gap (mean of three inner-lip pairs) below which lips count as closed,
# in inter-ocular distances (≈ 3–4 mm on an adult face).
CLOSED_GAP_IOD = 0.04
INNER_LIP_PAIRS = ((82, 87), (13, 14), (312, 317))
SILENCE_MIN_S = 0.25  # only pauses at least this long count as silence
SILENCE_MARGIN_S = 0.08  # ignore this much at each edge of a pause (anticipation/release)
MAX_LAG_FRAMES = 5


@dataclass
class LipSyncReport:
    """Figures of the engine issue: correlation, best lag, bilabial and silence closure."""

    correlation: float  # Pearson r at lag 0
    best_lag_frames: int  # lag maximising r; positive = video late
    best_lag_correlation: float
    bilabial_closed: float  # share of p/b/m centres with closed lips
    bilabial_count: int
    silence_closed: float  # share of silent frames with closed lips
    silence_frames: int
    frames_with_face: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def mouth_openings(video_path: str | Path) -> np.ndarray:
    """Inner-lip gap per frame of a video, in inter-ocular distances; NaN where no face."""
    tracker = LandmarkTracker()
    gaps = []
    for frame in read_video_frames(video_path):
        marks = tracker.track(frame)
        if marks is None:
            gaps.append(np.nan)
            continue
        pts = marks.xy
        gap = np.mean([np.linalg.norm(pts[a] - pts[b]) for a, b in INNER_LIP_PAIRS])
        gaps.append(gap / inter_ocular(pts))
    return np.asarray(gaps, np.float64)


def expected_openness(segments: list[PhonemeSegment], n_frames: int, fps: float) -> np.ndarray:
    """Per-frame openness from phoneme timings; frame k shows time k / fps."""
    times = np.arange(n_frames) / fps  # seconds
    out = np.zeros(n_frames)
    for seg in segments:
        inside = (times >= seg.start_s) & (times < seg.end_s)
        out[inside] = OPENNESS.get(seg.phone, 0.3)
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return 0.0
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def lipsync_report(openings: np.ndarray, segments: list[PhonemeSegment], fps: float) -> LipSyncReport:
    """Compare a measured opening series with phoneme timings (see module docstring)."""
    n = len(openings)
    expected = expected_openness(segments, n, fps)
    lags = {}
    for lag in range(-MAX_LAG_FRAMES, MAX_LAG_FRAMES + 1):
        # opening[k + lag] against expected[k]
        if lag >= 0:
            lags[lag] = _pearson(openings[lag:], expected[: n - lag])
        else:
            lags[lag] = _pearson(openings[:lag], expected[-lag:])
    best = max(lags, key=lambda k: (lags[k], -abs(k)))
    closed = openings < CLOSED_GAP_IOD

    centres = [round((s.start_s + s.end_s) / 2 * fps) for s in segments if s.phone in BILABIALS]
    centres = [c for c in centres if c < n and np.isfinite(openings[c])]
    bilabial = float(np.mean([closed[c] for c in centres])) if centres else float("nan")

    silent = np.zeros(n, bool)
    times = np.arange(n) / fps
    for s in segments:
        if s.phone == "SIL" and s.duration_s >= SILENCE_MIN_S:
            silent |= (times >= s.start_s + SILENCE_MARGIN_S) & (times < s.end_s - SILENCE_MARGIN_S)
    silent &= np.isfinite(openings)
    silence = float(closed[silent].mean()) if silent.any() else float("nan")

    return LipSyncReport(
        correlation=lags[0], best_lag_frames=int(best), best_lag_correlation=lags[best],
        bilabial_closed=bilabial, bilabial_count=len(centres),
        silence_closed=silence, silence_frames=int(silent.sum()),
        frames_with_face=float(np.isfinite(openings).mean()) if n else 0.0,
    )


def masked_ssim(reference: np.ndarray, frame: np.ndarray, keep: np.ndarray) -> float:
    """Mean SSIM over pixels where `keep` is true (grey level, 7×7 Gaussian-free windows)."""
    from skimage.metrics import structural_similarity

    a = reference.mean(axis=2) if reference.ndim == 3 else reference
    b = frame.mean(axis=2) if frame.ndim == 3 else frame
    _, ssim_map = structural_similarity(a, b, data_range=255.0, full=True)
    return float(ssim_map[keep].mean())
