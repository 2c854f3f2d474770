"""build_track: phoneme timings + acoustic features → a complete MotionTrack.

Recipe: (1) resample the acoustic series to the video frames; (2) blend viseme targets with
dominance coarticulation; (3) mix in the acoustic mouth pose where phones are unsure;
(4) loudness → jaw amplitude, dynamic_scale → mouth amplitude; (5) light mouth smoothing;
(6) hard constraints (closures, tucks, rest in pauses) and the jaw's speed limit;
(7) head/expression sampler and blinks from one seeded rng; (8) lip-sync correction;
(9) head smoothing; (10) clip to the channel ranges.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.ndimage import gaussian_filter1d

from mouthpiece.motion.blinks import sample_blinks
from mouthpiece.motion.coarticulation import (
    JAW_MAX_SPEED, acoustic_targets, acoustic_weight, apply_constraints, blend_targets,
    frame_confidence, limit_speed, to_spans,
)
from mouthpiece.motion.head import HEAD_EXPR_CHANNELS, sample_head
from mouthpiece.motion.smoothing import smooth_head, smooth_mouth
from mouthpiece.motion.sync import correct_offset
from mouthpiece.motion.visemes import JAW, ROUND, SMILE, UPPER, WIDE
from mouthpiece.types import (
    MOUTH_CHANNELS, AudioFeatures, InputError, MotionTrack, PhonemeSegment,
)

log = logging.getLogger(__name__)

JAW_GAIN_RANGE = (0.75, 1.25)  # jaw amplitude at loudness 0 … 1
SCALED_BY_DYNAMIC = (JAW, WIDE, ROUND, UPPER, SMILE)  # not PRESS / TUCK: closures stay closed


def frame_series(features: AudioFeatures | None, n_frames: int, fps: float
                 ) -> dict[str, np.ndarray]:
    """Every acoustic series sampled at the video frame times k / fps.

    Feature sample j summarises the interval [j, j+1) / features.fps (speech.frame_features'
    convention), so it stands for the interval's centre; interpolating from the centres removes
    a half-frame (20 ms at 25 fps) lag that would otherwise bias jaw gain and A/V sync. Past
    either end the edge value repeats; no features → {}."""
    if features is None or features.n_frames == 0:
        return {}
    times = np.arange(n_frames) / fps  # seconds
    out = {}
    for name, series in features.series.items():
        series = np.asarray(series, np.float64)
        centres = (np.arange(len(series)) + 0.5) / features.fps  # seconds
        out[name] = np.interp(times, centres, series)
    return out


def _validate(n_frames, fps, dynamic_scale, motion_scale, inference_steps, seed) -> None:
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise InputError(f"n_frames must be a whole number ≥ 0, got {n_frames!r}")
    if not fps > 0:
        raise InputError(f"fps must be > 0, got {fps!r}")
    if not isinstance(inference_steps, (int, np.integer)) or inference_steps < 1:
        raise InputError(f"inference_steps must be an integer ≥ 1, got {inference_steps!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer ≥ 0, got {seed!r}")
    if not dynamic_scale >= 0:
        raise InputError(f"dynamic_scale must be ≥ 0, got {dynamic_scale!r}")
    if not motion_scale >= 0:
        raise InputError(f"motion_scale must be ≥ 0, got {motion_scale!r}")


def mouth_curves(segments: list[PhonemeSegment], series: dict[str, np.ndarray],
                 n_frames: int, fps: float, dynamic_scale: float,
                 smoothing: bool = True) -> np.ndarray:
    """The 7 mouth channels per frame → (T, 7), before smoothing and sync."""
    times = np.arange(n_frames) / fps  # seconds
    spans = to_spans(segments, n_frames / fps)
    mouth = blend_targets(spans, times)
    weight = None
    if spans and series:
        conf, silent, dur = frame_confidence(spans, times)
        weight = acoustic_weight(conf, silent, dur, series)
        mouth += weight[:, None] * (acoustic_targets(series, n_frames) - mouth)
    loud = series.get("loudness")
    if loud is not None:
        level = gaussian_filter1d(np.clip(loud, 0, 1), sigma=max(0.04 * fps, 0.5))
        lo, hi = JAW_GAIN_RANGE
        mouth[:, JAW] *= lo + (hi - lo) * level
    mouth[:, list(SCALED_BY_DYNAMIC)] *= dynamic_scale
    np.clip(mouth, 0.0, 1.0, out=mouth)
    if smoothing:  # before the constraints, so that filtering cannot erase a closure
        mouth = smooth_mouth(mouth, fps)
    mouth = apply_constraints(mouth, spans, times, fps, weight)
    mouth[:, JAW] = limit_speed(mouth[:, JAW], JAW_MAX_SPEED / fps)
    return mouth


def build_track(segments: list[PhonemeSegment], features: AudioFeatures | None, *,
                n_frames: int, fps: float, dynamic_scale: float = 1.0,
                motion_scale: float = 1.0, inference_steps: int = 25, seed: int = 0,
                smoothing: bool = True, lip_sync_correction: bool = True) -> MotionTrack:
    """All 15 channels for exactly `n_frames` frames at `fps` (frame k is time k / fps).

    Segments past the end are ignored, time not covered by segments is silence (rest).
    `dynamic_scale` scales mouth/jaw amplitude (closures stay closed); `motion_scale` scales
    head and expression (0 = still head; blinks are physiological and stay);
    `inference_steps` are the head sampler's denoising iterations; same `seed` → same track.
    """
    builder = TrackBuilder(features, n_frames=n_frames, fps=fps, dynamic_scale=dynamic_scale,
                           motion_scale=motion_scale, inference_steps=inference_steps, seed=seed,
                           smoothing=smoothing, lip_sync_correction=lip_sync_correction)
    track = builder.span(segments, 0, int(n_frames))
    track.meta.update(_summary(segments, features, seed, inference_steps, dynamic_scale,
                               motion_scale, smoothing, lip_sync_correction))
    log.debug("motion track: %d frames at %g fps, meta %s", n_frames, fps, track.meta)
    return track


class TrackBuilder:
    """Builds a track span by span, for streaming: head, expression and blinks are sampled
    for the whole length up front (they need only the acoustic series); the mouth of frames
    [f0, f1) is built when that span's phonemes are known. Spans should meet inside pauses,
    where the mouth rests: one span over everything is exactly `build_track`.
    """

    def __init__(self, features: AudioFeatures | None, *, n_frames: int, fps: float,
                 dynamic_scale: float = 1.0, motion_scale: float = 1.0,
                 inference_steps: int = 25, seed: int = 0, smoothing: bool = True,
                 lip_sync_correction: bool = True) -> None:
        _validate(n_frames, fps, dynamic_scale, motion_scale, inference_steps, seed)
        self.fps, self.n_frames = fps, int(n_frames)
        self.dynamic_scale, self.smoothing = dynamic_scale, smoothing
        self.lip_sync_correction = lip_sync_correction
        self.series = frame_series(features, self.n_frames, fps)
        self.base = MotionTrack.zeros(self.n_frames, fps)  # head, expression, blinks
        rng = np.random.default_rng(int(seed))
        head = sample_head(self.series, self.n_frames, fps, rng, int(inference_steps), motion_scale)
        blinks = sample_blinks(self.series, self.n_frames, fps, rng)
        for c, name in enumerate(HEAD_EXPR_CHANNELS):
            self.base[name] = head[:, c]
        self.base["blink_l"], self.base["blink_r"] = blinks[:, 0], blinks[:, 1]
        if smoothing:
            smooth_head(self.base)
        self.offsets_s: list[float] = []  # A/V offset estimate of each span built

    def span(self, segments: list[PhonemeSegment], f0: int, f1: int) -> MotionTrack:
        """Frames [f0, f1) of the track; `segments` in seconds of the whole audio."""
        n = f1 - f0
        t0 = f0 / self.fps  # seconds
        local = [PhonemeSegment(s.phone, s.start_s - t0, s.end_s - t0, s.confidence)
                 for s in segments if s.end_s > t0 and s.start_s < f1 / self.fps]
        series = {k: v[f0:f1] for k, v in self.series.items()}
        mouth = MotionTrack.zeros(n, self.fps)
        curves = mouth_curves(local, series, n, self.fps, self.dynamic_scale, self.smoothing)
        for c, name in enumerate(MOUTH_CHANNELS):
            mouth[name] = curves[:, c]
        if self.lip_sync_correction:
            correct_offset(mouth, series)
        else:
            mouth.meta.update(av_offset_s=0.0, av_offset_applied_s=0.0)
        self.offsets_s.append(mouth.meta["av_offset_s"])
        track = MotionTrack(self.fps, self.base.values[f0:f1].copy(), meta=dict(mouth.meta))
        for name in MOUTH_CHANNELS:  # the expression's smile sits on top of the visemes' smile
            track[name] = track[name] + mouth[name]
        return track.clipped()


def _summary(segments, features, seed, steps, dynamic_scale, motion_scale, smoothing,
             lip_sync_correction) -> dict:
    speech = [s for s in segments if s.phone.upper() != "SIL"]
    sources = ["visemes"] if speech else []
    if features is not None and features.series:
        sources.append("acoustic")
    sources += ["head_sampler", "blinks"]
    return {
        "n_segments": len(segments),
        "n_phones": len(speech),
        "mean_confidence": round(float(np.mean([s.confidence for s in speech])), 3)
        if speech else None,
        "sources": sources,
        "seed": int(seed),
        "inference_steps": int(steps),
        "dynamic_scale": float(dynamic_scale),
        "motion_scale": float(motion_scale),
        "smoothing": bool(smoothing),
        "lip_sync_correction": bool(lip_sync_correction),
    }
