"""Conversions between the phone sets the engines speak and ARPAbet (what lip-sync reads).

- ARPAbet (CMUdict style, stress digits 0/1/2) → IPA as espeak-ng writes it (piper's input).
- ARPAbet → espeak-ng's ASCII phoneme mnemonics (espeak-ng's `[[…]]` phoneme input).
- IPA phoneme tokens reported by espeak-ng / piper (English and Mandarin) → ARPAbet.
"""

from __future__ import annotations

import re

_VOWEL_IPA = {
    "AA": "ɑː", "AE": "æ", "AO": "ɔː", "AW": "aʊ", "AY": "aɪ", "EH": "ɛ", "EY": "eɪ",
    "IH": "ɪ", "IY": "iː", "OW": "oʊ", "OY": "ɔɪ", "UH": "ʊ", "UW": "uː",
}
_CONSONANT_IPA = {
    "B": "b", "CH": "tʃ", "D": "d", "DH": "ð", "F": "f", "G": "ɡ", "HH": "h", "JH": "dʒ",
    "K": "k", "L": "l", "M": "m", "N": "n", "NG": "ŋ", "P": "p", "R": "ɹ", "S": "s", "SH": "ʃ",
    "T": "t", "TH": "θ", "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "ʒ",
}
_VOWEL_ESPEAK = {
    "AA": "A:", "AE": "a", "AO": "O:", "AW": "aU", "AY": "aI", "EH": "E", "EY": "eI", "IH": "I",
    "IY": "i:", "OW": "oU", "OY": "OI", "UH": "U", "UW": "u:",
}
_CONSONANT_ESPEAK = {
    "B": "b", "CH": "tS", "D": "d", "DH": "D", "F": "f", "G": "g", "HH": "h", "JH": "dZ",
    "K": "k", "L": "l", "M": "m", "N": "n", "NG": "N", "P": "p", "R": "r", "S": "s", "SH": "S",
    "T": "t", "TH": "T", "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "Z",
}
_STRESS_IPA = {"1": "ˈ", "2": "ˌ"}
_STRESS_ESPEAK = {"1": "'", "2": ","}
ARPABET_PHONE = re.compile(r"^([A-Z]{1,2})([012]?)$")


def split_stress(token: str) -> tuple[str, str]:
    """("AH", "0") for "AH0"; raises ValueError for anything that is not an ARPAbet phone."""
    match = ARPABET_PHONE.match(token)
    if not match or (match.group(1) not in _VOWEL_IPA and match.group(1) not in _CONSONANT_IPA
                     and match.group(1) not in ("AH", "ER")):
        raise ValueError(f"not an ARPAbet phone: {token!r}")
    return match.group(1), match.group(2)


def arpabet_to_ipa(phones: list[str]) -> str:
    """IPA string in espeak-ng's conventions (stress mark before the stressed vowel)."""
    out = []
    for token in phones:
        phone, stress = split_stress(token)
        if phone == "AH":
            out.append(_STRESS_IPA.get(stress, "") + ("ʌ" if stress in ("1", "2") else "ə"))
        elif phone == "ER":
            out.append(_STRESS_IPA.get(stress, "") + ("ɜː" if stress in ("1", "2") else "ɚ"))
        elif phone in _VOWEL_IPA:
            out.append(_STRESS_IPA.get(stress, "") + _VOWEL_IPA[phone])
        else:
            out.append(_CONSONANT_IPA[phone])
    return "".join(out)


def arpabet_to_espeak(phones: list[str]) -> str:
    """espeak-ng (en) phoneme mnemonics for `[[…]]` input."""
    out = []
    for token in phones:
        phone, stress = split_stress(token)
        if phone == "AH":
            out.append(_STRESS_ESPEAK.get(stress, "") + ("V" if stress in ("1", "2") else "@"))
        elif phone == "ER":
            out.append(_STRESS_ESPEAK.get(stress, "") + ("3:" if stress in ("1", "2") else "3"))
        elif phone in _VOWEL_ESPEAK:
            out.append(_STRESS_ESPEAK.get(stress, "") + _VOWEL_ESPEAK[phone])
        else:
            out.append(_CONSONANT_ESPEAK[phone])
    return "".join(out)


