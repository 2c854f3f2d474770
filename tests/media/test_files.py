"""Content sniffing: the demuxer is chosen from the bytes, never from the file name."""

from __future__ import annotations

import pytest

from mouthpiece.media import load_audio
from mouthpiece.media.files import describe_content, sniff_container
from tests.media.conftest import transcode

EXPECTED = {"wav": "wav", "mp3": "mp3", "m4a": "mov", "flac": "flac", "ogg": "ogg",
            "webm": "matroska"}


@pytest.mark.parametrize("ext", sorted(EXPECTED))
def test_real_files(speech_files, ext):
    assert sniff_container(speech_files[ext]) == EXPECTED[ext]


def test_id3_tagged_mp3(speech_files, speech_duration_s, tmp_path):
    """An ID3v2 tag (here 300 bytes, with a fake PNG cover) in front of the MP3 frames."""
    body = b"TIT2" + (296 - 10).to_bytes(4, "big") + b"\x00\x00" + b"\x89PNG" + bytes(282)
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, (len(body) >> 7) & 0x7F, len(body) & 0x7F]) + body
    path = tmp_path / "tagged.bin"
    path.write_bytes(tag + speech_files["mp3"].read_bytes())
    assert sniff_container(path) == "mp3"
    assert abs(load_audio(path).duration_s - speech_duration_s) < 0.03


def test_adts_aac(speech_wav, speech_duration_s, tmp_path):
    path = transcode(speech_wav, tmp_path / "speech.aac", "aac", "adts")
    assert sniff_container(path) == "aac"
    assert abs(load_audio(path).duration_s - speech_duration_s) < 0.1  # ADTS has no edit list


@pytest.mark.parametrize("content, words", [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"%PDF-1.7", "PDF document"),
    ("héllo wörld, ".encode() * 10, "text file"),
    (bytes(range(256)), "binary"),
])
def test_describe_content(tmp_path, content, words):
    path = tmp_path / "thing"
    path.write_bytes(content)
    assert sniff_container(path) is None
    assert words in describe_content(path)
