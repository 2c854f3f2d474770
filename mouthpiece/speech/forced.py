"""Forced alignment of a word sequence with pocketsphinx (the core of both alignment and
recognition: recognised words are re-aligned this way to get accurate phone timing)."""

from __future__ import annotations

import logging

import numpy as np

from mouthpiece.speech import decoders
from mouthpiece.speech.phones import SILENCE, normalize_phone
from mouthpiece.speech.text import pronounce_unknown
from mouthpiece.types import PhonemeSegment

log = logging.getLogger(__name__)

# Per-frame phone score (pocketsphinx's scaled log units) → confidence: at _SCORE_GOOD or
# better → 1, at _SCORE_BAD or worse → 0. Measured: correctly aligned clean speech scores
# -4..-20 per frame (mean phone confidence ~0.85); recognised words forced onto German or
# Chinese speech average ~0.3.
_SCORE_GOOD = -8.0
_SCORE_BAD = -40.0


class AlignmentError(RuntimeError):
    """pocketsphinx could not align these words to this audio."""


def _ensure_in_dictionary(decoder, words: list[str], lexicon=None) -> list[str]:
    """Add pronunciations for words the decoder does not know — from `lexicon(words)` (dict
    entries, alternates as "word(2)"), else by letter-to-sound — and return the words that
    can be aligned."""
    unknown = sorted({w for w in words if decoder.lookup_word(w) is None})
    if unknown:
        entries = lexicon(unknown) if lexicon is not None else {}
        guessed = [w for w in unknown if w not in entries]
        if guessed:
            prons = pronounce_unknown(guessed)
            log.info("out-of-vocabulary words: %s", {w: " ".join(p) for w, p in prons.items()})
            entries.update({w: " ".join(p) for w, p in prons.items()})
        for i, (word, phones) in enumerate(entries.items()):
            decoder.add_word(word, phones, update=(i == len(entries) - 1))
    return [w for w in words if decoder.lookup_word(w) is not None]


def score_confidence(score: float, n_frames: int) -> float:
    per_frame = score / max(n_frames, 1)
    return float(np.clip((per_frame - _SCORE_BAD) / (_SCORE_GOOD - _SCORE_BAD), 0.0, 1.0))


def align_words(pcm: bytes, words: list[str], pad_s: float, *, locked=None,
                lexicon=None) -> list[PhonemeSegment]:
    """Phone segments (times in seconds of the unpadded audio, not yet gap-filled) for `words`
    spoken in `pcm` (16-bit PCM with `pad_s` padding). Raises AlignmentError.

    `locked`: the aligner to use (default `decoders.aligner()`); `lexicon(words)`: dictionary
    entries for words it does not know yet (default: letter-to-sound)."""
    locked = locked or decoders.aligner()
    with locked.lock:
        decoder = locked.decoder
        words = _ensure_in_dictionary(decoder, words, lexicon)
        if not words:
            raise AlignmentError("no pronounceable words in the transcript")
        try:
            decoder.set_align_text(" ".join(words))
            decoders.decode_utterance(decoder, pcm)
            if decoder.hyp() is None:
                raise AlignmentError("word alignment found no path")
            decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            alignment = decoder.get_alignment()
        except RuntimeError as exc:
            raise AlignmentError(str(exc)) from exc
        if alignment is None:
            raise AlignmentError("phone alignment failed")
        segments = []
        for phone in alignment.phones():
            start = phone.start * decoders.FRAME_S - pad_s  # seconds of the original audio
            end = (phone.start + phone.duration) * decoders.FRAME_S - pad_s
            name = normalize_phone(phone.name)
            conf = 1.0 if name == SILENCE else score_confidence(phone.score, phone.duration)
            segments.append(PhonemeSegment(name, start, end, conf))
    if not any(s.phone != SILENCE for s in segments):
        raise AlignmentError("alignment produced no phones")
    return segments
