"""Reading speech input: content-sniffed containers decoded by PyAV, streamed into
16 kHz mono float32 (`Audio`), plus a cheap probe and a resampling frame iterator that
the video writer uses to re-encode the original recording."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer

from mouthpiece.media.files import AUDIO_CONTAINERS, open_container
from mouthpiece.media.limits import MAX_AUDIO_S, MIN_AUDIO_S
from mouthpiece.types import SAMPLE_RATE, Audio, InputError

log = logging.getLogger(__name__)

# Containers whose header states the exact length, so an over-long file is refused
# before decoding. MP3/OGG/Matroska/ADTS durations can be bitrate estimates.
_EXACT_DURATION_CONTAINERS = ("wav", "aiff", "flac", "mov")
_MAX_CODEC_PADDING_S = 0.1  # seconds; decoded audio past the stated end that is codec padding
# Undecodable packets tolerated (their time becomes silence) before a file is refused.
MAX_BAD_PACKETS = 3
MAX_BAD_PACKET_FRACTION = 0.02
_GAP_S = 0.002  # seconds; a larger jump between decoded frames is lost data, filled with silence
_FIX = "export it as WAV, MP3, M4A, FLAC or OGG"


@contextlib.contextmanager
def open_audio(path: str | os.PathLike) -> Iterator[tuple[InputContainer, av.AudioStream]]:
    """Open the first audio stream of a speech file; every problem becomes an InputError."""
    path, container = open_container(path, "audio", AUDIO_CONTAINERS, _FIX, _damaged)
    try:
        if not container.streams.audio:
            kinds = "video only" if container.streams.video else "no audio"
            raise InputError(
                f"audio file '{path.name}' has no audio track ({kinds}); "
                f"give a file with sound, or {_FIX}"
            )
        stream = container.streams.audio[0]
        if stream.codec_context is None or not stream.sample_rate:
            raise InputError(f"audio file '{path.name}' has an unreadable audio track; {_FIX}")
        yield container, stream
    finally:
        container.close()


def probe_audio(path: str | os.PathLike) -> dict:
    """Format facts from the headers (demuxing packets only when the header has no length):
    `format`, `codec`, `sample_rate` (Hz), `channels`, `duration_s` (seconds)."""
    with open_audio(path) as (container, stream):
        duration = _declared_duration(container, stream)
        if duration is None:
            duration = _demuxed_duration(Path(path), container, stream)
        return {
            "format": container.format.name,
            "codec": stream.codec_context.name,
            "sample_rate": int(stream.sample_rate),
            "channels": int(stream.codec_context.channels),
            "duration_s": float(duration),
        }


def load_audio(path: str | os.PathLike, max_duration_s: float = MAX_AUDIO_S) -> Audio:
    """Decode a speech file (WAV/MP3/M4A/FLAC/OGG, recognised by content) to 16 kHz mono
    float32. Memory stays ~ the output array: frames are resampled as they are decoded."""
    path = Path(path)
    max_samples = int(round(max_duration_s * SAMPLE_RATE))
    with open_audio(path) as (container, stream):
        declared = _declared_duration(container, stream)
        fmt = container.format.name.split(",")[0]
        exact = declared is not None and fmt in _EXACT_DURATION_CONTAINERS
        if exact and declared > max_duration_s + 0.5:
            raise _too_long(path, declared, max_duration_s)
        # (N,) float32 at 16 kHz, grown only when the declared length was an underestimate
        capacity = int(math.ceil((declared or 60.0) * SAMPLE_RATE)) + SAMPLE_RATE
        buffer = np.empty(min(capacity, max_samples + SAMPLE_RATE), np.float32)
        n = 0
        for frame in iter_resampled(path, container, stream, "flt", "mono", SAMPLE_RATE):
            chunk = frame.to_ndarray().reshape(-1)  # (n,) mono, packed float
            # float/PCM inputs may hold out-of-range values; the Audio contract is [-1, 1]
            chunk = np.clip(np.nan_to_num(chunk, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
            if n + len(chunk) > max_samples + SAMPLE_RATE // 2:  # stop early, length unknown
                raise _too_long(path, None, max_duration_s)
            if n + len(chunk) > len(buffer):
                buffer = _grown(buffer, n, n + len(chunk))
            buffer[n:n + len(chunk)] = chunk
            n += len(chunk)
    if exact and 0 < n - declared * SAMPLE_RATE <= _MAX_CODEC_PADDING_S * SAMPLE_RATE:
        n = int(round(declared * SAMPLE_RATE))  # drop codec padding past the stated end (AAC)
    if n == 0:
        raise InputError(f"audio file '{path.name}' contains no sound samples (0 s); {_FIX}")
    if n < MIN_AUDIO_S * SAMPLE_RATE:
        raise InputError(
            f"audio file '{path.name}' is only {n / SAMPLE_RATE * 1000:.0f} ms long; "
            f"give at least {MIN_AUDIO_S:g} s of speech"
        )
    if n > max_samples + SAMPLE_RATE // 100:  # allow 10 ms of codec rounding
        raise _too_long(path, n / SAMPLE_RATE, max_duration_s)
    buffer.resize(n, refcheck=False)  # shrink in place (realloc), no second copy
    return Audio(samples=buffer, sample_rate=SAMPLE_RATE)


def iter_resampled(
    path: Path,
    container: InputContainer,
    stream: av.AudioStream,
    sample_format: str,
    layout: str,
    rate: int,
) -> Iterator[av.AudioFrame]:
    """Decode `stream` and yield its frames converted to (format, layout, rate).

    Lost data (a damaged stretch: packets the decoder rejects, or a gap in the timestamps)
    becomes silence of the same length, so later speech keeps its time; more than a few
    undecodable packets, or a demuxing error, raises InputError. A mid-stream change of
    input format (chained OGG) gets a fresh resampler. The analysis audio (`load_audio`)
    and the muxed track (`VideoWriter`) both come from here, so they always agree."""
    resampler, key, last = None, None, None
    good = bad = 0
    next_s = None  # seconds; where the next decoded frame should start
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
                good += 1
            except av.InvalidDataError as exc:
                bad += 1
                log.warning("%s: undecodable packet at %s replaced by silence (%s)", path.name,
                            _packet_time(packet), exc)
                frames = []
            for frame in frames:
                start_s = _frame_time(frame)
                if next_s is not None and start_s is not None and start_s - next_s > _GAP_S:
                    # data lost before this frame (dropped or undecodable): keep the timeline
                    silence = _silence_like(last, int(round((start_s - next_s) * last.sample_rate)))
                    yield from resampler.resample(silence)
                if start_s is None:  # unstamped frames continue where the last one ended
                    start_s = next_s
                if start_s is not None:
                    next_s = start_s + frame.samples / frame.sample_rate
                frame_key = (frame.format.name, frame.layout.name, frame.sample_rate)
                if frame_key != key:
                    if resampler is not None:
                        yield from resampler.resample(None)
                    resampler = av.AudioResampler(sample_format, layout, rate)
                    key = frame_key
                last = frame
                frame.pts = None  # timing is carried by sample counts, not source stamps
                yield from resampler.resample(frame)
        if resampler is not None:
            yield from resampler.resample(None)
    except av.FFmpegError as exc:
        raise _damaged(path, exc) from exc
    if bad > max(MAX_BAD_PACKETS, MAX_BAD_PACKET_FRACTION * (good + bad)):
        raise InputError(
            f"audio file '{path.name}' is damaged: {bad} of {good + bad} audio packets cannot "
            f"be decoded; {_FIX}"
        )


def _silence_like(template: av.AudioFrame, n: int) -> av.AudioFrame:
    """A silent frame of `n` samples in `template`'s format, layout and rate."""
    channels = len(template.layout.channels)
    shape = (channels, n) if template.format.is_planar else (1, n * channels)
    dtype = template.to_ndarray().dtype
    fill = 128 if template.format.name.startswith("u8") else 0  # unsigned 8-bit PCM centres on 128
    frame = av.AudioFrame.from_ndarray(np.full(shape, fill, dtype), format=template.format.name,
                                       layout=template.layout)
    frame.sample_rate = template.sample_rate
    return frame


