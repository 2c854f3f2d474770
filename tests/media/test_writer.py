"""VideoWriter: exact frame counts at every fps, AAC trimmed/padded to the duration and in
sync, faithful pixels, and nothing left behind when anything goes wrong."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import pytest
import skimage.data

from mouthpiece.media import (
    VideoWriter, expected_frames, load_audio, probe_video, read_video_frames,
)
from mouthpiece.media import writer as writer_module
from mouthpiece.types import InputError
from tests.media.conftest import write_wav

SIZE = (64, 48)  # (w, h): tiny frames keep the tests fast


def _frames(n: int, size=SIZE):
    width, height = size
    for i in range(n):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, :, 0] = (i * 37) % 256
        frame[:, : width // 2, 1] = 200
        yield frame


def _write(path, fps, audio, duration_s, size=SIZE):
    with VideoWriter(path, fps, size, audio, duration_s) as writer:
        for frame in _frames(writer.n_frames, size):
            writer.write(frame)
    return probe_video(path)


def _aac_frame_s(info) -> float:
    return 1024 / info["audio_sample_rate"]


@pytest.mark.parametrize("fps", [5, 24, 25, 30, 60])
def test_exact_frames_and_formats_at_each_fps(speech_wav, tmp_path, fps):
    duration = 1.37  # s; not a whole number of frames at most rates
    info = _write(tmp_path / "out.mp4", fps, speech_wav, duration)
    assert info["frames"] == expected_frames(duration, fps) == round(duration * fps)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == SIZE
    assert info["fps"] == pytest.approx(fps)
    assert info["duration_s"] == pytest.approx(info["frames"] / fps, abs=1e-3)  # ms edit lists
    assert info["audio_codec"] == "aac" and info["audio_sample_rate"] == 22050
    assert abs(info["audio_duration_s"] - duration) <= _aac_frame_s(info)
    assert list(tmp_path.iterdir()) == [tmp_path / "out.mp4"]  # no temporary left


@pytest.mark.parametrize("fps", [5, 60])
def test_audio_is_in_sync_with_the_original(speech_wav, tmp_path, fps):
    """The muxed AAC, decoded again, lines up with the source to the millisecond."""
    duration = 2.0
    _write(tmp_path / "out.mp4", fps, speech_wav, duration)
    source = load_audio(speech_wav).samples
    muxed = load_audio(tmp_path / "out.mp4").samples
    assert len(muxed) == pytest.approx(duration * 16000, abs=16)
    n = int(duration * 16000) - 400
    lags = range(-160, 161)
    score = [np.dot(source[200 + lag:n + lag], muxed[200:n]) for lag in lags]
    assert abs(lags[int(np.argmax(score))]) <= 16  # samples at 16 kHz = 1 ms


def test_audio_padded_with_silence(speech_wav, speech_duration_s, tmp_path):
    duration = speech_duration_s + 1.0
    info = _write(tmp_path / "padded.mp4", 25, speech_wav, duration)
    assert abs(info["audio_duration_s"] - duration) <= _aac_frame_s(info)
    muxed = load_audio(tmp_path / "padded.mp4").samples
    tail = muxed[int((speech_duration_s + 0.1) * 16000):]
    assert len(tail) > 0.8 * 16000 and np.abs(tail).max() < 1e-3
    assert np.abs(muxed[: int(speech_duration_s * 16000)]).max() > 0.1


def test_audio_trimmed(speech_wav, tmp_path):
    info = _write(tmp_path / "trimmed.mp4", 25, speech_wav, 1.0)
    assert info["frames"] == 25
    assert abs(info["audio_duration_s"] - 1.0) <= _aac_frame_s(info)


def test_stereo_44k_source_stays_stereo_44k(stereo_44k, tmp_path):
    info = _write(tmp_path / "stereo.mp4", 25, stereo_44k, 0.6)
    assert info["audio_channels"] == 2 and info["audio_sample_rate"] == 44100


def test_rate_aac_lacks_is_resampled_to_48k(tmp_path):
    t = np.arange(37_000) / 37_000
    source = write_wav(tmp_path / "odd.wav", 0.5 * np.sin(2 * np.pi * 300 * t), 37_000)
    info = _write(tmp_path / "odd.mp4", 25, source, 1.0)
    assert info["audio_sample_rate"] == 48000
    assert abs(info["audio_duration_s"] - 1.0) <= _aac_frame_s(info)


def test_without_audio_track(tmp_path):
    info = _write(tmp_path / "silent.mp4", 30, None, 0.5)
    assert info["frames"] == 15 and info["audio_codec"] is None


@pytest.mark.parametrize("width, height", [(128, 96), (130, 94), (126, 98)])
def test_pixels_survive_the_round_trip(tmp_path, width, height):
    """Any even size: odd chroma widths and heights (h/2 = 47, 49) once came out corrupt."""
    photo = cv2.GaussianBlur(cv2.resize(skimage.data.astronaut(), (width, height),
                                        interpolation=cv2.INTER_AREA), (3, 3), 0)
    flat = [np.full((height, width, 3), color, np.uint8)
            for color in [(255, 0, 0), (0, 255, 0), (0, 0, 255), (40, 90, 200), (250, 220, 180)]]
    frames = [photo, np.ascontiguousarray(photo[::-1])] + flat
    with VideoWriter(tmp_path / "rt.mp4", 7, (width, height), None, 1.0, crf=12) as writer:
        for frame in frames:
            writer.write(frame)
    decoded = list(read_video_frames(tmp_path / "rt.mp4"))
    assert len(decoded) == len(frames)
    for original, back in zip(frames, decoded):
        error = back.astype(int) - original
        assert np.abs(error).mean() < 4.0
        cast = np.abs(error.reshape(-1, 3).mean(axis=0)).max()
        assert cast < 3.0  # no colour cast: matrix and range tagged as converted


def test_writer_reuses_no_caller_buffer(tmp_path):
    """write() copies: the caller may render the next frame into the same array."""
    buffer = np.zeros((48, 64, 3), np.uint8)
    with VideoWriter(tmp_path / "reuse.mp4", 10, SIZE, None, 0.3) as writer:
        for value in (0, 128, 255):
            buffer[:] = value
            writer.write(buffer)
    means = [frame.mean() for frame in read_video_frames(tmp_path / "reuse.mp4")]
    assert means == pytest.approx([0, 128, 255], abs=3)


def test_exception_in_block_leaves_nothing(speech_wav, tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(KeyError):
        with VideoWriter(target, 25, SIZE, speech_wav, 2.0) as writer:
            for i, frame in enumerate(_frames(50)):
                if i == 20:
                    raise KeyError("renderer failed")
                writer.write(frame)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_a_previous_file(speech_wav, tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        with VideoWriter(target, 25, SIZE, speech_wav, 1.0) as writer:
            writer.write(next(_frames(1)))
            raise RuntimeError("stop")
    assert target.read_bytes() == b"previous result"
    assert list(tmp_path.iterdir()) == [target]


def test_too_few_frames_raises_and_leaves_nothing(speech_wav, tmp_path):
    with pytest.raises(ValueError, match="wrote 24 frames.*exactly 25"):
        with VideoWriter(tmp_path / "short.mp4", 25, SIZE, speech_wav, 1.0) as writer:
            for frame in _frames(24):
                writer.write(frame)
    assert list(tmp_path.iterdir()) == []


def test_too_many_frames_raises_and_leaves_nothing(speech_wav, tmp_path):
    with pytest.raises(ValueError, match="too many frames"):
        with VideoWriter(tmp_path / "long.mp4", 25, SIZE, speech_wav, 1.0) as writer:
            for frame in _frames(26):
                writer.write(frame)
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_shape_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\(48, 64, 3\) uint8"):
        with VideoWriter(tmp_path / "bad.mp4", 25, SIZE, None, 1.0) as writer:
            writer.write(np.zeros((48, 64, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_bad_audio_source_is_an_input_error(tmp_path):
    text = tmp_path / "speech.wav"
    text.write_text("not audio")
    with pytest.raises(InputError, match="speech.wav"):
        with VideoWriter(tmp_path / "out.mp4", 25, SIZE, text, 1.0):
            pass
    assert list(tmp_path.iterdir()) == [text]


@pytest.mark.parametrize("kwargs, match", [
    ({"fps": 4}, "fps"), ({"fps": 61}, "fps"), ({"fps": 24.5}, "fps"),
    ({"size": (63, 48)}, "even"), ({"duration_s": 0}, "duration_s"),
])
def test_invalid_settings(tmp_path, kwargs, match):
    settings = {"fps": 25, "size": SIZE, "duration_s": 1.0} | kwargs
    with pytest.raises(ValueError, match=match):
        VideoWriter(tmp_path / "x.mp4", audio_source=None, **settings)


def test_missing_output_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "out.mp4", 25, SIZE, None, 1.0)


def test_output_path_taken_by_a_folder_is_an_input_error(tmp_path):
    (tmp_path / "out.mp4").mkdir()
    with pytest.raises(InputError, match="cannot save 'out.mp4'"):
        _write(tmp_path / "out.mp4", 25, None, 0.2)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.parametrize("fps", [5, 24, 60])
def test_flash_and_click_stay_together(tmp_path, fps):
    """A white frame at 1.0 s and a click at 1.0 s in the source are both at 1.0 s when
    the MP4 is decoded (video timestamps after the edit list, audio after priming)."""
    import av

    rate = 48000
    click = np.zeros(2 * rate)
    click[rate:rate + 240] = 0.8  # 5 ms burst at 1.0 s
    source = write_wav(tmp_path / "click.wav", click, rate)
    with VideoWriter(tmp_path / "sync.mp4", fps, SIZE, source, 2.0) as writer:
        for i in range(writer.n_frames):
            writer.write(np.full((48, 64, 3), 255 if i == fps else 0, np.uint8))
    with av.open(str(tmp_path / "sync.mp4")) as container:
        flashes = [frame.time for frame in container.decode(video=0)
                   if frame.to_ndarray(format="gray").mean() > 128]
    assert flashes == [pytest.approx(1.0, abs=1e-3)]
    audio = load_audio(tmp_path / "sync.mp4").samples
    onset_s = np.argmax(np.abs(audio) > 0.3) / 16000
    assert onset_s == pytest.approx(1.0, abs=0.003)


@pytest.mark.parametrize("defer_below", [0, 2, 1000])  # caller converts / either / encoder
def test_deferred_frames_match_written_ones(tmp_path, monkeypatch, defer_below):
    """write_deferred (converted on whichever thread is free) encodes what write encodes, in
    order."""
    frames = list(_frames(30))
    with VideoWriter(tmp_path / "a.mp4", 10, SIZE, None, 3.0) as writer:
        for frame in frames:
            writer.write(frame)
    monkeypatch.setattr(writer_module, "DEFER_BELOW", defer_below)
    to_i420 = partial(cv2.cvtColor, code=cv2.COLOR_RGB2YUV_I420)
    with VideoWriter(tmp_path / "b.mp4", 10, SIZE, None, 3.0) as writer:
        for frame in frames:
            writer.write_deferred(frame.copy(), to_i420)
    a = np.stack(list(read_video_frames(tmp_path / "a.mp4")))
    b = np.stack(list(read_video_frames(tmp_path / "b.mp4")))
    assert np.array_equal(a, b)


def test_deferred_frame_of_the_wrong_shape_fails_and_leaves_nothing(tmp_path):
    with pytest.raises((ValueError, RuntimeError), match=r"I420 frame must be a \(72, 64\)"):
        with VideoWriter(tmp_path / "bad.mp4", 10, SIZE, None, 1.0) as writer:
            for frame in _frames(10):
                writer.write_deferred(frame, lambda rgb: np.zeros((10, 10), np.uint8))
    assert list(tmp_path.iterdir()) == []
