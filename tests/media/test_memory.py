"""Streaming: memory does not grow with the length of the audio or of the video."""

from __future__ import annotations

import tracemalloc

import numpy as np

from mouthpiece.media import VideoWriter, load_audio
from tests.media.conftest import write_wav


def test_load_audio_peak_is_about_the_output_array(tmp_path):
    rate = 44100
    t = np.arange(30 * rate) / rate
    path = write_wav(tmp_path / "long.wav", 0.3 * np.sin(2 * np.pi * 180 * t), rate)
    del t
    tracemalloc.start()
    try:
        audio = load_audio(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(audio.duration_s - 30.0) < 0.01
    assert peak < 1.1 * audio.samples.nbytes + 2**20  # no second copy, no list of chunks


def _peak_while_writing(path, n_frames: int) -> int:
    frame = np.full((96, 128, 3), 90, np.uint8)
    tracemalloc.start()
    try:
        with VideoWriter(path, 25, (128, 96), None, n_frames / 25) as writer:
            for i in range(n_frames):
                frame[:, :, 0] = i % 256
                writer.write(frame)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_writer_memory_is_flat_in_the_number_of_frames(tmp_path):
    short = _peak_while_writing(tmp_path / "short.mp4", 100)
    long = _peak_while_writing(tmp_path / "long.mp4", 1000)
    frame_bytes = 128 * 96 * 3
    assert long < short + 4 * frame_bytes  # 10× the frames, no more than a few frames more