# IPA (espeak-ng output, English + Mandarin voices, and piper's codepoints) → ARPAbet.
# Mandarin sounds map to the phone with the nearest mouth shape (lip-sync is the consumer):
# retroflex/alveolo-palatal affricates → CH/JH, sibilants → S/SH, ü → UW (rounded), apical
# vowels → IH/ER.
_IPA_TO_ARPABET: dict[str, str] = {
    # English vowels
    "ɑː": "AA", "ɑ": "AA", "ɒ": "AA", "æ": "AE", "a": "AA", "ʌ": "AH", "ə": "AH", "ɐ": "AH",
    "ᵻ": "IH", "ɔː": "AO", "ɔ": "AO", "oː": "AO", "aʊ": "AW", "aɪ": "AY", "ɛ": "EH", "e": "EH",
    "ɜː": "ER", "ɜ": "ER", "ɝ": "ER", "ɚ": "ER", "eɪ": "EY", "ɪ": "IH", "i": "IY", "iː": "IY",
    "oʊ": "OW", "o": "OW", "əʊ": "OW", "ɔɪ": "OY", "ʊ": "UH", "u": "UW", "uː": "UW",
    "ɛɹ": "EH R", "ɪɹ": "IH R", "ʊɹ": "UH R", "ɑːɹ": "AA R", "ɔːɹ": "AO R", "oːɹ": "AO R",
    "aɪɚ": "AY ER", "aɪə": "AY ER", "iə": "IY AH", "əl": "AH L", "l̩": "AH L", "n̩": "AH N",
    # English consonants
    "b": "B", "p": "P", "t": "T", "d": "D", "k": "K", "g": "G", "ɡ": "G", "f": "F", "v": "V",
    "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "m": "M",
    "n": "N", "ŋ": "NG", "l": "L", "ɫ": "L", "ɹ": "R", "r": "R", "w": "W", "j": "Y",
    "tʃ": "CH", "dʒ": "JH", "ɾ": "T", "ʔ": "T", "x": "HH", "ç": "HH", "ʍ": "W",
    # Mandarin (espeak-ng cmn voices)
    "ts.h": "CH", "ts.": "JH", "s.": "SH", "tɕh": "CH", "tɕ": "JH", "ɕ": "SH", "tsh": "S",
    "ts": "S", "ʐ": "R", "χ": "HH", "i̪": "IH", "i.": "ER", "ər": "ER", "y": "UW",
    "yɛ": "UW EH", "o-": "AH", "ɤ": "AH", "onɡ": "UH NG", "ei": "EY", "ai": "AY", "au": "AW",
    "ou": "OW", "ia": "Y AA", "ua": "W AA", "uo": "W AO", "iɛ": "Y EH", "iou": "Y OW",
    "uei": "W EY", "uai": "W AY", "iau": "Y AW", "ioŋ": "Y UH NG", "ioŋɡ": "Y UH NG",
    "ɿ": "IH", "ʅ": "ER",
    # frequent sounds of other espeak-ng languages, by nearest mouth shape
    "ʁ": "R", "ʀ": "R", "ɐ̯": "AH", "ø": "UH", "œ": "UH", "ʏ": "UH", "ɲ": "N Y", "ʎ": "L Y",
    "β": "B", "ɣ": "G", "pf": "P F", "ts̪": "S", "ɔʏ": "OY", "aɪ̯": "AY", "aʊ̯": "AW",
    "ɨ": "IH", "ɯ": "UW", "ɶ": "AE", "ʑ": "ZH", "ʂ": "SH", "ɥ": "W", "ʋ": "V", "ɱ": "M",
    "ɭ": "L", "ɳ": "N", "ʈ": "T", "ɖ": "D", "ɰ": "W", "ɦ": "HH", "ħ": "HH", "ɸ": "F",
    "c": "K", "ɟ": "G", "dz": "D Z",
}
_IPA_KEYS = sorted(_IPA_TO_ARPABET, key=len, reverse=True)
# Marks that carry no phone of their own (stress, length, tone, syllabic, ties).
_IGNORED = set("ˈˌ'ˑː‿-_|̩̃ʰ0123456789") | {"\u0361", "\u035c"}


def ipa_to_arpabet(token: str) -> list[str]:
    """ARPAbet phones for one IPA phoneme token (greedy longest match; marks ignored)."""
    phones: list[str] = []
    rest = token.strip()
    while rest:
        for key in _IPA_KEYS:
            if rest.startswith(key):
                phones.extend(_IPA_TO_ARPABET[key].split())
                rest = rest[len(key):]
                break
        else:
            rest = rest[1:]
    return phones


def is_phone_bearing(char: str) -> bool:
    """True for IPA codepoints that start or continue a phone (not stress/length/space marks)."""
    return bool(char.strip()) and char not in _IGNORED and char not in ",.;:!?¡¿—…\"()"


def longest_ipa_match(text: str, pos: int) -> int:
    """Length of the longest IPA phone token starting at `text[pos]` (0 if none)."""
    for key in _IPA_KEYS:
        if text.startswith(key, pos):
            return len(key)
    return 0
