"""Writing the result: H.264 yuv420p video at a constant frame rate plus the original audio
re-encoded as AAC, trimmed or padded to the video's duration, in a fast-start MP4.

Frames are converted to I420 in `write()` and encoded on a background thread fed by a small
bounded queue, so the caller's rendering overlaps with x264 (PyAV releases the GIL while
encoding and muxing); `write_deferred` leaves the conversion to that thread too while it keeps
up. The file is written under a temporary name in the target folder and renamed only once it
is complete."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import uuid
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from mouthpiece.media.audio import iter_resampled, open_audio
from mouthpiece.media.limits import MAX_FPS, MIN_FPS
from mouthpiece.types import InputError

log = logging.getLogger(__name__)

# Encoder settings, shared with the benchmark's libx264 baseline.
VIDEO_CODEC = "libx264"
VIDEO_PIX_FMT = "yuv420p"
DEFAULT_CRF = 16
DEFAULT_PRESET = "superfast"
# superfast turns x264's macroblock tree off; with it back on (10-frame lookahead) the still
# background is coded once and referenced cheaply. Measured on a 14 s 652×764 talking clip:
# at CRF 16 the same quality as CRF 20 without (SSIM to the frames 0.9856 vs 0.9858, PSNR
# 38.6 dB), 23 % smaller files (1.53 vs 1.98 MB), equal or lower encoding CPU (3.7–4.1 ms/frame).
# (Turning weightp, b-adapt and scene-cut detection off saved a few % of encoding CPU, but with
# them off the same frames at 162×190 (odd chroma width) came out different in a long test run:
# the same-seed test failed twice in a fresh clone. Left at superfast's own choices.)
X264_PARAMS = "rc-lookahead=10:mbtree=1"
# x264 encodes on the writer's own thread: the caller renders on the other core, and x264's
# frame threads only competed with it (render + encode at 512 on 2 cores: 5.5 ms per frame
# with one thread, 7.0 with x264's own choice, 8.4 with two).
VIDEO_THREADS = 1
# Frames are converted with OpenCV's RGB→I420 (BT.601 matrix, limited range) and tagged so;
# sRGB input shares BT.709 primaries and transfer.
VIDEO_COLOR_TAGS = {"colorspace": 6, "color_primaries": 1, "color_trc": 1, "color_range": 1}
MUX_OPTIONS = {"movflags": "+faststart"}

AUDIO_CODEC = "aac"
AAC_SAMPLE_RATES = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
)
AUDIO_FALLBACK_RATE = 48000  # Hz, when the source rate is not one AAC supports
AUDIO_BITRATE_PER_CHANNEL = 96_000  # bits/s
AUDIO_FRAME_SAMPLES = 1024  # AAC-LC frame size
# FFmpeg's constant-quantizer AAC coder: at these bitrates as good as the default two-loop
# search and a third of its CPU (13.9 s of 16 kHz speech: 0.05 vs 0.15 s, SNR to the source
# 44.8 vs 42.1 dB, 118 vs 104 kB).
AUDIO_OPTIONS = {"aac_coder": "fast"}

QUEUE_BYTES = 32 * 2**20  # bound on frames waiting for the encoder thread
# `write_deferred` converts on the caller's thread once this many frames wait for the encoder
# (it is the slower side then); below, the encoder thread converts, having time to spare.
DEFER_BELOW = 2
_STOP, _ABORT = object(), object()


def expected_frames(duration_s: float, fps: int) -> int:
    """Frame count of a video of `duration_s` seconds at `fps` (the one rounding rule)."""
    return int(round(duration_s * fps))


def i420_planes(yuv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views (Y (h, w), U (h/2, w/2), V (h/2, w/2)) of an (h * 3/2, w) I420 array, as
    `cv2.COLOR_RGB2YUV_I420` lays it out (planes packed one after the other)."""
    rows, w = yuv.shape
    h = rows * 2 // 3
    flat = yuv.reshape(-1)
    n_y, n_c = h * w, (h // 2) * (w // 2)
    return (flat[:n_y].reshape(h, w), flat[n_y:n_y + n_c].reshape(h // 2, w // 2),
            flat[n_y + n_c:n_y + 2 * n_c].reshape(h // 2, w // 2))


def x264_options(crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET) -> dict[str, str]:
    """The libx264 private options the writer uses."""
    return {"crf": str(crf), "preset": preset, "x264-params": X264_PARAMS}


class VideoWriter:
    """Stream RGB frames into an MP4 with the original audio.

    with VideoWriter("out.mp4", fps=25, size=(w, h), audio_source="speech.wav",
                     duration_s=3.2) as writer:
        for frame in frames:          # (h, w, 3) uint8 RGB, exactly round(3.2 * 25) of them
            writer.write(frame)

    `audio_source=None` writes a video without an audio track. Leaving the block by an
    exception, or with the wrong number of frames, removes everything written.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: int,
        size: tuple[int, int],
        audio_source: str | os.PathLike | None,
        duration_s: float,
        *,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
    ) -> None:
        if int(fps) != fps or not MIN_FPS <= fps <= MAX_FPS:
            raise ValueError(f"fps must be an integer in {MIN_FPS}..{MAX_FPS}, got {fps}")
        width, height = (int(v) for v in size)
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"size must be positive even (width, height), got {size}")
        if not duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {duration_s}")
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise InputError(f"output folder '{self.path.parent}' does not exist; create it first")
        self.fps = int(fps)
        self.size = (width, height)
        self.duration_s = float(duration_s)
        self.n_frames = expected_frames(self.duration_s, self.fps)
        if self.n_frames < 1:
            raise ValueError(f"duration_s={duration_s} at {fps} fps gives no frame")
        self.audio_source = None if audio_source is None else Path(audio_source)
        self.crf, self.preset = int(crf), preset
        self.frames_written = 0
        self._tmp_path = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.part")
        frame_bytes = width * height * 3 // 2  # I420
        self._queue: queue.Queue = queue.Queue(maxsize=max(2, min(8, QUEUE_BYTES // frame_bytes)))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._container = None
        self._video: av.VideoStream | None = None
        self._audio: _AudioTrack | None = None
        self._closed = False

    # -- public -----------------------------------------------------------------------
    def __enter__(self) -> "VideoWriter":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        """Create the temporary file, the streams and the encoder thread."""
        try:
            try:
                self._container = av.open(
                    str(self._tmp_path), "w", format="mp4", options=MUX_OPTIONS
                )
            except (av.FFmpegError, OSError) as exc:
                raise InputError(
                    f"cannot write in '{self.path.parent}' ({exc}); choose another output path"
                ) from exc
            self._video = self._add_video_stream(self._container)
            if self.audio_source is not None:
                self._audio = _AudioTrack(self._container, self.audio_source, self.duration_s)
        except BaseException:
            self._cleanup()
            raise
        self._thread = threading.Thread(target=self._encode_loop, name="mp4-encoder", daemon=True)
        self._thread.start()

    def write(self, frame: np.ndarray) -> None:
        """Queue one (h, w, 3) uint8 RGB frame; the array may be reused once this returns."""
        if self._thread is None or self._closed:
            raise RuntimeError("VideoWriter is not open")
        width, height = self.size
        expected = (height, width, 3)
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != expected:
            raise ValueError(
                f"frame must be a ({height}, {width}, 3) uint8 RGB array, got "
                f"{getattr(frame, 'shape', type(frame))} {getattr(frame, 'dtype', '')}"
            )
        index = self._count_frame()
        # Converting here doubles as the copy that frees the caller's buffer; (h * 3/2, w) I420
        yuv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420)
        self._put((index, yuv, None))

    def write_deferred(self, data, to_i420) -> None:
        """Queue one frame as `data` and a function making its (h * 3/2, w) uint8 I420 array
        (e.g. compositing and conversion); the encoder thread calls it while it keeps up,
        otherwise it is called here. `data` must not be changed after this call."""
        if self._thread is None or self._closed:
            raise RuntimeError("VideoWriter is not open")
        index = self._count_frame()
        if self._queue.qsize() >= DEFER_BELOW:
            self._put((index, self._checked_i420(to_i420(data)), None))
        else:
            self._put((index, data, to_i420))

    def _count_frame(self) -> int:
        """Index of the next frame (counted as written); raises past the expected count."""
        if self.frames_written >= self.n_frames:
            raise ValueError(
                f"too many frames: {self.n_frames} expected for {self.duration_s:g} s "
                f"at {self.fps} fps"
            )
        self.frames_written += 1
        return self.frames_written - 1

    def _checked_i420(self, yuv) -> np.ndarray:
        width, height = self.size
        if (not isinstance(yuv, np.ndarray) or yuv.dtype != np.uint8
                or yuv.shape != (height * 3 // 2, width)):
            raise ValueError(f"an I420 frame must be a ({height * 3 // 2}, {width}) uint8 array, "
                             f"got {getattr(yuv, 'shape', type(yuv))} {getattr(yuv, 'dtype', '')}")
        return yuv

    def close(self) -> None:
        """Finish the file and move it to `path`. Raises (leaving nothing) if the frame count
        is not exactly round(duration_s * fps) or encoding failed."""
        if self._closed:
            return
        if self.frames_written != self.n_frames:
            self.abort()
            raise ValueError(
                f"wrote {self.frames_written} frames but {self.duration_s:g} s at {self.fps} fps "
                f"needs exactly {self.n_frames}; nothing was saved"
            )
        if self._error is None:
            with contextlib.suppress(RuntimeError, InputError):  # the thread died meanwhile
                self._put(_STOP)
        self._thread.join()
        self._closed = True
        if self._error is not None:
            self._cleanup()
            self._raise_error()
        try:
            os.replace(self._tmp_path, self.path)
        except OSError as exc:
            self._tmp_path.unlink(missing_ok=True)
            raise InputError(
                f"cannot save '{self.path.name}' ({exc.strerror}); choose another output path"
            ) from exc

    def abort(self) -> None:
        """Stop encoding and remove the temporary file; `path` is left untouched."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._put(_ABORT)
            self._thread.join()
        self._cleanup()

    # -- internals --------------------------------------------------------------------
    def _add_video_stream(self, container) -> av.VideoStream:
        stream = container.add_stream(VIDEO_CODEC, rate=self.fps)
        stream.width, stream.height = self.size
        stream.pix_fmt = VIDEO_PIX_FMT
        ctx = stream.codec_context
        ctx.time_base = Fraction(1, self.fps)  # one tick per frame: exact timestamps
        ctx.thread_count = VIDEO_THREADS
        for name, value in VIDEO_COLOR_TAGS.items():
            setattr(ctx, name, value)
        stream.options = x264_options(self.crf, self.preset)
        return stream

    def _put(self, item) -> None:
        """Blocking put that gives up when the encoder thread has died."""
        while True:
            if self._error is not None and item is not _ABORT:
                self._raise_error()
            if not self._thread.is_alive():
                return
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise_error(self) -> None:
        """Re-raise the encoder thread's failure in the caller's thread."""
        if isinstance(self._error, InputError):  # e.g. the audio source is damaged mid-way
            raise self._error
        raise RuntimeError(f"encoding {self.path.name} failed: {self._error!r}") from self._error

    def _encode_loop(self) -> None:
        """Encoder thread: convert, encode and mux frames, interleaving audio as it goes."""
        time_base = Fraction(1, self.fps)
        try:
            while True:
                item = self._queue.get()
                if item is _ABORT:
                    return
                if item is _STOP:
                    break
                index, data, to_i420 = item
                frame = self._wrap(data if to_i420 is None else self._checked_i420(to_i420(data)))
                frame.pts, frame.time_base = index, time_base
                self._container.mux(self._video.encode(frame))
                if self._audio is not None:
                    self._audio.write_until((index + 1) / self.fps)  # seconds
            self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.finish()
            self._container.close()
            self._container = None
        except BaseException as exc:  # handed to the caller's thread by _put / close
            self._error = exc
            _drain(self._queue)

    def _wrap(self, yuv: np.ndarray) -> av.VideoFrame:
        """A VideoFrame over the (h * 3/2, w) I420 array. Wrapping it without a copy saves
        ~0.3–1 ms per 652×764 frame of GIL-holding copying that stalls the renderer's thread;
        but PyAV places the chroma planes at whole rows of the array, which OpenCV's packed
        layout only matches when the chroma height h/2 is even (h = 382 came out corrupt)."""
        if self.size[1] % 4 == 0:
            return av.VideoFrame.from_numpy_buffer(yuv, format=VIDEO_PIX_FMT)
        return av.VideoFrame.from_ndarray(yuv, format=VIDEO_PIX_FMT)

    def _cleanup(self) -> None:
        if self._audio is not None:
            self._audio.close_source()
        if self._container is not None:
            try:
                self._container.close()
            except (av.FFmpegError, OSError) as exc:
                log.debug("closing an aborted video: %s", exc)
            self._container = None
        self._tmp_path.unlink(missing_ok=True)


class _AudioTrack:
    """The source recording re-encoded to AAC, sample-exact to `duration_s`: cut where it
    is longer, followed by silence where it is shorter."""

    def __init__(self, container, source: Path, duration_s: float) -> None:
        self._source_cm = open_audio(source)
        in_container, in_stream = self._source_cm.__enter__()
        source_rate = int(in_stream.sample_rate)
        self.rate = source_rate if source_rate in AAC_SAMPLE_RATES else AUDIO_FALLBACK_RATE
        self.channels = 1 if in_stream.codec_context.channels == 1 else 2
        self.layout = "mono" if self.channels == 1 else "stereo"
        self.stream = container.add_stream(AUDIO_CODEC, rate=self.rate, layout=self.layout)
        self.stream.bit_rate = AUDIO_BITRATE_PER_CHANNEL * self.channels
        self.stream.options = AUDIO_OPTIONS
        self.stream.codec_context.time_base = Fraction(1, self.rate)
        self._container = container
        self.total = int(round(duration_s * self.rate))  # samples in the output track
        self.written = 0  # samples encoded so far
        self._source = iter_resampled(
            source, in_container, in_stream, "fltp", self.layout, self.rate
        )
        self._pending = np.zeros((self.channels, 0), np.float32)  # (C, n) decoded, not yet encoded
        self.source_samples = 0  # samples the source provided (before trim/pad)

    def write_until(self, t_s: float) -> None:
        """Encode whole AAC frames until the track reaches `t_s` seconds (or its end)."""
        target = min(self.total, int(math.ceil(t_s * self.rate)))
        while self.written < target:
            n = min(AUDIO_FRAME_SAMPLES, self.total - self.written)
            block = self._take(n)  # (C, n)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self.layout)
            frame.sample_rate = self.rate
            frame.pts, frame.time_base = self.written, Fraction(1, self.rate)
            self._container.mux(self.stream.encode(frame))
            self.written += n

    def finish(self) -> None:
        self.write_until(self.total / self.rate)
        self._container.mux(self.stream.encode(None))
        if self.source_samples < self.total:
            padding_s = (self.total - self.source_samples) / self.rate
            log.info("audio padded with %.3f s of silence", padding_s)
        self.close_source()

    def close_source(self) -> None:
        if self._source_cm is not None:
            self._source = None
            self._source_cm.__exit__(None, None, None)
            self._source_cm = None

    def _take(self, n: int) -> np.ndarray:
        """Next `n` samples per channel from the source, then silence."""
        while self._pending.shape[1] < n and self._source is not None:
            frame = next(self._source, None)
            if frame is None:
                self.close_source()
                break
            chunk = frame.to_ndarray().astype(np.float32, copy=False)  # (C, n) planar
            self.source_samples += chunk.shape[1]
            self._pending = np.concatenate([self._pending, chunk], axis=1)
        if self._pending.shape[1] < n:
            pad = np.zeros((self.channels, n - self._pending.shape[1]), np.float32)
            self._pending = np.concatenate([self._pending, pad], axis=1)
        block, self._pending = self._pending[:, :n], self._pending[:, n:]
        return np.ascontiguousarray(block)


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
