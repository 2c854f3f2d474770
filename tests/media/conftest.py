"""Real media made on the spot: speech from espeak-ng, re-encoded with PyAV's own encoders."""

from __future__ import annotations

import shutil
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

SPEECH_TEXT = "Hello world, this is a test of the media stage."

# extension → (codec, container format, sample rate or None to keep the source's)
ENCODINGS = {
    "mp3": ("libmp3lame", "mp3", None),
    "m4a": ("aac", "mp4", None),
    "flac": ("flac", "flac", None),
    "ogg": ("libopus", "ogg", 48000),
    "webm": ("libopus", "webm", 48000),  # what browsers record (MediaRecorder)
}


def transcode(src: Path, dst: Path, codec: str, fmt: str, rate: int | None = None,
              channels: int | None = None) -> Path:
    """Re-encode the audio of `src` into `dst` with PyAV."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt) as out:
        source = inp.streams.audio[0]
        n_channels = channels or source.channels
        stream = out.add_stream(codec, rate=rate or source.sample_rate,
                                layout="mono" if n_channels == 1 else "stereo")
        resampler = av.AudioResampler(stream.codec_context.format, stream.codec_context.layout,
                                      stream.codec_context.sample_rate)
        written = 0  # samples; timestamps let the muxer record the encoder's priming delay

        def encode(frames):
            nonlocal written
            for converted in frames:
                converted.pts, converted.time_base = written, Fraction(1, stream.rate)
                written += converted.samples
                out.mux(stream.encode(converted))

        for frame in inp.decode(source):
            frame.pts = None
            encode(resampler.resample(frame))
        encode(resampler.resample(None))
        out.mux(stream.encode(None))
    return dst


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM WAV from float samples, (N,) mono or (N, C)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech_wav(media_dir) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make install adds it)")
    path = media_dir / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), SPEECH_TEXT], check=True)
    return path


@pytest.fixture(scope="session")
def speech_duration_s(speech_wav) -> float:
    with wave.open(str(speech_wav)) as w:
        return w.getnframes() / w.getframerate()


@pytest.fixture(scope="session")
def speech_files(media_dir, speech_wav) -> dict[str, Path]:
    """The same speech as wav, mp3, m4a, flac, ogg (opus) and webm (opus)."""
    files = {"wav": speech_wav}
    for ext, (codec, fmt, rate) in ENCODINGS.items():
        files[ext] = transcode(speech_wav, media_dir / f"speech.{ext}", codec, fmt, rate)
    return files


@pytest.fixture(scope="session")
def stereo_44k(media_dir, speech_wav) -> Path:
    return transcode(speech_wav, media_dir / "stereo44k.wav", "pcm_s16le", "wav", 44100, 2)
