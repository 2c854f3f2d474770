"""ARPAbet phones → articulatory targets over the mouth channels, with per-channel dominance.

Every phone maps to one of Meta's 15 visemes (sil, PP, FF, TH, DD, kk, CH, SS, nn, RR, aa, E,
ih, oh, ou) and has its own target (vowels differ in jaw height within a viseme: AA > AE > AH).
Dominance says how strongly a phone resists coarticulation on each channel (Cohen–Massaro):
bilabials own `lip_press`, labiodentals own `lower_lip_tuck`, vowels own `jaw_open`, and
K/G/H/T/D barely care about the jaw, so they take it from their neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mouthpiece.types import MOUTH_CHANNELS

# Column order of every target / dominance vector below (= types.MOUTH_CHANNELS).
JAW, WIDE, ROUND, PRESS, UPPER, TUCK, SMILE = range(len(MOUTH_CHANNELS))

VISEME_OF_PHONE: dict[str, str] = {
    "SIL": "sil",
    "P": "PP", "B": "PP", "M": "PP",
    "F": "FF", "V": "FF",
    "TH": "TH", "DH": "TH",
    "T": "DD", "D": "DD",
    "K": "kk", "G": "kk", "HH": "kk",
    "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH",
    "S": "SS", "Z": "SS",
    "N": "nn", "NG": "nn", "L": "nn",
    "R": "RR", "ER": "RR",
    "AA": "aa", "AE": "aa", "AH": "aa", "AY": "aa", "AW": "aa",
    "EH": "E", "EY": "E",
    "IH": "ih", "IY": "ih", "Y": "ih",
    "AO": "oh", "OW": "oh", "OY": "oh",
    "UW": "ou", "UH": "ou", "W": "ou",
}
VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)

# Diphthongs glide between two targets: first part, second part (split 55/45 in time).
DIPHTHONGS: dict[str, tuple[str, str]] = {
    "AY": ("AA", "IY"), "AW": ("AA", "UW"), "OY": ("AO", "IY"),
    "EY": ("EH", "IY"), "OW": ("AO", "UW"),
}
DIPHTHONG_SPLIT = 0.55


@dataclass(frozen=True)
class Articulation:
    """Target pose and dominance of one phone over the 7 mouth channels (column order above)."""

    viseme: str
    target: np.ndarray  # (7,) in [0, 1]
    dominance: np.ndarray  # (7,) > 0; relative weight in the blend
    reach: np.ndarray  # (7,) > 0; how far in time the dominance extends (1 = normal)


def _art(viseme: str, target: dict[str, float], dominance: dict[str, float],
         base_dominance: float, reach: dict[str, float] | None = None) -> Articulation:
    def vector(values: dict[str, float], default: float) -> np.ndarray:
        v = np.full(len(MOUTH_CHANNELS), default, np.float32)
        for name, value in values.items():
            v[MOUTH_CHANNELS.index(name)] = value
        return v

    return Articulation(viseme, vector(target, 0.0), vector(dominance, base_dominance),
                        vector(reach or {}, 1.0))


# Dominance scale: 0.05 = "take it from the neighbours", 1 = an ordinary vowel on the jaw,
# 60 = owns the channel outright (bilabial closure: a 60 ms /p/ between two open vowels must
# still close the lips, which needs its weight to swamp both vowels' weights at its centre).
_V = 1.0  # vowel jaw dominance
# Closures are quick gestures: their dominance reaches half as far in time on the channels
# they own, so a /p/ does not half-close the lips during the vowels around it
# (lips close and open within ~50 ms).
_PP_DOM = {"lip_press": 60.0, "jaw_open": 2.0, "lip_round": 0.3, "lip_wide": 0.5}
_PP_REACH = {"lip_press": 0.35, "jaw_open": 0.5, "upper_lip_up": 0.5, "lower_lip_tuck": 0.5}
_FF_REACH = {"lower_lip_tuck": 0.6, "lip_press": 0.6, "jaw_open": 0.6, "upper_lip_up": 0.6}
_PHONES: dict[str, Articulation] = {
    # silence: neutral closed mouth; its dominance is raised for long pauses (coarticulation.py)
    "SIL": _art("sil", {}, {}, 0.6),
    # bilabials: lips pressed, jaw nearly closed; rounding may leak in from neighbours ("boo")
    "P": _art("PP", {"jaw_open": 0.04, "lip_press": 1.0}, _PP_DOM, 1.0, _PP_REACH),
    "B": _art("PP", {"jaw_open": 0.04, "lip_press": 1.0}, _PP_DOM, 1.0, _PP_REACH),
    "M": _art("PP", {"jaw_open": 0.04, "lip_press": 1.0}, _PP_DOM, 1.0, _PP_REACH),
    # labiodentals: lower lip under the upper teeth, teeth a little visible
    "F": _art("FF", {"jaw_open": 0.12, "lower_lip_tuck": 1.0, "upper_lip_up": 0.35,
                     "lip_wide": 0.15},
              {"lower_lip_tuck": 40.0, "lip_press": 20.0, "jaw_open": 1.5, "upper_lip_up": 3.0,
               "lip_round": 0.5}, 1.0, _FF_REACH),
    "V": _art("FF", {"jaw_open": 0.12, "lower_lip_tuck": 0.95, "upper_lip_up": 0.3,
                     "lip_wide": 0.15},
              {"lower_lip_tuck": 40.0, "lip_press": 20.0, "jaw_open": 1.5, "upper_lip_up": 3.0,
               "lip_round": 0.5}, 1.0, _FF_REACH),
    # dentals: tongue between the teeth, small jaw gap
    "TH": _art("TH", {"jaw_open": 0.2, "lip_wide": 0.2, "upper_lip_up": 0.15},
               {"jaw_open": 0.8, "lip_press": 8.0}, 0.3),
    "DH": _art("TH", {"jaw_open": 0.18, "lip_wide": 0.2, "upper_lip_up": 0.15},
               {"jaw_open": 0.8, "lip_press": 8.0}, 0.3),
    # alveolar / velar stops and H: the tongue does the work, jaw and lips come from context
    "T": _art("DD", {"jaw_open": 0.15, "lip_wide": 0.2}, {"jaw_open": 0.25, "lip_press": 8.0},
              0.15),
    "D": _art("DD", {"jaw_open": 0.15, "lip_wide": 0.2}, {"jaw_open": 0.25, "lip_press": 8.0},
              0.15),
    "K": _art("kk", {"jaw_open": 0.22, "lip_wide": 0.15}, {"jaw_open": 0.15, "lip_press": 8.0},
              0.1),
    "G": _art("kk", {"jaw_open": 0.22, "lip_wide": 0.15}, {"jaw_open": 0.15, "lip_press": 8.0},
              0.1),
    "HH": _art("kk", {"jaw_open": 0.3}, {"lip_press": 4.0}, 0.05),
    # post-alveolars: lips protruded and flared, teeth close
    "CH": _art("CH", {"jaw_open": 0.12, "lip_round": 0.55, "upper_lip_up": 0.45},
               {"lip_round": 3.0, "upper_lip_up": 3.0, "jaw_open": 1.0, "lip_press": 8.0,
                "lip_wide": 2.0}, 0.5),
    "JH": _art("CH", {"jaw_open": 0.12, "lip_round": 0.55, "upper_lip_up": 0.45},
               {"lip_round": 3.0, "upper_lip_up": 3.0, "jaw_open": 1.0, "lip_press": 8.0,
                "lip_wide": 2.0}, 0.5),
    "SH": _art("CH", {"jaw_open": 0.1, "lip_round": 0.6, "upper_lip_up": 0.45},
               {"lip_round": 3.0, "upper_lip_up": 3.0, "jaw_open": 1.0, "lip_press": 8.0,
                "lip_wide": 2.0}, 0.5),
    "ZH": _art("CH", {"jaw_open": 0.1, "lip_round": 0.6, "upper_lip_up": 0.45},
               {"lip_round": 3.0, "upper_lip_up": 3.0, "jaw_open": 1.0, "lip_press": 8.0,
                "lip_wide": 2.0}, 0.5),
    # sibilants: teeth nearly together, lips spread
    "S": _art("SS", {"jaw_open": 0.06, "lip_wide": 0.45, "upper_lip_up": 0.2},
              {"jaw_open": 1.2, "lip_wide": 0.8, "lip_press": 8.0}, 0.3),
    "Z": _art("SS", {"jaw_open": 0.06, "lip_wide": 0.45, "upper_lip_up": 0.2},
              {"jaw_open": 1.2, "lip_wide": 0.8, "lip_press": 8.0}, 0.3),
    # nasals / lateral: tongue tip up, jaw slightly open, weakly specified
    "N": _art("nn", {"jaw_open": 0.15, "lip_wide": 0.15}, {"jaw_open": 0.3, "lip_press": 8.0},
              0.15),
    "NG": _art("nn", {"jaw_open": 0.2, "lip_wide": 0.1}, {"jaw_open": 0.2, "lip_press": 8.0},
               0.1),
    "L": _art("nn", {"jaw_open": 0.25, "lip_wide": 0.1}, {"jaw_open": 0.4, "lip_press": 8.0},
              0.15),
    # rhotics: lips slightly rounded
    "R": _art("RR", {"jaw_open": 0.15, "lip_round": 0.45}, {"lip_round": 1.5, "jaw_open": 0.5,
                                                             "lip_press": 8.0}, 0.3),
    "ER": _art("RR", {"jaw_open": 0.3, "lip_round": 0.4}, {"lip_round": 1.5, "jaw_open": _V,
                                                            "lip_press": 8.0}, 0.5),
    # open vowels
    "AA": _art("aa", {"jaw_open": 1.0, "lip_wide": 0.1}, {"jaw_open": _V, "lip_press": 8.0},
               0.5),
    "AE": _art("aa", {"jaw_open": 0.8, "lip_wide": 0.45, "smile": 0.1},
               {"jaw_open": _V, "lip_press": 8.0}, 0.5),
    "AH": _art("aa", {"jaw_open": 0.6, "lip_wide": 0.1}, {"jaw_open": _V, "lip_press": 8.0},
               0.5),
    # mid-front vowels
    "EH": _art("E", {"jaw_open": 0.5, "lip_wide": 0.5, "smile": 0.1},
               {"jaw_open": _V, "lip_wide": 0.8, "lip_press": 8.0}, 0.5),
    # close-front vowels: small jaw, spread lips
    "IH": _art("ih", {"jaw_open": 0.3, "lip_wide": 0.6, "smile": 0.1},
               {"jaw_open": _V, "lip_wide": 0.8, "lip_press": 8.0}, 0.5),
    "IY": _art("ih", {"jaw_open": 0.15, "lip_wide": 0.9, "smile": 0.2},
               {"jaw_open": _V, "lip_wide": 1.0, "lip_press": 8.0}, 0.5),
    "Y": _art("ih", {"jaw_open": 0.12, "lip_wide": 0.7}, {"jaw_open": 0.5, "lip_wide": 0.8,
                                                          "lip_press": 8.0}, 0.3),
    # back rounded vowels
    "AO": _art("oh", {"jaw_open": 0.7, "lip_round": 0.5}, {"jaw_open": _V, "lip_round": 1.0,
                                                           "lip_press": 8.0}, 0.5),
    "UH": _art("ou", {"jaw_open": 0.3, "lip_round": 0.6}, {"jaw_open": _V, "lip_round": 1.2,
                                                           "lip_press": 8.0}, 0.5),
    "UW": _art("ou", {"jaw_open": 0.2, "lip_round": 1.0}, {"jaw_open": _V, "lip_round": 2.0,
                                                           "lip_press": 8.0}, 0.5),
    "W": _art("ou", {"jaw_open": 0.1, "lip_round": 0.9}, {"lip_round": 2.0, "jaw_open": 0.6,
                                                          "lip_press": 8.0}, 0.3),
}
# Diphthong entries: viseme of the whole phone, target of the first part (parts are blended
# separately by `expand_phone`).
for _phone, (_first, _) in DIPHTHONGS.items():
    _a = _PHONES[_first]
    _PHONES[_phone] = Articulation(VISEME_OF_PHONE[_phone], _a.target, _a.dominance, _a.reach)

# A phone outside ARPAbet (another language's symbol, recogniser garbage): half-open, weak.
UNKNOWN = _art("unknown", {"jaw_open": 0.35, "lip_wide": 0.2}, {"lip_press": 4.0}, 0.2)


def normalize_phone(phone: str) -> str:
    """Upper case, stress digits dropped, common silence spellings mapped to SIL."""
    p = phone.strip().upper().rstrip("012")
    if p in ("", "SP", "SPN", "PAU", "SIL", "<SIL>", "<S>", "</S>", "NSN", "+NSN+", "+BREATH+"):
        return "SIL"
    return p


def articulation(phone: str) -> Articulation:
    """The target and dominance of a phone (unknown phones get a weak, half-open pose)."""
    return _PHONES.get(normalize_phone(phone), UNKNOWN)


def expand_phone(phone: str, start_s: float, end_s: float
                 ) -> list[tuple[str, float, float]]:
    """Split a diphthong into its two parts; other phones pass through (normalised)."""
    p = normalize_phone(phone)
    if p not in DIPHTHONGS:
        return [(p, start_s, end_s)]
    first, second = DIPHTHONGS[p]
    mid = start_s + DIPHTHONG_SPLIT * (end_s - start_s)
    return [(first, start_s, mid), (second, mid, end_s)]
