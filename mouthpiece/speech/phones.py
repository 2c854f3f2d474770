"""The phone inventory (ARPAbet, as in CMUdict and pocketsphinx's en-us model) and timeline
helpers that every speech function uses to return a gap-free list of `PhonemeSegment`s."""

from __future__ import annotations

import re

from mouthpiece.types import PhonemeSegment

SILENCE = "SIL"

# The 39 ARPAbet phones of CMUdict / the pocketsphinx en-us acoustic model (stress removed).
ARPABET: frozenset[str] = frozenset(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
    "UH UW V W Y Z ZH".split()
)
BILABIALS: frozenset[str] = frozenset({"P", "B", "M"})
VOWELS: frozenset[str] = frozenset(
    "AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split()
)


def normalize_phone(name: str) -> str:
    """Map a recogniser/synthesiser phone name to ARPAbet without stress, or "SIL".

    pocketsphinx fillers (SIL, +NSN+, +SPN+, <sil>, …) and anything unknown become "SIL".
    """
    phone = re.sub(r"[0-9]", "", name.strip().upper())
    return phone if phone in ARPABET else SILENCE


def cover_timeline(
    segments: list[PhonemeSegment], duration_s: float, min_len_s: float = 1e-4
) -> list[PhonemeSegment]:
    """Clip segments to [0, duration_s], resolve overlaps, fill gaps with SIL and merge
    neighbouring SILs, so the result tiles the whole audio exactly (monotonic, no gaps)."""
    out: list[PhonemeSegment] = []
    cursor = 0.0  # seconds

    def push(phone: str, start: float, end: float, confidence: float) -> None:
        if end - start < min_len_s:
            return
        if out and phone == SILENCE and out[-1].phone == SILENCE:
            prev = out.pop()
            start = prev.start_s
            confidence = min(confidence, prev.confidence)
        out.append(PhonemeSegment(phone, start, end, confidence))

    for seg in sorted(segments, key=lambda s: s.start_s):
        start = min(max(seg.start_s, cursor), duration_s)
        end = min(max(seg.end_s, start), duration_s)
        if start > cursor:
            push(SILENCE, cursor, start, 1.0)
        if end - start >= min_len_s:
            push(seg.phone, start, end, seg.confidence)
            cursor = end
    if duration_s - cursor >= min_len_s or not out:
        push(SILENCE, cursor, duration_s, 1.0)
    if not out:  # zero-length audio
        return [PhonemeSegment(SILENCE, 0.0, duration_s)]
    # Snap the ends so the tiling is exact despite dropped slivers.
    first, last = out[0], out[-1]
    out[0] = PhonemeSegment(first.phone, 0.0, first.end_s, first.confidence)
    out[-1] = PhonemeSegment(last.phone, out[-1].start_s, duration_s, last.confidence)
    for i in range(1, len(out)):
        if out[i].start_s != out[i - 1].end_s:
            prev = out[i - 1]
            out[i - 1] = PhonemeSegment(prev.phone, prev.start_s, out[i].start_s, prev.confidence)
    return out
