"""Hand-built phoneme timings and acoustic features for the motion tests (no speech stage)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from mouthpiece.types import AudioFeatures, PhonemeSegment

VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH",
          "UW"}
OPENNESS = {"AA": 1.0, "AE": 0.8, "AH": 0.6, "AO": 0.7, "EH": 0.5, "IH": 0.3, "IY": 0.15,
            "UW": 0.2, "OW": 0.5, "ER": 0.3}


def segments(spec: list[tuple[str, float]], start_s: float = 0.0,
             confidence: float = 1.0) -> list[PhonemeSegment]:
    """[("SIL", 0.4), ("M", 0.08), …] → back-to-back segments."""
    out, t = [], start_s
    for phone, dur in spec:
        out.append(PhonemeSegment(phone, t, t + dur, confidence))
        t += dur
    return out


def features(segs: list[PhonemeSegment], n_frames: int, fps: float) -> AudioFeatures:
    """Plausible per-frame cues from the phone identities: vowels loud and open, stops quiet.
    Sample k describes the interval [k, k+1) / fps, as speech.frame_features does."""
    times = (np.arange(n_frames) + 0.5) / fps
    loud, openness, speech, voiced = (np.zeros(n_frames) for _ in range(4))
    for s in segs:
        on = (times >= s.start_s) & (times < s.end_s)
        if s.phone == "SIL":
            continue
        speech[on] = 1.0
        if s.phone in VOWELS:
            loud[on], voiced[on] = 0.85, 1.0
            openness[on] = OPENNESS.get(s.phone, 0.5)
        elif s.phone in ("P", "B", "T", "D", "K", "G"):
            loud[on] = 0.05
        else:
            loud[on], openness[on] = 0.35, 0.1
    smooth = lambda x: gaussian_filter1d(x, 0.5).astype(np.float32)  # noqa: E731
    return AudioFeatures(fps, {"loudness": smooth(loud), "open": smooth(openness),
                               "speech": smooth(speech), "voiced": smooth(voiced)})


def sentence(repeats: int = 1) -> list[tuple[str, float]]:
    """"Bob met Pam by the map. Five pots." with realistic durations, plus pauses."""
    words = [("SIL", 0.4), ("B", 0.07), ("AA", 0.16), ("B", 0.06), ("M", 0.07), ("EH", 0.12),
             ("T", 0.06), ("P", 0.08), ("AE", 0.16), ("M", 0.08), ("B", 0.06), ("AY", 0.18),
             ("DH", 0.04), ("AH", 0.06), ("M", 0.07), ("AE", 0.15), ("P", 0.1), ("SIL", 0.5),
             ("F", 0.1), ("AY", 0.2), ("V", 0.07), ("P", 0.06), ("AA", 0.15), ("T", 0.06),
             ("S", 0.12), ("SIL", 0.6)]
    return words * repeats
