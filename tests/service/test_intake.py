"""The API's header checks of uploads (intake.py) and the shared-file rate limiter of several API
processes: real files (espeak-ng speech, PyAV-written audio), real processes."""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from mouthpiece.media.audio import probe_audio
from mouthpiece.service.intake import check_audio, check_image
from mouthpiece.service.ratelimit import Limit, SharedFileRateLimiter
from mouthpiece.types import InputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "hello.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), "Hello there, my friend."], check=True)
    return path


def _flac_of(wav_path: Path, out: Path) -> Path:
    """The same speech re-encoded as FLAC by PyAV (a container the WAV fast path does not read)."""
    with wave.open(str(wav_path)) as wav:
        rate, pcm = wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    with av.open(str(out), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out


def test_wav_header_length_matches_the_media_probe(speech, tmp_path):
    with open(speech, "rb") as handle:
        fast = check_audio(handle, 60.0)
    assert fast == pytest.approx(probe_audio(speech)["duration_s"], abs=1e-3)
    flac = _flac_of(speech, tmp_path / "hello.flac")
    with open(flac, "rb") as handle:
        assert check_audio(handle, 60.0) == pytest.approx(fast, abs=0.05)  # through the PyAV probe


def test_a_wav_claiming_more_samples_than_it_holds_is_measured_by_its_bytes(speech):
    data = bytearray(speech.read_bytes())
    at = data.index(b"data") + 4
    data[at:at + 4] = (10 ** 9).to_bytes(4, "little")  # the data chunk claims ~9 h of samples
    seconds = check_audio(io.BytesIO(bytes(data)), 60.0)
    assert seconds == pytest.approx(probe_audio(speech)["duration_s"], abs=0.01)


@pytest.mark.parametrize("max_s, needle", [(0.5, "over the 0.5 s limit")])
def test_speech_over_the_plan_limit_is_refused_from_the_header(speech, max_s, needle):
    with open(speech, "rb") as handle, pytest.raises(InputError, match=needle):
        check_audio(handle, max_s)


def test_image_header_check_reads_size_without_decoding(portrait_path):
    with open(portrait_path, "rb") as handle:
        width, height = check_image(handle)
        assert handle.tell() == 0  # left at the start for storing
    assert (width, height) == (512, 600)
    with pytest.raises(InputError, match="not a PNG, JPEG or WEBP"):
        check_image(io.BytesIO(b"GIF89a" + b"\0" * 64))


def test_shared_file_buckets_are_one_bucket_across_processes(tmp_path):
    path, limit = tmp_path / "ratelimit.bin", Limit(rate=0.01, burst=4)
    first, second = SharedFileRateLimiter(path), SharedFileRateLimiter(path)
    assert [first.hit("ip:1", limit), second.hit("ip:1", limit)] == [0.0, 0.0]
    other = subprocess.run(  # a separate interpreter takes the third token
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from mouthpiece.service.ratelimit import Limit, SharedFileRateLimiter; "
         "print(SharedFileRateLimiter(Path(sys.argv[1])).hit('ip:1', Limit(0.01, 4)))", str(path)],
        cwd=ROOT, capture_output=True, text=True, check=True)
    assert float(other.stdout) == 0.0
    assert first.hit("ip:1", limit) == 0.0
    assert second.hit("ip:1", limit) > 1.0  # the bucket of 4 is empty for everyone
    assert first.hit("ip:2", limit) == 0.0  # buckets are per key
    first.close()
    second.close()
