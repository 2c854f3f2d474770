"""speech: phone timing (pocketsphinx alignment / recognition) and per-frame acoustic cues.

Public API:
    align_transcript(audio, transcript) -> list[PhonemeSegment]
    recognize_phonemes(audio) -> list[PhonemeSegment]
    frame_features(audio, fps, n_frames) -> AudioFeatures
    synthesize_with_timings(text, out_wav, voice=...) -> list[PhonemeSegment]  (festival)
Nothing heavy happens on import; pocketsphinx decoders are built on first use and cached.
"""

from mouthpiece.speech.align import align_transcript
from mouthpiece.speech.features import frame_features
from mouthpiece.speech.phones import ARPABET, BILABIALS, SILENCE, VOWELS
from mouthpiece.speech.recognize import recognize_phonemes
from mouthpiece.speech.reference_tts import synthesize_with_timings

__all__ = [
    "ARPABET",
    "BILABIALS",
    "SILENCE",
    "VOWELS",
    "align_transcript",
    "frame_features",
    "recognize_phonemes",
    "synthesize_with_timings",
]
