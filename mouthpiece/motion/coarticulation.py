"""Cohen–Massaro dominance blending of viseme targets into smooth mouth-channel curves.

Each phone i has a target T_i (per channel) and a dominance D_i(t) = α_i · exp(−(d/w_i)²),
d = distance from the phone's core (its middle 40 %), with a wider side before the phone
(anticipation) than after (carry-over), and a per-channel reach (closures are quick gestures).
A channel's value is Σ D_i T_i / Σ D_i — smooth by construction. Two hard constraints then
make sure the blend never loses what viewers check first: bilabials (P/B/M) close the lips with
a nearly closed jaw at their centre even when they last 50 ms, labiodentals (F/V) tuck the
lower lip, and long silences relax the whole mouth to rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mouthpiece.motion.visemes import (
    JAW, PRESS, ROUND, TUCK, UPPER, WIDE, articulation, expand_phone,
)
from mouthpiece.types import MOUTH_CHANNELS, PhonemeSegment

ANTICIPATION_S = 0.07  # dominance reaches further before a phone than after it
CARRYOVER_S = 0.04
SILENCE_EDGE_S = 0.05  # a pause's dominance falls off this fast beyond its edges
LONG_SILENCE_S = 0.15  # pauses at least this long relax the mouth fully to rest
SILENCE_DOMINANCE = 1.5  # all channels, for long pauses
REST_MARGIN_S = 0.06  # ramp from speech to rest inside a long pause
CLOSURE_RAMP_S = 0.035  # raised-cosine ramp around a bilabial / labiodental plateau (lips)
JAW_RAMP_S = 0.08  # the jaw is slower than the lips: its cap releases over a longer ramp
CLOSED_JAW = 0.06  # jaw_open cap at a bilabial closure
FF_JAW = 0.18  # jaw_open cap at a labiodental
FF_TUCK = 0.85  # lower_lip_tuck floor at a labiodental
JAW_MAX_SPEED = 10.0  # jaw range per second (~150 mm/s over a ~15 mm opening)
RULE_BASELINE_DOMINANCE = 1e-3  # pulls towards rest where no phone reaches (avoids 0/0)


@dataclass(frozen=True)
class Span:
    """One articulatory unit: a phone (or a diphthong half) with its time span in seconds."""

    phone: str
    start_s: float
    end_s: float
    confidence: float

    @property
    def centre_s(self) -> float:
        return 0.5 * (self.start_s + self.end_s)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def to_spans(segments: list[PhonemeSegment], end_s: float) -> list[Span]:
    """Sorted spans covering [0, end_s]: diphthongs split, gaps and the tail filled with SIL,
    zero-length segments dropped, everything starting at or after `end_s` ignored."""
    spans: list[Span] = []
    cursor = 0.0
    for seg in sorted(segments, key=lambda s: (s.start_s, s.end_s)):
        start, end = max(seg.start_s, cursor), seg.end_s
        if end <= start or start >= end_s:
            continue
        if start - cursor > 1e-6:
            spans.append(Span("SIL", cursor, start, 1.0))
        for phone, a, b in expand_phone(seg.phone, start, end):
            spans.append(Span(phone, a, b, float(seg.confidence)))
        cursor = end
    if cursor < end_s:
        spans.append(Span("SIL", cursor, end_s, 1.0))
    return _merge_silences(spans)


def _merge_silences(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in spans:
        if merged and span.phone == "SIL" and merged[-1].phone == "SIL":
            merged[-1] = Span("SIL", merged[-1].start_s, span.end_s, 1.0)
        else:
            merged.append(span)
    return merged


def dominance_shape(span: Span) -> tuple[float, float, float]:
    """(core, width_before, width_after) in seconds of a span's dominance function
    D(t) = α · exp(−(max(|τ| − core, 0) / width)²): flat over the core of the phone, then
    falling off, further ahead of the phone (anticipation) than behind it (carry-over).
    Silences are flat up to near their edges and fall off fast."""
    half = 0.5 * span.duration_s
    if span.phone == "SIL":
        return max(half - SILENCE_EDGE_S, 0.0), SILENCE_EDGE_S, SILENCE_EDGE_S
    return 0.4 * half, 0.6 * half + ANTICIPATION_S, 0.6 * half + CARRYOVER_S


def blend_targets(spans: list[Span], times: np.ndarray) -> np.ndarray:
    """Dominance-weighted blend of the spans' targets at `times` (seconds) → (T, 7)."""
    n_ch = len(MOUTH_CHANNELS)
    num = np.zeros((len(times), n_ch), np.float64)
    den = np.full((len(times), n_ch), RULE_BASELINE_DOMINANCE, np.float64)
    for span in spans:
        art = articulation(span.phone)
        alpha = art.dominance.astype(np.float64)
        if span.phone == "SIL" and span.duration_s >= LONG_SILENCE_S:
            alpha = np.full(n_ch, SILENCE_DOMINANCE)
        core, w_before, w_after = dominance_shape(span)
        reach = art.reach.astype(np.float64)
        # only frames within 3 widths matter (exp(-9) ≈ 1e-4)
        lo, hi = np.searchsorted(times, [span.centre_s - core - 3 * w_before,
                                         span.centre_s + core + 3 * w_after])
        if hi <= lo:
            continue
        tau = times[lo:hi] - span.centre_s  # seconds
        dist = np.maximum(np.abs(tau) - core, 0.0)
        width = np.where(tau < 0, w_before, w_after)[:, None] * reach[None, :]  # (t, 7)
        d = np.exp(-((dist[:, None] / width) ** 2)) * alpha[None, :]  # (t, 7)
        num[lo:hi] += d * art.target[None, :]
        den[lo:hi] += d
    return (num / den).astype(np.float32)


