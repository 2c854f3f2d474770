"""Reference clips: validation (length, silence, one speaker) and the voice profile that
conditions synthesis — speaker embedding, prosody statistics and long-term envelope."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mouthpiece.media import load_audio, sha256_file
from mouthpiece.speech.voice.analysis import (
    FRAME_S, Prosody, frame_levels_db, mean_log_aperiodicity, mean_log_envelope, mel_cepstra,
    prosody_of, speech_mask, voiced_speech, world_analyze,
)
from mouthpiece.speech.voice.embedding import cosine, embed_many
from mouthpiece.types import SAMPLE_RATE, InputError

log = logging.getLogger(__name__)

MIN_REFERENCE_S = 3.0  # seconds of audio
MAX_REFERENCE_S = 60.0
MIN_SPEECH_S = 1.5  # seconds of detected speech inside the clip
# Cosine between resemblyzer embeddings of the two halves of the speech below which a clip
# is taken to hold two voices. Measured on synthetic and real voices: one speaker's halves
# score 0.80–0.97, two different speakers' halves 0.45–0.75.
SAME_SPEAKER_MIN_COSINE = 0.75
ENVELOPE_HZ = np.linspace(0.0, 8000.0, 257)  # common frequency grid of envelopes, Hz


@dataclass(frozen=True)
class VoiceProfile:
    """What a reference clip says about its speaker. `embedding`: (256,) d-vector;
    `envelope`: (257,) mean log power envelope on `ENVELOPE_HZ`; `digest`: sha256 of the file."""

    digest: str
    duration_s: float
    speech_s: float
    embedding: np.ndarray
    prosody: Prosody
    envelope: np.ndarray
    halves_cosine: float
    unvoiced_envelope: np.ndarray  # (257,) like `envelope`, over unvoiced speech
    aperiodicity: np.ndarray  # (257,) mean log aperiodicity of voiced speech on ENVELOPE_HZ
    voiced_cepstra: np.ndarray  # (M, 64) mel cepstra of the voiced speech frames

    def summary(self) -> dict:
        return {"sha256": self.digest, "duration_s": round(self.duration_s, 2),
                "speech_s": round(self.speech_s, 2),
                "halves_cosine": round(self.halves_cosine, 3), **self.prosody.as_dict()}


def envelope_on_grid(log_env: np.ndarray, rate: int) -> np.ndarray:
    """Resample a (F,) envelope of a `rate` Hz signal onto ENVELOPE_HZ (held past Nyquist)."""
    freqs = np.linspace(0.0, rate / 2, len(log_env))
    return np.interp(ENVELOPE_HZ, freqs, log_env)


def analyze_reference(path: str | Path, role: str = "--voice") -> VoiceProfile:
    """Validate and profile a reference clip (3–60 s of one person's speech)."""
    return _analyze(str(path), sha256_file(path), role)


@functools.lru_cache(maxsize=32)
def _analyze(path: str, digest: str, role: str) -> VoiceProfile:
    name = Path(path).name
    audio = load_audio(path, max_duration_s=MAX_REFERENCE_S)  # InputError for non-audio
    samples = audio.samples  # (N,) at 16 kHz
    if audio.duration_s < MIN_REFERENCE_S:
        raise InputError(f"{role} {name} is {audio.duration_s:.1f} s long: give a clip of "
                         f"{MIN_REFERENCE_S:g}–10 s of one person speaking")
    levels = frame_levels_db(samples, SAMPLE_RATE)
    mask = speech_mask(levels)
    speech_s = float(mask.sum()) * FRAME_S
    if np.percentile(levels, 95) < -45.0 or speech_s < MIN_SPEECH_S:
        raise InputError(f"{role} {name} is (nearly) silent ({speech_s:.1f} s of speech "
                         "found): give a clip of one person speaking clearly")
    world = world_analyze(samples, SAMPLE_RATE)
    try:
        prosody = prosody_of(world, levels)
    except ValueError:
        raise InputError(f"{role} {name} has too little voiced speech to learn a voice from: "
                         "give a clip of one person speaking") from None
    hop = int(SAMPLE_RATE * FRAME_S)
    speech = _speech_samples(samples, mask, hop)
    half = len(speech) // 2
    first, second, whole = embed_many([speech[:half], speech[half:], speech])
    halves = cosine(first, second)
    if halves < SAME_SPEAKER_MIN_COSINE:
        raise InputError(f"{role} {name} seems to hold more than one voice (its halves match "
                         f"only {halves:.2f}): give a clip of a single speaker")
    envelope = envelope_on_grid(mean_log_envelope(world, levels), SAMPLE_RATE)
    return VoiceProfile(
        digest, audio.duration_s, speech_s, whole, prosody, envelope, halves,
        envelope_on_grid(mean_log_envelope(world, levels, voiced=False), SAMPLE_RATE),
        envelope_on_grid(mean_log_aperiodicity(world, levels), SAMPLE_RATE),
        mel_cepstra(world.sp[voiced_speech(world, levels)], SAMPLE_RATE))


def _speech_samples(samples: np.ndarray, mask: np.ndarray, hop: int) -> np.ndarray:
    """The samples of speech frames (pauses dropped, 50 ms kept around each run)."""
    dilated = np.convolve(mask.astype(float), np.ones(21), mode="same") > 0  # ±50 ms
    keep = np.repeat(dilated, hop)[: len(samples)]
    keep = np.pad(keep, (0, len(samples) - len(keep)))
    return samples[keep]
