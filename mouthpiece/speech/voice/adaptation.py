"""adapt(): synthesized speech → the reference speaker's voice and the style clip's prosody.

The formant warp is the one free choice: it is picked by speaker similarity (resemblyzer
cosine to the reference) over a small grid, on a ≤ 4 s excerpt, once per (reference, engine
voice) — the best warp is a property of the two vocal tracts, not of the sentence.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field

import numpy as np

from mouthpiece.media import resample
from mouthpiece.speech.voice.analysis import Prosody
from mouthpiece.speech.voice.convert import (
    ConversionPlan, analyze_source, apply_conversion, plan_conversion,
)
from mouthpiece.speech.voice.embedding import cosine, embed_many
from mouthpiece.speech.voice.reference import VoiceProfile
from mouthpiece.types import SAMPLE_RATE

log = logging.getLogger(__name__)

# Formant warps tried: none downward. Measured on 14 sentences outside the bench, lowering
# piper's (already low, male) formants wrecked pocketsphinx WER (flite-kal: α 1.0 → 36 %,
# 0.93 → 62 %, 0.86 → 88 %) and never raised similarity to a held-out clip of the speaker
# (the adaptation clip's score picked α 0.80 for kal: −0.03 held-out); beyond +24 % WER also
# rose steeply (espeak-f3 at 1.32: +13 points) for little similarity.
WARP_GRID = (1.0, 1.08, 1.16, 1.24)
# ±1 semitone only: ±2 made the first call's search a third longer, for +0.014 similarity on
# one bench voice (flite-slt).
F0_OFFSETS = (-1.0, 1.0)  # semitones
SEARCH_EXCERPT_S = 4.0
WARP_TOLERANCE = 0.015  # cosine
# Level-peak syllable counts / true syllables on formant, HTS and natural speech (0.90–0.97).
ACOUSTIC_RATE_BIAS = 0.93
_fit_cache: dict[tuple[str, str], "VoiceFit"] = {}
_cache_lock = threading.Lock()


@dataclass
class Adaptation:
    """`samples`: (N',) float32 at the input rate; `time_scale`: N' / N (phone times scale by
    it); `similarity`: {"base", "adapted"} cosine to the reference (None without one)."""

    samples: np.ndarray
    time_scale: float
    plan: ConversionPlan
    similarity: dict | None
    warnings: list[str] = field(default_factory=list)


def acoustic_rate(phone_syllables_per_s: float) -> float:
    """A rate counted from known phones, expressed as the level-peak estimate would see it
    (so both sides of a rate ratio are measured alike)."""
    return phone_syllables_per_s * ACOUSTIC_RATE_BIAS


def _excerpt(samples: np.ndarray, rate: int) -> np.ndarray:
    n = int(SEARCH_EXCERPT_S * rate)
    if len(samples) <= n:
        return samples
    start = (len(samples) - n) // 2
    return samples[start:start + n]


@dataclass(frozen=True)
class VoiceFit:
    """The free settings of a conversion, chosen by speaker similarity: formant warp and
    an offset (semitones) on top of the measured mean-F0 shift."""

    warp: float = 1.0
    f0_offset: float = 0.0


def choose_fit(samples: np.ndarray, rate: int, target: VoiceProfile, cache_key: str) -> VoiceFit:
    """Coordinate search (warp over WARP_GRID, then F0 offset over F0_OFFSETS; each step's
    candidates embedded in one batch) for the conversion whose speaker embedding is closest
    to `target`'s; cached per key. In each step the mildest setting within WARP_TOLERANCE
    of the best score wins: formant shifts cost intelligibility, and differences that small
    are within resemblyzer's noise."""
    key = (target.digest, cache_key)
    with _cache_lock:
        if key in _fit_cache:
            return _fit_cache[key]
    excerpt = analyze_source(_excerpt(samples, rate), rate)

    def scores(fits: list[VoiceFit]) -> dict[VoiceFit, float]:
        plans = [plan_conversion(excerpt, target, None, fit.warp, change_rate=False,
                                 f0_offset=fit.f0_offset) for fit in fits]
        clips = [resample(apply_conversion(excerpt, plan), rate, SAMPLE_RATE) for plan in plans]
        return {fit: cosine(e, target.embedding) for fit, e in zip(fits, embed_many(clips))}

    by_fit = scores([VoiceFit(alpha) for alpha in WARP_GRID])
    warps = {fit.warp: score for fit, score in by_fit.items()}
    warp = _mildest(warps, lambda a: abs(np.log(a)))
    by_fit = scores([VoiceFit(warp, o) for o in F0_OFFSETS])
    offsets = {0.0: warps[warp], **{fit.f0_offset: score for fit, score in by_fit.items()}}
    fit = VoiceFit(warp, _mildest(offsets, abs))
    log.info("voice fit: warp scores %s, F0 offset scores %s → %s",
             {k: round(v, 3) for k, v in warps.items()},
             {k: round(v, 3) for k, v in offsets.items()}, fit)
    with _cache_lock:
        _fit_cache[key] = fit
    return fit


def _mildest(scores: dict[float, float], strength) -> float:
    top = max(scores.values())
    return min((k for k, v in scores.items() if v >= top - WARP_TOLERANCE), key=strength)


def adapt(
    samples: np.ndarray,
    rate: int,
    target: VoiceProfile | None = None,
    style: Prosody | None = None,
    *,
    cache_key: str = "",
    change_rate: bool = True,
    source_syllables_per_s: float | None = None,
) -> Adaptation:
    """Convert `samples` (mono float32 at `rate` Hz) toward `target`'s voice and `style`'s
    prosody (pitch range, energy, speaking rate; default: the target's own).

    `source_syllables_per_s`: the synthesized speech's rate from its known phones (vowels per
    second of speech), which is more reliable than the acoustic estimate: measured, level
    peaks find only half the syllables of piper's smooth neural speech, but 90–97 % of those of
    formant, HTS and natural speech."""
    source = analyze_source(samples, rate)
    if source_syllables_per_s:
        source.prosody = dataclasses.replace(
            source.prosody, syllables_per_s=acoustic_rate(source_syllables_per_s))
    fit = choose_fit(samples, rate, target, cache_key) if target is not None else VoiceFit()
    plan = plan_conversion(source, target, style, fit.warp, change_rate=change_rate,
                           f0_offset=fit.f0_offset)
    converted = apply_conversion(source, plan)
    time_scale = len(converted) / len(samples)
    similarity = None
    if target is not None:
        base, adapted = (cosine(e, target.embedding)
                         for e in embed_many([resample(samples, rate, SAMPLE_RATE),
                                              resample(converted, rate, SAMPLE_RATE)]))
        similarity = {"base": round(base, 4), "adapted": round(adapted, 4)}
    return Adaptation(converted, time_scale, plan, similarity)