def plateau_envelope(times: np.ndarray, centre_s: float, half_s: float,
                     ramp_s: float) -> np.ndarray:
    """1 within ±half_s of centre, raised-cosine down to 0 over the next ramp_s, 0 beyond."""
    excess = np.abs(times - centre_s) - half_s
    env = np.ones_like(times)
    ramp = (excess > 0) & (excess < ramp_s)
    env[ramp] = 0.5 * (1.0 + np.cos(np.pi * excess[ramp] / ramp_s))
    env[excess >= ramp_s] = 0.0
    return env


def _window(times: np.ndarray, centre_s: float, reach_s: float) -> slice:
    """The frames within ±reach_s of centre_s (times sorted)."""
    lo, hi = np.searchsorted(times, [centre_s - reach_s, centre_s + reach_s])
    return slice(int(lo), int(hi))


def closure_half_width(span: Span, fps: float) -> float:
    """Half-width of a closure plateau: most of the phone, and never less than half a frame,
    so that the frame nearest to the phone's centre always lies on the plateau."""
    return max(0.35 * span.duration_s, 0.5 / fps + 1e-4)


def apply_constraints(mouth: np.ndarray, spans: list[Span], times: np.ndarray,
                      fps: float, acoustic_w: np.ndarray | None = None) -> np.ndarray:
    """Enforce bilabial closures, labiodental tucks and rest in long silences, in place.

    `mouth`: (T, 7). Closures are applied last so that nothing downstream of the blend
    (loudness gain, acoustic cues, dynamic_scale) can open a /p/. `acoustic_w`: (T,) weight
    of the acoustic pose; where the audio overrides a "silence" the mouth is not forced shut.
    """
    rest = np.zeros(len(times))
    for span in spans:
        if span.phone == "SIL" and span.duration_s >= LONG_SILENCE_S:
            inner = max(0.5 * span.duration_s - REST_MARGIN_S, 0.0)
            win = _window(times, span.centre_s, inner + REST_MARGIN_S)
            rest[win] = np.maximum(rest[win], plateau_envelope(times[win], span.centre_s, inner,
                                                               REST_MARGIN_S))
    if acoustic_w is not None:
        rest *= 1.0 - acoustic_w
    mouth *= (1.0 - rest)[:, None]
    for span in spans:
        viseme = articulation(span.phone).viseme
        if viseme not in ("PP", "FF"):
            continue
        half = closure_half_width(span, fps)
        win = _window(times, span.centre_s, half + JAW_RAMP_S)
        if win.stop <= win.start:
            continue
        on = win
        jaw_env = plateau_envelope(times[on], span.centre_s, half, JAW_RAMP_S)
        e = plateau_envelope(times[on], span.centre_s, half, CLOSURE_RAMP_S)
        jaw_cap = CLOSED_JAW if viseme == "PP" else FF_JAW
        cap = jaw_cap + (1.0 - jaw_env) * np.maximum(mouth[on, JAW] - jaw_cap, 0.0)
        mouth[on, JAW] = np.minimum(mouth[on, JAW], cap)
        if viseme == "PP":
            mouth[on, PRESS] = np.maximum(mouth[on, PRESS], e)
            for ch in (UPPER, TUCK):  # pressed lips are not tucked or raised
                mouth[on, ch] *= 1.0 - e
        else:
            mouth[on, TUCK] = np.maximum(mouth[on, TUCK], FF_TUCK * e)
            mouth[on, PRESS] *= 1.0 - e
    return mouth


