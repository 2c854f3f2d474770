"""Media I/O for mouthpiece: validated reading of speech and portraits, MP4 writing and
probing. All input limits live in `mouthpiece.media.limits`."""

from mouthpiece.media.audio import load_audio, probe_audio, resample
from mouthpiece.media.files import sha256_file
from mouthpiece.media.image import load_image
from mouthpiece.media.limits import (
    MAX_AUDIO_S, MAX_FILE_BYTES, MAX_FPS, MAX_IMAGE_PIXELS, MIN_AUDIO_S, MIN_FPS, MIN_IMAGE_SIDE,
)
from mouthpiece.media.video import probe_video, read_video_frames
from mouthpiece.media.writer import (
    DEFAULT_CRF, DEFAULT_PRESET, VideoWriter, expected_frames, x264_options,
)

__all__ = [
    "DEFAULT_CRF", "DEFAULT_PRESET", "MAX_AUDIO_S", "MAX_FILE_BYTES", "MAX_FPS",
    "MAX_IMAGE_PIXELS", "MIN_AUDIO_S", "MIN_FPS", "MIN_IMAGE_SIDE", "VideoWriter",
    "expected_frames", "load_audio", "load_image", "probe_audio", "probe_video",
    "read_video_frames", "resample", "sha256_file", "x264_options",
]
