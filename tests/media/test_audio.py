"""load_audio / probe_audio on real speech in every accepted format, and on bad input."""

from __future__ import annotations

import shutil

import matplotlib.cbook
import numpy as np
import pytest

from mouthpiece.media import VideoWriter, load_audio, probe_audio
from mouthpiece.types import SAMPLE_RATE, InputError
from tests.media.conftest import write_wav

FORMATS = ["wav", "mp3", "m4a", "flac", "ogg", "webm"]


@pytest.mark.parametrize("ext", FORMATS)
def test_each_format_loads_at_16k_mono_with_the_right_duration(
    speech_files, speech_duration_s, ext
):
    audio = load_audio(speech_files[ext])
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(audio.duration_s - speech_duration_s) < 0.020
    assert 0.1 < np.abs(audio.samples).max() <= 1.0  # real speech, not silence
    info = probe_audio(speech_files[ext])
    assert abs(info["duration_s"] - speech_duration_s) < 0.020
    assert info["channels"] == 1 and info["sample_rate"] in (22050, 48000)


@pytest.mark.parametrize("ext", ["mp3", "m4a", "ogg"])
def test_lossy_formats_keep_the_waveform_in_time(speech_files, ext):
    """A lossy decode lines up with the WAV to within a millisecond (no codec delay left)."""
    ref = load_audio(speech_files["wav"]).samples
    got = load_audio(speech_files[ext]).samples
    n = min(len(ref), len(got))
    lags = range(-40, 41)
    score = [np.dot(ref[100 + lag:n - 100 + lag], got[100:n - 100]) for lag in lags]
    assert abs(lags[int(np.argmax(score))]) <= 16  # samples at 16 kHz = 1 ms


def test_content_decides_not_the_extension(speech_files, tmp_path):
    disguised = tmp_path / "really_a_wav.mp3"
    shutil.copy(speech_files["wav"], disguised)
    assert probe_audio(disguised)["format"] == "wav"
    reference = load_audio(speech_files["wav"]).samples
    np.testing.assert_array_equal(load_audio(disguised).samples, reference)


def test_stereo_44k_is_downmixed(stereo_44k, speech_files):
    assert probe_audio(stereo_44k)["channels"] == 2
    mono = load_audio(stereo_44k).samples
    ref = load_audio(speech_files["wav"]).samples
    n = min(len(mono), len(ref))
    assert abs(len(mono) - len(ref)) <= 2
    assert np.corrcoef(mono[:n], ref[:n])[0, 1] > 0.99


def test_float_wav_out_of_range_is_clipped(tmp_path):
    import av

    path = tmp_path / "loud.wav"
    t = np.arange(16000) / 16000
    samples = (3.0 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None]  # (1, N), way over 1
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_f32le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = 16000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    audio = load_audio(path)
    assert audio.samples.max() == 1.0 and audio.samples.min() == -1.0


def _expect_input_error(path, *words, **kwargs):
    with pytest.raises(InputError) as info:
        load_audio(path, **kwargs)
    message = str(info.value)
    assert path.name in message
    for word in words:
        assert word in message, message
    return message


def test_missing_file(tmp_path):
    _expect_input_error(tmp_path / "nope.wav", "does not exist")


def test_directory(tmp_path):
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    _expect_input_error(folder, "directory")


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.touch()
    _expect_input_error(empty, "empty")


def test_random_bytes(tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    _expect_input_error(junk, "not a supported audio format")


def test_wav_header_then_garbage(tmp_path, speech_files):
    broken = tmp_path / "broken.wav"
    head = speech_files["wav"].read_bytes()[:12]  # RIFF....WAVE and nothing valid after
    broken.write_bytes(head + b"\x13\x37" * 500)
    _expect_input_error(broken)


def test_jpeg_is_not_audio(tmp_path):
    jpeg = tmp_path / "photo.wav"
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), jpeg)
    _expect_input_error(jpeg, "JPEG image")


def test_text_is_not_audio(tmp_path):
    text = tmp_path / "notes.mp3"
    text.write_text("#EXTM3U\n#EXT-X-VERSION:3\nfile:///etc/passwd\n")  # a playlist, never opened
    _expect_input_error(text, "text file")


def test_video_without_audio(tmp_path):
    video = tmp_path / "silent.mp4"
    with VideoWriter(video, 10, (64, 64), None, 0.5) as writer:
        for _ in range(writer.n_frames):
            writer.write(np.zeros((64, 64, 3), np.uint8))
    _expect_input_error(video, "no audio track", "video only")


def test_zero_second_wav(tmp_path):
    _expect_input_error(write_wav(tmp_path / "zero.wav", np.zeros(0), 16000), "0 s")


def test_too_short(tmp_path):
    _expect_input_error(write_wav(tmp_path / "blip.wav", np.zeros(800), 16000), "50 ms")


def test_too_long_from_the_header(speech_files):
    _expect_input_error(speech_files["wav"], "over the 1 s limit", max_duration_s=1.0)


@pytest.mark.parametrize("ext", ["mp3", "ogg"])
def test_too_long_while_decoding(speech_files, ext):
    """Formats whose header length may be an estimate are cut off during decoding."""
    _expect_input_error(speech_files[ext], "longer than the 1.5 s limit", max_duration_s=1.5)


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("damage", ["truncate", "zero_block", "scribble"])
def test_damaged_files_load_or_raise_input_error(speech_files, tmp_path, ext, damage):
    """Whatever FFmpeg makes of a damaged file, no FFmpeg exception reaches the caller."""
    data = bytearray(speech_files[ext].read_bytes())
    middle = len(data) // 2
    if damage == "truncate":
        data = data[:middle]
    elif damage == "zero_block":
        data[middle:middle + 2000] = bytes(2000)
    else:
        rng = np.random.default_rng(len(data))
        body = np.frombuffer(bytes(data[64:]), np.uint8)
        data[64:] = (body ^ (rng.integers(0, 2, len(body)) * 0x5A).astype(np.uint8)).tobytes()
    path = tmp_path / f"damaged.{ext}"
    path.write_bytes(bytes(data))
    try:
        audio = load_audio(path)
    except InputError as exc:
        assert path.name in str(exc)
    else:
        assert audio.samples.dtype == np.float32 and np.isfinite(audio.samples).all()