def frame_confidence(spans: list[Span], times: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: phone confidence, 1 where the frame is silence, phone duration (seconds)."""
    starts = np.array([s.start_s for s in spans])
    idx = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(spans) - 1)
    conf = np.array([s.confidence for s in spans], np.float32)[idx]
    silent = np.array([s.phone == "SIL" for s in spans], np.float32)[idx]
    dur = np.array([s.duration_s for s in spans], np.float32)[idx]
    return conf, silent, dur


def acoustic_targets(series: dict[str, np.ndarray], n_frames: int) -> np.ndarray:
    """Mouth pose read straight from the acoustic cues (no phone identity) → (T, 7).

    Used where the phone recogniser is unsure (another language, noise) so that lips follow
    the voice instead of freezing."""
    speech = series.get("speech", series.get("voiced", np.ones(n_frames, np.float32)))
    openness = series.get("open", series.get("loudness"))
    out = np.zeros((n_frames, len(MOUTH_CHANNELS)), np.float32)
    if openness is None:
        return out
    out[:, JAW] = np.clip(openness, 0, 1) * speech
    if "spread" in series:
        out[:, WIDE] = np.clip(series["spread"], 0, 1) * speech
    if "round" in series:
        out[:, ROUND] = np.clip(series["round"], 0, 1) * speech
    if "closure" in series:
        out[:, PRESS] = 0.9 * np.clip(series["closure"], 0, 1) * speech
        out[:, JAW] *= 1.0 - np.clip(series["closure"], 0, 1)
    return out


def acoustic_weight(conf: np.ndarray, silent: np.ndarray, dur: np.ndarray,
                    series: dict[str, np.ndarray]) -> np.ndarray:
    """How much the acoustic pose replaces the rule pose, per frame, in [0, 1].

    Grows as phone confidence drops (≥ 0.7 → rules only, ≤ 0.2 → acoustics only); is high
    where the phones say silence but the audio says speech (missed words), and where one
    phone lasts implausibly long (> 0.4 s: a recogniser failure, the lips would freeze)."""
    w = np.clip((0.7 - conf) / 0.5, 0.0, 1.0)
    speech = series.get("speech")
    if speech is not None:
        w = np.maximum(w, silent * np.clip((speech - 0.5) / 0.3, 0.0, 1.0))
    w = np.maximum(w, (1.0 - silent) * 0.6 * np.clip((dur - 0.4) / 0.2, 0.0, 1.0))
    return w.astype(np.float32)


def limit_speed(series: np.ndarray, max_step: float) -> np.ndarray:
    """The largest curve ≤ `series` whose frame-to-frame change is ≤ `max_step` (a copy).

    Lowers the flanks of peaks that rise too fast and never raises anything, so closures
    (minima) keep their depth and timing — unlike a low-pass or a causal slew limiter."""
    out = np.array(series, dtype=np.float64)
    for k in range(1, len(out)):  # forward: cannot be far above the previous frame
        out[k] = min(out[k], out[k - 1] + max_step)
    for k in range(len(out) - 2, -1, -1):  # backward: nor far above the next one
        out[k] = min(out[k], out[k + 1] + max_step)
    return out.astype(np.asarray(series).dtype)
