"""Reference speech with KNOWN phone timings (festival), for tests and the lip-sync benchmark.

festival's own segment relation is the ground truth: the HTS voice generates the waveform
from exactly these durations, so the phone boundaries are exact (to its 5 ms frame).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

from mouthpiece.speech.phones import SILENCE, cover_timeline, normalize_phone
from mouthpiece.types import SAMPLE_RATE, InputError, PhonemeSegment

log = logging.getLogger(__name__)

DEFAULT_VOICE = "cmu_us_slt_arctic_hts"
# festival "radio" phoneset names that are not plain ARPAbet.
_FESTIVAL_TO_ARPABET = {
    "pau": SILENCE, "h#": SILENCE, "brth": SILENCE, "ax": "AH", "axr": "ER", "dx": "T",
    "el": "L", "em": "M", "en": "N", "nx": "N", "hv": "HH",
}


def festival_phone(name: str) -> str:
    """ARPAbet (or SIL) for a festival radio-phoneset phone name."""
    return _FESTIVAL_TO_ARPABET.get(name.lower(), None) or normalize_phone(name)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        if width != 2:
            raise RuntimeError(f"festival wrote {8 * width}-bit audio; expected 16-bit")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    samples = pcm.reshape(-1, channels).mean(axis=1) / 32768.0  # (N,) float
    return samples.astype(np.float32), rate


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """16-bit mono WAV."""
    pcm = np.clip(np.round(np.asarray(samples) * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.tobytes())


def _parse_segs(text: str) -> list[tuple[float, str]]:
    """festival .segs (an EST label file): "end_time 100 phone" lines after a "#" header."""
    body = text.split("#", 1)[1] if "#" in text else text
    ends = []
    for line in body.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            ends.append((float(parts[0]), parts[2]))
    return ends


def synthesize_with_timings(
    text: str,
    out_wav: str | Path,
    voice: str = DEFAULT_VOICE,
    sample_rate: int = SAMPLE_RATE,
) -> list[PhonemeSegment]:
    """Speak `text` with festival into `out_wav` (16-bit mono at `sample_rate`) and return the
    exact phone timings festival used, covering the whole file (pauses are "SIL")."""
    if not text.strip():
        raise InputError("text to synthesize is empty")
    binary = shutil.which("festival")
    if binary is None:
        raise InputError("festival is not installed (apt-get install festival festvox-*)")
    if not voice.replace("_", "").isalnum():
        raise InputError(f"invalid festival voice name {voice!r}")
    with tempfile.TemporaryDirectory(prefix="mouthpiece-tts-") as tmp:
        raw_wav, segs_path = Path(tmp) / "raw.wav", Path(tmp) / "utt.segs"
        script = Path(tmp) / "synth.scm"
        script.write_text(
            f"(voice_{voice})\n"
            f"(set! utt (utt.synth (Utterance Text {_scheme_string(text)})))\n"
            f"(utt.save.wave utt {_scheme_string(str(raw_wav))} 'riff)\n"
            f"(utt.save.segs utt {_scheme_string(str(segs_path))})\n"
        )
        proc = subprocess.run(
            [binary, "-b", str(script)], capture_output=True, text=True, timeout=300
        )
        if not raw_wav.exists() or not segs_path.exists():
            detail = (proc.stderr or proc.stdout).strip()[-300:]
            if "unbound variable" in detail.lower() and f"voice_{voice}" in detail:
                raise InputError(f"festival voice {voice!r} is not installed")
            raise RuntimeError(f"festival failed: {detail}")
        samples, rate = _read_wav(raw_wav)
        ends = _parse_segs(segs_path.read_text())
    if rate != sample_rate:
        from scipy.signal import resample_poly  # scipy.signal takes ~1 s to import

        ratio = Fraction(sample_rate, rate)
        samples = resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)
    write_wav(out_wav, samples, sample_rate)
    segments, start = [], 0.0  # seconds
    for end, name in ends:
        segments.append(PhonemeSegment(festival_phone(name), start, end))
        start = end
    return cover_timeline(segments, len(samples) / sample_rate)


def synthesize_passage(
    sentences: list[str] | tuple[str, ...],
    out_wav: str | Path,
    pauses_s: float | tuple[float, ...] = 0.5,
    voice: str = DEFAULT_VOICE,
    sample_rate: int = SAMPLE_RATE,
) -> list[PhonemeSegment]:
    """Several sentences with real pauses around and between them (exact timings).

    `pauses_s`: one length for every pause, or len(sentences) + 1 lengths (before, between,
    after). festival alone pauses only briefly at full stops; measuring "mouth closed in
    silences" needs pauses like a speaker's.
    """
    pauses = (pauses_s,) * (len(sentences) + 1) if isinstance(pauses_s, (int, float)) else pauses_s
    if len(pauses) != len(sentences) + 1:
        raise ValueError("pauses_s needs one length per gap: len(sentences) + 1")
    chunks, segments, t = [], [], 0.0  # t: seconds
    with tempfile.TemporaryDirectory(prefix="mouthpiece-tts-") as tmp:
        for index, pause in enumerate(pauses):
            chunks.append(np.zeros(round(pause * sample_rate), np.float32))
            segments.append(PhonemeSegment(SILENCE, t, t + pause))
            t += pause
            if index == len(sentences):
                break
            part = Path(tmp) / f"part{index}.wav"
            for seg in synthesize_with_timings(sentences[index], part, voice, sample_rate):
                segments.append(PhonemeSegment(seg.phone, t + seg.start_s, t + seg.end_s))
            samples, _ = _read_wav(part)
            chunks.append(samples)
            t += len(samples) / sample_rate
    write_wav(out_wav, np.concatenate(chunks), sample_rate)
    return cover_timeline(segments, t)
