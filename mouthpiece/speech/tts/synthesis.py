"""synthesize(): text (+ optional reference voice / style clip / pronunciation dictionary) →
speech with exact phone timings, for `mouthpiece tts` and for text-driven lip-sync.

Steps: validate → dictionary split (before G2P) → normalise text → engine (audio + phone
timings; force-aligned when the engine has none) → voice/prosody adaptation (WORLD) →
resample to the output rate. Timings are scaled with any speaking-rate change, so
`segments` always tile `[0, duration]` of `samples` exactly.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mouthpiece.media import resample
from mouthpiece.speech.g2p import (
    HAN, PhoneChunk, ReplacementDictionary, TextChunk, normalize_text,
)
from mouthpiece.speech.phones import SILENCE, VOWELS, cover_timeline
from mouthpiece.speech.tts.engines import EngineRequest, choose_engine
from mouthpiece.types import SAMPLE_RATE, Audio, InputError, PhonemeSegment

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 2000
SAMPLE_RATES = (16_000, 22_050, 24_000, 32_000, 44_100, 48_000)  # Hz
_LANG_ALIASES = {"cmn": "zh", "zh-cn": "zh", "zh-hans": "zh", "mandarin": "zh", "chinese": "zh",
                 "en-us": "en", "eng": "en", "english": "en"}


@dataclass
class Synthesis:
    """Speech and its phone timings. `samples`: (N,) float32 mono at `sample_rate` Hz;
    `segments`: ARPAbet `PhonemeSegment`s (SIL for pauses) tiling [0, N / sample_rate];
    `phonemes`: the phone string that was spoken (pinyin + ARPAbet for Mandarin);
    `report`: engine, rtf, similarity (base/adapted), warnings, … (JSON-ready)."""

    samples: np.ndarray
    sample_rate: int
    segments: list[PhonemeSegment]
    phonemes: str
    report: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def save_wav(self, path: str | Path) -> None:
        """16-bit PCM mono WAV at `sample_rate`."""
        from mouthpiece.speech.reference_tts import write_wav

        write_wav(path, self.samples, self.sample_rate)

    def analysis_audio(self) -> Audio:
        """The speech at the 16 kHz analysis rate (what the other stages read)."""
        return Audio(resample(self.samples, self.sample_rate, SAMPLE_RATE), SAMPLE_RATE)


def normalize_lang(lang: str) -> str:
    code = (lang or "").strip().lower().replace("_", "-")
    code = _LANG_ALIASES.get(code, code)
    if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)*", code):
        raise InputError(f"language {lang!r} is not a language code: use en, zh, or an "
                         "espeak-ng code such as de, fr, es")
    return code


def _dictionary(g2p_dict) -> ReplacementDictionary:
    if g2p_dict is None:
        return ReplacementDictionary([])
    if isinstance(g2p_dict, ReplacementDictionary):
        return g2p_dict
    if isinstance(g2p_dict, dict):
        return ReplacementDictionary.from_pairs(g2p_dict)
    return ReplacementDictionary.load(g2p_dict)


def _validate(text: str, seed: int, sample_rate: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError("text is empty: give the words to speak")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"text is {len(text)} characters long; the limit is {MAX_TEXT_CHARS}: "
                         "split it into several jobs (e.g. with `mouthpiece batch`)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed={seed!r} must be a whole number ≥ 0")
    if sample_rate not in SAMPLE_RATES:
        raise InputError(f"sample rate {sample_rate} Hz is not supported: choose one of "
                         f"{', '.join(str(r) for r in SAMPLE_RATES)}")
    return text.strip()


def _chunks(text: str, lang: str, dictionary: ReplacementDictionary) -> tuple:
    chunks = []
    for chunk in dictionary.split(text):
        if isinstance(chunk, TextChunk):
            normal = normalize_text(chunk.text, lang)
            if normal:
                chunks.append(TextChunk(f" {normal} "))
        else:
            chunks.append(chunk)
    speakable = any(isinstance(c, PhoneChunk) or re.search(r"\w", c.text) for c in chunks)
    if not speakable:
        raise InputError("text has nothing to pronounce (only punctuation or symbols)")
    return tuple(chunks)


def synthesize(
    text: str,
    *,
    lang: str = "en",
    voice: str | Path | None = None,
    emotion_from: str | Path | None = None,
    g2p_dict=None,
    seed: int = 0,
    engine: str | None = None,
    sample_rate: int = 24_000,
    engine_voice: str | None = None,
) -> Synthesis:
    """Speak `text` in `lang` ("en", "zh", or an espeak-ng code). `voice`: reference clip
    (3–10 s, one speaker) whose voice to imitate; `emotion_from`: clip whose pitch range,
    energy and speaking rate to carry over (default: `voice`); `g2p_dict`: JSONL path,
    `{grapheme: phoneme}` dict or ReplacementDictionary, applied before G2P; `seed`: makes
    the neural engine's sampling reproducible; `engine`: piper|festival|flite|espeak."""
    from mouthpiece.speech.voice import adapt, analyze_reference

    started = time.perf_counter()
    timings: dict[str, float] = {}
    text = _validate(text, seed, sample_rate)
    lang = normalize_lang(lang)
    chosen = choose_engine(lang, engine)
    dictionary = _dictionary(g2p_dict)
    chunks = _chunks(text, lang, dictionary)
    warnings: list[str] = []
    if lang != "zh" and any(isinstance(c, TextChunk) and HAN.search(c.text) for c in chunks):
        warnings.append("text contains Chinese characters but lang is not zh: pass --lang zh")
    target = analyze_reference(voice, "--voice") if voice is not None else None
    style_profile = (analyze_reference(emotion_from, "--emotion-from")
                     if emotion_from is not None else None)
    if target is not None and target.duration_s > 10.5:
        warnings.append(f"voice reference is {target.duration_s:.1f} s; 3–10 s is enough")
    timings["reference_s"] = time.perf_counter() - started

    t = time.perf_counter()
    style = (style_profile or target).prosody if (style_profile or target) else None
    native_rate = style is not None and getattr(chosen, "native_rate", False)
    request = EngineRequest(chunks, lang, voice=engine_voice, seed=seed)
    out, speed = _synthesize_at_style_rate(chosen, request, style) if native_rate \
        else (chosen.synthesize(request), 1.0)
    warnings.extend(out.warnings)
    timings["engine_s"] = time.perf_counter() - t
    base_duration = len(out.samples) / out.sample_rate
    segments = out.segments
    phonemes = out.phonemes
    if segments is None:
        t = time.perf_counter()
        segments = _align(out.samples, out.sample_rate, chunks, lang)
        phonemes = phonemes or " ".join(s.phone for s in segments if s.phone != "SIL")
        timings["align_s"] = time.perf_counter() - t
        warnings.append(f"{chosen.name} reports no phone timings: force-aligned with pocketsphinx")

    samples, rate = out.samples, out.sample_rate
    adaptation = None
    if target is not None or style_profile is not None:
        t = time.perf_counter()
        adaptation = adapt(samples, rate, target,
                           style_profile.prosody if style_profile else None,
                           cache_key=f"{chosen.name}:{engine_voice or ''}",
                           source_syllables_per_s=syllable_rate(segments),
                           change_rate=not native_rate)
        samples = adaptation.samples
        scale = adaptation.time_scale
        if abs(scale - 1.0) > 1e-9:
            segments = [PhonemeSegment(s.phone, s.start_s * scale, s.end_s * scale, s.confidence)
                        for s in segments]
        timings["adapt_s"] = time.perf_counter() - t

    samples = resample(samples, rate, sample_rate)
    duration = len(samples) / sample_rate
    segments = cover_timeline(segments, duration)
    compute = time.perf_counter() - started
    report = {
        "engine": chosen.name,
        "engine_voice": engine_voice,
        "licence": chosen.licence,
        "lang": lang,
        "sample_rate": sample_rate,
        "seed": seed,
        "speaking_rate": round(speed * (1.0 / adaptation.time_scale if adaptation else 1.0), 3),
        "duration_s": round(duration, 4),
        "base_duration_s": round(base_duration, 4),
        "compute_s": round(compute, 4),
        "rtf": round(compute / max(duration, 1e-6), 4),
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "dictionary_hits": [c.grapheme for c in chunks if isinstance(c, PhoneChunk)],
        "similarity": adaptation.similarity if adaptation else None,
        "conversion": adaptation.plan.as_dict() if adaptation else None,
        "voice": target.summary() if target else None,
        "emotion_from": style_profile.summary() if style_profile else None,
        "warnings": warnings,
    }
    return Synthesis(samples.astype(np.float32), sample_rate, segments, phonemes, report)


