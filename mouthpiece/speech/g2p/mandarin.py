"""Mandarin G2P: pypinyin (phrase dictionary, polyphones, tone sandhi) → numbered pinyin,
and pinyin → the nearest ARPAbet phones for engines that cannot speak pinyin."""

from __future__ import annotations

import re

PINYIN_SYLLABLE = re.compile(r"^(zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?([a-zü:v]+)([1-5])$")
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

_INITIALS = {
    "b": "B", "p": "P", "m": "M", "f": "F", "d": "D", "t": "T", "n": "N", "l": "L", "g": "G",
    "k": "K", "h": "HH", "j": "JH", "q": "CH", "x": "SH", "zh": "JH", "ch": "CH", "sh": "SH",
    "r": "R", "z": "Z", "c": "S", "s": "S", "y": "Y", "w": "W",
}
_FINALS = {
    "a": "AA", "o": "AO", "e": "AH", "i": "IY", "u": "UW", "ü": "UW", "ai": "AY", "ei": "EY",
    "ao": "AW", "ou": "OW", "an": "AA N", "en": "AH N", "ang": "AA NG", "eng": "AH NG",
    "ong": "UH NG", "er": "ER", "ia": "Y AA", "ie": "Y EH", "iao": "Y AW", "iu": "Y OW",
    "ian": "Y EH N", "in": "IY N", "iang": "Y AA NG", "ing": "IY NG", "iong": "Y UH NG",
    "ua": "W AA", "uo": "W AO", "uai": "W AY", "ui": "W EY", "uan": "W AA N", "un": "W AH N",
    "uang": "W AA NG", "ueng": "W AH NG", "üe": "UW EH", "üan": "UW EH N", "ün": "UW N",
}


def is_pinyin(phoneme: str) -> bool:
    """True if every token of `phoneme` is a numbered pinyin syllable ("chong2 qing4")."""
    tokens = phoneme.split()
    return bool(tokens) and all(PINYIN_SYLLABLE.match(t.lower()) for t in tokens)


def han_to_pinyin(text: str) -> list[str]:
    """Numbered pinyin (tone 5 = neutral) for the Han characters in `text`; non-Han runs are
    returned as they are (one list item per run)."""
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, tone_sandhi=True)


def pinyin_to_arpabet(syllable: str) -> list[str]:
    """Nearest ARPAbet phones (with stress 1 on the nucleus) for one numbered pinyin syllable."""
    match = PINYIN_SYLLABLE.match(syllable.lower().replace("v", "ü").replace("u:", "ü"))
    if not match:
        raise ValueError(f"not a numbered pinyin syllable: {syllable!r}")
    initial, final, _tone = match.groups()
    if initial in ("j", "q", "x", "y") and final.startswith("u"):
        final = "ü" + final[1:]  # ju, qu, xu, yu(e/an/n) are written without the dots
    if initial == "y":
        final = final if final.startswith(("i", "ü")) else "i" + final
        initial = None if final.startswith(("i", "ü")) else initial
    if initial == "w":
        final = final if final.startswith("u") else "u" + final
        initial = None
    if final == "i" and initial in ("z", "c", "s"):
        nucleus = ["IH"]
    elif final == "i" and initial in ("zh", "ch", "sh", "r"):
        nucleus = ["ER"]
    else:
        if final not in _FINALS:
            raise ValueError(f"unknown pinyin final {final!r} in {syllable!r}")
        nucleus = _FINALS[final].split()
    head = [_INITIALS[initial]] if initial else []
    return head + [p + "1" if p in _VOWELS else p for p in nucleus]


_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
