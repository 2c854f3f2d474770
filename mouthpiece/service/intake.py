"""Uploaded inputs in two steps: a header check at the API, the full decode in the worker.

At submit (`check_image`, `check_audio`) the API reads only headers — format by content,
image size (pixel cap, decompression bombs), PNG chunk checksums, audio container, stream and
length — so wrong-type, damaged, oversized and bomb uploads are refused with 4xx before
anything is stored, at a fraction of a millisecond instead of a full decode. The upload is
then stored as it came, under a generated `*.upload` name that only the worker reads.

Before the engine sees a job's inputs, the worker's engine child (the process the per-job
timeout and cancel kill) decodes each upload with the media layer and re-encodes it
(`clean_inputs`: portrait → PNG, speech → 16 kHz mono WAV); the engine only ever reads those
clean files. An upload whose header passed but whose data does not decode, or whose speech
is longer than its header said, fails the job as `bad_input` (quota refunded).
"""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from mouthpiece.media import load_audio, load_image
from mouthpiece.media.audio import probe_audio
from mouthpiece.media.image import IMAGE_FORMATS
from mouthpiece.media.limits import MAX_IMAGE_PIXELS, MIN_AUDIO_S, MIN_IMAGE_SIDE
from mouthpiece.types import SAMPLE_RATE, InputError

DURATION_SLACK_S = 0.5  # header length vs. limit, as the media layer allows
# decoded speech may exceed the length checked at submit by this much (codec padding, estimates)
DECODED_SLACK_S, DECODED_SLACK_FRACTION = 0.5, 0.05
_IMAGE_FIX = "save it as PNG or JPEG"
_AUDIO_FIX = "export it as WAV, MP3, M4A, FLAC or OGG"


# ------------------------------------------------------------------------------ at the API

def check_image(handle: BinaryIO, name: str = "image") -> tuple[int, int]:
    """(width, height) of a PNG/JPEG/WEBP portrait from its header; InputError if it is not
    one, is damaged (PNG chunk checksums), over the pixel cap or too small. Decodes no pixels."""
    handle.seek(0)
    try:
        with Image.open(handle, formats=IMAGE_FORMATS) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InputError(f"image file '{name}' is {width}x{height} ({width * height / 1e6:.0f} Mpx), "
                                 f"over the {MAX_IMAGE_PIXELS / 1e6:g} Mpx limit; downscale it")
            if min(width, height) < MIN_IMAGE_SIDE:
                raise InputError(f"image file '{name}' is only {width}x{height} pixels; give a portrait "
                                 f"at least {MIN_IMAGE_SIDE} px on each side")
            img.verify()  # PNG: every chunk's CRC; nothing is decompressed
    except UnidentifiedImageError:
        raise InputError(f"image file '{name}' is not a PNG, JPEG or WEBP image; {_IMAGE_FIX}") from None
    except Image.DecompressionBombError:
        raise InputError(f"image file '{name}' is too large to decode safely; downscale it") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"image file '{name}' is damaged or truncated ({exc}); {_IMAGE_FIX} again") from None
    finally:
        handle.seek(0)
    return width, height


def check_audio(handle: BinaryIO, max_s: float, name: str = "audio") -> float:
    """Seconds of speech in an upload, from its headers; InputError if it is no supported audio,
    is damaged, shorter than MIN_AUDIO_S or longer than `max_s`.

    PCM WAV (what most recorders and TTS write) is read with the standard library: its header
    states the exact length, and its samples need no decoder. Anything else is probed by the
    media layer (PyAV: container and stream headers; packets only when no length is stated).
    """
    seconds = _pcm_wav_seconds(handle)
    if seconds is None:
        seconds = _probed_seconds(handle, name)
    if seconds < MIN_AUDIO_S:
        raise InputError(f"audio file '{name}' is only {seconds * 1000:.0f} ms long; give at least "
                         f"{MIN_AUDIO_S:g} s of speech")
    if seconds > max_s + DURATION_SLACK_S:
        raise InputError(f"audio file '{name}' is {seconds:.1f} s long, over the {max_s:g} s limit; "
                         "cut it into shorter parts")
    return seconds


def _pcm_wav_seconds(handle: BinaryIO) -> float | None:
    """Length of a plain PCM WAV from its header, capped by the bytes really present; None for
    anything else (other containers, float or compressed WAV, damage — the probe judges those)."""
    handle.seek(0)
    if handle.read(4) != b"RIFF":
        handle.seek(0)
        return None
    handle.seek(0)
    try:
        with wave.open(handle, "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            if not (1 <= channels <= 8 and 1 <= width <= 4 and 8000 <= rate <= 192_000):
                return None
            declared = wav.getnframes()
            block = channels * width
            present = 0
            while chunk := wav.readframes(65536):  # counts bytes in slices, never the whole file
                present += len(chunk) // block
    except (wave.Error, EOFError, ValueError, OSError):
        return None
    finally:
        handle.seek(0)
    frames = min(declared, present)
    return frames / rate if frames > 0 else None


def _probed_seconds(handle: BinaryIO, name: str) -> float:
    """The media layer's header probe (it needs a path: the upload is spooled to a temp file)."""
    with tempfile.TemporaryDirectory(prefix="mouthpiece-probe-") as tmp:
        path = Path(tmp) / name
        handle.seek(0)
        with open(path, "wb") as out:
            while chunk := handle.read(1 << 20):
                out.write(chunk)
        handle.seek(0)
        return float(probe_audio(path)["duration_s"])


# ------------------------------------------------------------------------------ in the worker

def clean_inputs(raw: dict[str, str], limits: dict, workdir: Path) -> dict[str, str]:
    """Decode each raw input (role → path) with the media layer and re-encode it under `workdir`
    (role → clean path). `limits`: `audio_max_s` / `voice_max_s` (the plan's, at submit) and
    `audio_s` (the length the header check found). InputError for anything unusable."""
    clean: dict[str, str] = {}
    for role, path in raw.items():
        if role == "image":
            clean[role] = str(clean_image(Path(path), workdir / "clean-image.png"))
            continue
        max_s = float(limits.get(f"{role}_max_s") or 1800.0)
        seconds, out = clean_audio(Path(path), workdir / f"clean-{role}.wav", max_s, role)
        checked = limits.get(f"{role}_s")
        if checked is not None and seconds > checked * (1 + DECODED_SLACK_FRACTION) + DECODED_SLACK_S:
            raise InputError(f"{role}: the file decodes to {seconds:.1f} s of sound but its header says "
                             f"{checked:.1f} s; export it again")
        clean[role] = str(out)
    return clean


def clean_image(raw: Path, out: Path) -> Path:
    """Portrait → a fresh PNG of its (H, W, 3) RGB pixels (header-checked before decoding)."""
    rgb = load_image(raw)
    Image.fromarray(rgb).save(out, format="PNG", compress_level=1)  # ~40 % faster than level 3
    return out


def clean_audio(raw: Path, out: Path, max_s: float, what: str) -> tuple[float, Path]:
    """Decode speech (length-checked while decoding) and write it as 16 kHz mono 16-bit WAV."""
    try:
        audio = load_audio(raw, max_duration_s=max_s)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    pcm = np.round(np.clip(audio.samples, -1.0, 1.0) * 32767).astype("<i2")  # (N,) at 16 kHz
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm.tobytes())
    return len(pcm) / SAMPLE_RATE, out