def _frame_time(frame: av.AudioFrame) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def _packet_time(packet: av.Packet) -> str:
    if packet.pts is None or packet.time_base is None:
        return "an unknown time"
    return f"{float(packet.pts * packet.time_base):.2f} s"


def _declared_duration(container: InputContainer, stream: av.AudioStream) -> float | None:
    """Seconds from the stream or container header, or None when neither states it."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def _demuxed_duration(path: Path, container: InputContainer, stream: av.AudioStream) -> float:
    """Seconds covered by the packets of `stream` (no decoding)."""
    end = 0.0
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.FFmpegError as exc:
        raise _damaged(path, exc) from exc
    return end


def _grown(buffer: np.ndarray, used: int, needed: int) -> np.ndarray:
    bigger = np.empty(max(needed, int(len(buffer) * 1.5)), buffer.dtype)
    bigger[:used] = buffer[:used]
    return bigger


def _damaged(path: Path, exc: Exception) -> InputError:
    return InputError(
        f"audio file '{path.name}' is damaged or not readable audio "
        f"({type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}); {_FIX}"
    )


def _too_long(path: Path, duration_s: float | None, max_s: float) -> InputError:
    length = "longer than" if duration_s is None else f"{duration_s:.1f} s long, over"
    return InputError(
        f"audio file '{path.name}' is {length} the {max_s:g} s limit; cut it into shorter parts"
    )


def resample(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """(N,) float32 samples at `rate` → float32 at `new_rate` (polyphase, exact ratio)."""
    if rate == new_rate:
        return np.asarray(samples, np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(new_rate, rate)
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)
