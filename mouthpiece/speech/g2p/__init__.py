"""g2p: text normalisation, the user's replacement dictionary and grapheme→phoneme helpers.

Public API:
    normalize_text(text, lang) -> str
    ReplacementDictionary.load(path) / .from_pairs({...}) ; .split(text) -> [TextChunk | PhoneChunk]
    han_to_pinyin(text) -> [syllable | non-Han run]; pinyin_to_arpabet(syllable) -> [ARPAbet]
    arpabet_to_ipa(phones), arpabet_to_espeak(phones), ipa_to_arpabet(token)
"""

from mouthpiece.speech.g2p.dictionary import (
    Chunk, PhoneChunk, ReplacementDictionary, TextChunk, parse_phoneme,
)
from mouthpiece.speech.g2p.mandarin import HAN, han_to_pinyin, is_pinyin, pinyin_to_arpabet
from mouthpiece.speech.g2p.normalize import normalize_text
from mouthpiece.speech.g2p.phonesets import arpabet_to_espeak, arpabet_to_ipa, ipa_to_arpabet

__all__ = [
    "HAN", "Chunk", "PhoneChunk", "ReplacementDictionary", "TextChunk", "arpabet_to_espeak",
    "arpabet_to_ipa", "han_to_pinyin", "ipa_to_arpabet", "is_pinyin", "normalize_text",
    "parse_phoneme", "pinyin_to_arpabet",
]