_engine_rates: dict[tuple[str, str | None, str], float] = {}  # vowels/s at rate 1.0


def _synthesize_at_style_rate(engine, request: EngineRequest, style) -> tuple:
    """Synthesize at the style's speaking rate with the engine's own rate control (keeps
    its timings exact and its articulation natural, unlike stretching the audio). The
    engine voice's natural rate is learned from its first output and then reused."""
    from mouthpiece.speech.voice import acoustic_rate, speaking_rate_ratio

    key = (engine.name, request.voice, request.lang)
    known = _engine_rates.get(key)
    if known is None:
        out = engine.synthesize(request)
        measured = syllable_rate(out.segments)
        if measured is None:
            return out, 1.0
        _engine_rates[key] = measured
        speed = speaking_rate_ratio(style, acoustic_rate(measured))
        if speed == 1.0:
            return out, 1.0
    else:
        speed = speaking_rate_ratio(style, acoustic_rate(known))
    return engine.synthesize(dataclasses.replace(request, rate=speed)), speed


def syllable_rate(segments: list[PhonemeSegment], min_pause_s: float = 0.15) -> float | None:
    """Vowels per second of speech (pauses ≥ `min_pause_s` excluded), from known phones."""
    vowels = sum(1 for s in segments if s.phone in VOWELS)
    pauses = sum(s.duration_s for s in segments if s.phone == SILENCE and s.duration_s >= min_pause_s)
    speech_s = segments[-1].end_s - pauses if segments else 0.0
    return vowels / speech_s if vowels and speech_s > 0.2 else None


def _align(samples: np.ndarray, rate: int, chunks: tuple, lang: str) -> list[PhonemeSegment]:
    """Phone timings by pocketsphinx forced alignment (English engines without timings)."""
    from mouthpiece.speech import align_transcript

    if lang != "en":
        raise InputError(f"cannot time phones of language {lang!r} without engine timings: "
                         "use --engine espeak")
    audio = Audio(resample(samples, rate, SAMPLE_RATE), SAMPLE_RATE)
    transcript = " ".join(c.text for c in chunks if isinstance(c, TextChunk))
    return align_transcript(audio, transcript)
