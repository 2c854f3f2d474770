"""Transcript text → dictionary words, and pronunciations for words the dictionary lacks.

Numbers are spelled out; out-of-vocabulary words get a letter-to-sound pronunciation from
espeak-ng (IPA mapped to ARPAbet) when it is installed, else from simple spelling rules.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess
import unicodedata

from mouthpiece.speech.g2p.phonesets import ipa_to_arpabet
from mouthpiece.speech.phones import ARPABET

log = logging.getLogger(__name__)

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at ", "=": " equals "}


def number_to_words(n: int) -> str:
    """Cardinal English words for a non-negative integer (e.g. 342 → "three hundred forty two")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            tail = "" if rest == 0 else " " + number_to_words(rest)
            return number_to_words(head) + " " + name + tail
    raise AssertionError("unreachable")


def _ordinal(words: str) -> str:
    *head, last = words.split()
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _spell_number(match: re.Match) -> str:
    token = match.group(0)
    currency = token.startswith("$")
    token = token.lstrip("$").replace(",", "")
    ordinal = re.search(r"(st|nd|rd|th)$", token, re.IGNORECASE)
    if ordinal:
        token = token[: ordinal.start()]
    whole, _, frac = token.partition(".")
    words = number_to_words(int(whole)) if whole else "zero"
    if ordinal:
        words = _ordinal(words)
    if currency:
        words += " dollars"
        if frac and int(frac):
            words += " and " + number_to_words(int(frac[:2].ljust(2, "0"))) + " cents"
    elif frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    return f" {words} "


def normalize_transcript(text: str) -> list[str]:
    """Lower-case words for alignment: numbers spelled out, accents stripped, punctuation
    dropped (apostrophes inside words kept, as CMUdict has "don't")."""
    text = unicodedata.normalize("NFKC", text)
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    text = re.sub(r"\$?\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th)?", _spell_number, text, flags=re.I)
    text = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).lower()
    words = []
    for raw in re.split(r"[^\w']+", text):
        word = raw.strip("'_")
        if word:
            words.append(word)
    return words


# Fallback letter-to-sound rules: digraphs first, then single letters.
_LETTER_RULES: tuple[tuple[str, str], ...] = (
    ("tch", "CH"), ("sch", "S K"), ("th", "TH"), ("sh", "SH"), ("ch", "CH"), ("ph", "F"),
    ("ng", "NG"), ("ck", "K"), ("qu", "K W"), ("wh", "W"), ("ee", "IY"), ("ea", "IY"),
    ("oo", "UW"), ("ou", "AW"), ("ow", "OW"), ("ai", "EY"), ("ay", "EY"), ("oi", "OY"),
    ("oy", "OY"), ("au", "AO"), ("aw", "AO"), ("a", "AE"), ("b", "B"), ("c", "K"), ("d", "D"),
    ("e", "EH"), ("f", "F"), ("g", "G"), ("h", "HH"), ("i", "IH"), ("j", "JH"), ("k", "K"),
    ("l", "L"), ("m", "M"), ("n", "N"), ("o", "AA"), ("p", "P"), ("q", "K"), ("r", "R"),
    ("s", "S"), ("t", "T"), ("u", "AH"), ("v", "V"), ("w", "W"), ("x", "K S"), ("y", "Y"),
    ("z", "Z"),
)


def spell_by_rules(word: str) -> list[str]:
    """Crude letter-to-sound pronunciation (used when espeak-ng is missing or fails)."""
    phones: list[str] = []
    i = 0
    letters = word.lower()
    while i < len(letters):
        for graph, sound in _LETTER_RULES:
            if letters.startswith(graph, i):
                if not (graph == "e" and i == len(letters) - 1 and i > 1):  # silent final e
                    phones.extend(sound.split())
                i += len(graph)
                break
        else:
            i += 1
    # Doubled consonants ("puppy") are one phone.
    return [p for j, p in enumerate(phones) if j == 0 or p != phones[j - 1]]


@functools.lru_cache(maxsize=1)
def _espeak_binary() -> str | None:
    return shutil.which("espeak-ng")


def espeak_pronunciations(words: list[str]) -> dict[str, list[str]]:
    """ARPAbet pronunciations from espeak-ng (American voice) for several words in one call.
    Words espeak-ng cannot handle are missing from the result."""
    binary = _espeak_binary()
    if binary is None or not words:
        return {}
    text = "".join(f"{w}.\n" for w in words)
    try:
        proc = subprocess.run(
            [binary, "-v", "en-us", "-q", "--ipa", "--sep=_", "--stdin"],
            input=text, capture_output=True, text=True, timeout=30, check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("espeak-ng failed (%s); using spelling rules", exc)
        return {}
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    if len(lines) != len(words):
        log.debug("espeak-ng returned %d lines for %d words", len(lines), len(words))
        return {}
    result = {}
    for word, line in zip(words, lines):
        phones = [p for tok in re.split(r"[_\s]+", line) for p in ipa_to_arpabet(tok)]
        phones = [p for p in phones if p in ARPABET]
        if phones:
            result[word] = phones
    return result


def pronounce_unknown(words: list[str]) -> dict[str, list[str]]:
    """Pronunciations for out-of-vocabulary words: espeak-ng where possible, else rules.
    Words with no pronounceable letters at all are absent from the result."""
    found = espeak_pronunciations(words)
    for word in words:
        if word not in found:
            phones = spell_by_rules(word)
            if phones:
                found[word] = phones
    return found
