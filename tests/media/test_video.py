"""probe_video / read_video_frames on real files, and on files that are not videos."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mouthpiece.media import VideoWriter, probe_video, read_video_frames, sha256_file
from mouthpiece.types import InputError


@pytest.fixture(scope="module")
def small_video(tmp_path_factory, speech_wav):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with VideoWriter(path, 12, (96, 64), speech_wav, 1.25) as writer:
        for i in range(writer.n_frames):
            writer.write(np.full((64, 96, 3), i * 16, np.uint8))
    return path


def test_probe_counts_every_frame(small_video):
    info = probe_video(small_video)
    assert info["frames"] == 15 and info["fps"] == 12.0
    assert (info["width"], info["height"]) == (96, 64)
    assert info["audio_codec"] == "aac" and info["audio_channels"] == 1


def test_read_streams_rgb_frames_in_order(small_video):
    frames = read_video_frames(small_video)
    assert not isinstance(frames, list)
    means = [frame.mean() for frame in frames]
    assert len(means) == 15
    np.testing.assert_allclose(means, np.arange(15) * 16, atol=3)


def test_audio_file_is_not_a_video(speech_files):
    with pytest.raises(InputError, match="speech.m4a.*no video track"):
        probe_video(speech_files["m4a"])
    with pytest.raises(InputError, match="speech.wav.*not a supported video format"):
        next(read_video_frames(speech_files["wav"]))


def test_truncated_video(small_video, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = small_video.read_bytes()
    cut.write_bytes(data[: len(data) // 4])
    try:
        frames = list(read_video_frames(cut))
    except InputError as exc:
        assert "cut.mp4" in str(exc)
    else:
        assert len(frames) < 15


def test_text_file_is_not_a_video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_text("hello")
    with pytest.raises(InputError, match="clip.mp4.*text file"):
        probe_video(path)


def test_sha256_file(small_video):
    assert sha256_file(small_video) == hashlib.sha256(small_video.read_bytes()).hexdigest()
