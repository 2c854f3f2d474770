"""Reading videos back: exact probing (frames counted by demuxing) and streamed RGB frames."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from mouthpiece.media.files import VIDEO_CONTAINERS, open_container
from mouthpiece.types import InputError

_FIX = "give an MP4, MOV, MKV/WEBM or AVI video"


def probe_video(path: str | os.PathLike) -> dict:
    """Facts about a video file. `frames` is exact (video packets counted by demuxing);
    `fps` is the stream's nominal rate; durations in seconds. Audio keys are None without
    an audio track."""
    with _open_video(path) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        frames, audio_end = 0, 0.0
        try:
            for packet in container.demux(*(s for s in (video, audio) if s is not None)):
                if packet.size == 0:  # end-of-stream marker, not data
                    continue
                if packet.stream.type == "video":
                    frames += 1
                elif packet.pts is not None:
                    end = (packet.pts + packet.duration) * packet.time_base
                    audio_end = max(audio_end, float(end))
        except av.FFmpegError as exc:
            raise _damaged(Path(path), exc) from exc
        rate = video.average_rate or video.base_rate or video.guessed_rate
        fps = float(rate) if rate else 0.0
        return {
            "format": container.format.name,
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "fps": fps,
            "frames": frames,
            "duration_s": _stream_duration(video) or (frames / fps if fps else 0.0),
            "audio_codec": audio.codec_context.name if audio else None,
            "audio_sample_rate": int(audio.sample_rate) if audio else None,
            "audio_channels": int(audio.codec_context.channels) if audio else None,
            "audio_duration_s": (_stream_duration(audio) or audio_end) if audio else None,
        }


def read_video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Yield the frames of the first video stream as (H, W, 3) uint8 RGB, one at a time."""
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise _damaged(Path(path), exc) from exc


@contextlib.contextmanager
def _open_video(path: str | os.PathLike) -> Iterator[av.container.InputContainer]:
    path, container = open_container(path, "video", VIDEO_CONTAINERS, _FIX, _damaged)
    try:
        if not container.streams.video:
            raise InputError(f"video file '{path.name}' has no video track; {_FIX}")
        yield container
    finally:
        container.close()


def _stream_duration(stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _damaged(path: Path, exc: Exception) -> InputError:
    return InputError(
        f"video file '{path.name}' is damaged or not readable ({type(exc).__name__}: {exc}); {_FIX}"
    )
