"""Turning an engine's (phone token, start sample) stream into gap-free ARPAbet segments."""

from __future__ import annotations

from mouthpiece.speech.g2p.phonesets import ipa_to_arpabet
from mouthpiece.speech.phones import SILENCE, cover_timeline
from mouthpiece.types import PhonemeSegment


def segments_from_ipa_spans(
    spans: list[tuple[str, int, int]], sample_rate: int, n_samples: int
) -> list[PhonemeSegment]:
    """`spans`: (IPA token, start sample, end sample); "" means a pause. Tokens that expand to
    several ARPAbet phones (diphthong + r, Mandarin finals) share their span equally."""
    segments = []
    for token, start, end in spans:
        if end <= start:
            continue
        phones = ipa_to_arpabet(token) if token else []
        if not phones:
            segments.append(PhonemeSegment(SILENCE, start / sample_rate, end / sample_rate))
            continue
        step = (end - start) / len(phones)  # samples per phone
        for i, phone in enumerate(phones):
            segments.append(PhonemeSegment(
                phone, (start + i * step) / sample_rate, (start + (i + 1) * step) / sample_rate))
    return cover_timeline(segments, n_samples / sample_rate)


def phone_string(segments: list[PhonemeSegment]) -> str:
    """Space-separated phones with "|" for pauses (for --phonemes-out and reports)."""
    names = []
    for seg in segments:
        name = "|" if seg.phone == SILENCE else seg.phone
        if not (name == "|" and (not names or names[-1] == "|")):
            names.append(name)
    return " ".join(names).strip(" |")
