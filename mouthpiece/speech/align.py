"""Forced alignment of a known transcript → phone segments covering the whole audio."""

from __future__ import annotations

import logging
from dataclasses import replace

from mouthpiece.speech import decoders
from mouthpiece.speech.forced import AlignmentError, align_words
from mouthpiece.speech.phones import cover_timeline
from mouthpiece.speech.recognize import recognize_phonemes
from mouthpiece.speech.text import normalize_transcript
from mouthpiece.types import Audio, PhonemeSegment

log = logging.getLogger(__name__)


def align_transcript(audio: Audio, transcript: str) -> list[PhonemeSegment]:
    """Phone segments for `audio` whose words are known (`transcript`), covering the whole
    audio from 0 to its duration with SIL between words.

    Numbers are spelled out and unknown words get a letter-to-sound pronunciation. If the
    alignment fails (e.g. the transcript does not match the audio) this falls back to
    `recognize_phonemes` rather than raising. `confidence` is 0.5..1 (acoustic fit).
    """
    words = normalize_transcript(transcript)
    if words:
        try:
            segments = align_words(decoders.padded_pcm(audio), words, decoders.PAD_S)
            # The words are given, so identity is not in doubt: acoustic fit only lowers
            # confidence to 0.5 (raw fit is < 0.7 for ~18 % of correctly aligned phones).
            segments = [replace(s, confidence=0.5 + 0.5 * s.confidence) for s in segments]
            return cover_timeline(segments, audio.duration_s)
        except AlignmentError as exc:
            log.warning("forced alignment failed (%s); recognising phones instead", exc)
    return recognize_phonemes(audio)
