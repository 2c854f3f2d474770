"""Phones for speech without a transcript.

Allphone (free phone-loop) recognition alone is poor (~50-65 % phone error rate on clean
speech), so words are decoded with the shipped English language model first and that
hypothesis is force-aligned for phone timing. Allphone is the fallback when word decoding
finds nothing or its words fit the audio badly (e.g. another language).
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np

from mouthpiece.speech import decoders
from mouthpiece.speech.forced import AlignmentError, align_words
from mouthpiece.speech.phones import SILENCE, cover_timeline, normalize_phone
from mouthpiece.types import Audio, PhonemeSegment

log = logging.getLogger(__name__)

# Word hypothesis is kept when its aligned phones fit the audio nearly as well as the free
# phone loop does (mean confidence of speech phones; measured ~0.8 for English, lower for
# other languages).
_MIN_WORD_CONFIDENCE = 0.45
# Allphone segment scores (per frame, relative to the best senone; log base 1.0001 units):
# ~+4 on clean English, ~-11 on German. Phone identities from the loop are wrong about half
# the time, so their confidence is capped at 0.5.
_PHONE_LOOP_SCORE_BAD, _PHONE_LOOP_SCORE_GOOD = -15.0, 5.0
# Word decoding needs less padding than alignment. Measured on 10 festival/piper utterances
# cut at their first and last phone: word error rate 13.6 % with 0.1 s, 18.2 % with 0.3 s,
# and 14 % less audio to decode (the alignment keeps decoders.PAD_S).
WORD_PAD_S = 0.1


def decode_words(pcm: bytes) -> list[str]:
    """Best word sequence from the LM decoder (fillers and silences removed)."""
    locked = decoders.word_recognizer()
    with locked.lock:
        decoder = locked.decoder
        decoders.decode_utterance(decoder, pcm)
        hyp = decoder.hyp()
    if hyp is None:
        return []
    return [w for w in hyp.hypstr.split() if not w.startswith(("<", "[", "+"))]


def decode_phones(pcm: bytes, pad_s: float) -> list[PhonemeSegment]:
    """Allphone recognition: phone segments in seconds of the unpadded audio."""
    locked = decoders.phone_recognizer()
    with locked.lock:
        decoder = locked.decoder
        decoders.decode_utterance(decoder, pcm)
        logmath = decoder.get_logmath()
        segments = []
        for seg in decoder.seg():
            n_frames = seg.end_frame - seg.start_frame + 1
            phone = normalize_phone(seg.word)
            per_frame = logmath.log(seg.ascore) / n_frames  # seg.ascore is a probability
            fit = (per_frame - _PHONE_LOOP_SCORE_BAD) / (
                _PHONE_LOOP_SCORE_GOOD - _PHONE_LOOP_SCORE_BAD)
            conf = 1.0 if phone == SILENCE else 0.5 * float(np.clip(fit, 0.0, 1.0))
            segments.append(PhonemeSegment(
                phone,
                seg.start_frame * decoders.FRAME_S - pad_s,
                (seg.end_frame + 1) * decoders.FRAME_S - pad_s,
                conf,
            ))
    return segments


def _mean_speech_confidence(segments: list[PhonemeSegment]) -> float:
    speech = [s for s in segments if s.phone != SILENCE]
    total = sum(s.duration_s for s in speech)
    if total <= 0:
        return 0.0
    return sum(s.confidence * s.duration_s for s in speech) / total


def recognize_phonemes(audio: Audio) -> list[PhonemeSegment]:
    """Phone segments for untranscribed speech, covering the whole audio (SIL in pauses).

    `confidence` is the acoustic fit of each phone (0..1). For non-English speech the phones
    come from the phone loop: approximate, but timed with the audio.
    """
    pcm = decoders.padded_pcm(audio)
    words = decode_words(decoders.padded_pcm(audio, WORD_PAD_S))
    segments: list[PhonemeSegment] = []
    if words:
        try:
            segments = align_words(
                pcm, words, decoders.PAD_S, locked=decoders.word_aligner(),
                lexicon=partial(decoders.pronunciations, decoders.word_recognizer()))
        except AlignmentError as exc:
            log.info("re-alignment of recognised words failed: %s", exc)
    confidence = _mean_speech_confidence(segments)
    if confidence < _MIN_WORD_CONFIDENCE:
        log.info("word hypothesis fits poorly (%.2f); using allphone recognition", confidence)
        segments = decode_phones(pcm, decoders.PAD_S)
    return cover_timeline(segments, audio.duration_s)
