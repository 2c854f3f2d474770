"""English voices from Debian packages: festival (`festvox-us-slt-hts`, exact phone timings
from its segment relation) and flite (`flite`: kal, awb, rms, slt; force-aligned timings).
Neither can take dictionary phonemes, so a request with dictionary hits is refused."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from mouthpiece.speech.g2p import PhoneChunk, TextChunk
from mouthpiece.speech.tts.engines.base import EngineOutput, EngineRequest
from mouthpiece.speech.tts.timeline import phone_string
from mouthpiece.types import InputError

FESTIVAL_RATE = 22_050  # Hz, the rate we ask festival's wrapper for


def _plain_text(request: EngineRequest, engine: str) -> str:
    if any(isinstance(c, PhoneChunk) for c in request.chunks):
        raise InputError(f"the {engine} engine cannot use G2P dictionary pronunciations: "
                         "use --engine piper or --engine espeak, or drop --g2p-dict")
    return "".join(c.text for c in request.chunks if isinstance(c, TextChunk)).strip()


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(samples (N,) float32 mono, rate) from a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    return (pcm.reshape(-1, channels).mean(axis=1) / 32768.0).astype(np.float32), rate


class FestivalEngine:
    """festival + the HTS "slt" US English female voice (Debian, free licence)."""

    name = "festival"
    licence = "festival X11-style; festvox-us-slt-hts CMU/free"
    native_rate = False

    def available(self) -> bool:
        return shutil.which("festival") is not None

    def supports(self, lang: str) -> bool:
        return lang == "en"

    def synthesize(self, request: EngineRequest) -> EngineOutput:
        from mouthpiece.speech.reference_tts import DEFAULT_VOICE, synthesize_with_timings

        text = _plain_text(request, self.name)
        with tempfile.TemporaryDirectory(prefix="mouthpiece-festival-") as tmp:
            path = Path(tmp) / "out.wav"
            segments = synthesize_with_timings(text, path, voice=request.voice or DEFAULT_VOICE,
                                               sample_rate=FESTIVAL_RATE)
            samples, rate = read_wav(path)
        return EngineOutput(samples, rate, segments, phone_string(segments))


class FliteEngine:
    """flite (CMU Flite) US/Scottish English voices; no phone timings of its own."""

    name = "flite"
    licence = "flite BSD-like (CMU)"
    native_rate = False
    voices = ("slt", "kal", "awb", "rms")

    def available(self) -> bool:
        return shutil.which("flite") is not None

    def supports(self, lang: str) -> bool:
        return lang == "en"

    def synthesize(self, request: EngineRequest) -> EngineOutput:
        text = _plain_text(request, self.name)
        voice = request.voice or "slt"
        if voice not in self.voices:
            raise InputError(f"flite voice {voice!r} is not one of {', '.join(self.voices)}")
        with tempfile.TemporaryDirectory(prefix="mouthpiece-flite-") as tmp:
            text_path, wav_path = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            text_path.write_text(text, encoding="utf-8")
            proc = subprocess.run(["flite", "-voice", voice, "-f", str(text_path), "-o",
                                   str(wav_path)], capture_output=True, text=True, timeout=300)
            if proc.returncode != 0 or not wav_path.exists():
                raise RuntimeError(f"flite failed: {proc.stderr.strip()[-300:]}")
            samples, rate = read_wav(wav_path)
        return EngineOutput(samples, rate, None, "")
