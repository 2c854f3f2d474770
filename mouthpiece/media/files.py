"""Checks every input file passes before any decoder sees it, content sniffing, hashing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from mouthpiece.media.limits import MAX_FILE_BYTES
from mouthpiece.types import InputError

SNIFF_BYTES = 64  # bytes read to recognise a container by its magic numbers

# Containers accepted for speech input, as FFmpeg demuxer names. Forcing the demuxer chosen
# from the content keeps FFmpeg's many other demuxers (playlists, concat, image2, ...) out of
# reach of uploaded files.
AUDIO_CONTAINERS = ("wav", "aiff", "mp3", "aac", "flac", "ogg", "mov", "matroska")
VIDEO_CONTAINERS = ("mov", "matroska", "avi")


def check_input_file(path: str | os.PathLike, what: str) -> Path:
    """Return `path` as a Path if it is a readable, non-empty regular file within
    MAX_FILE_BYTES; otherwise raise InputError naming the file and the fix."""
    path = Path(path)
    name = path.name or str(path)
    if not path.exists():
        raise InputError(f"{what} file '{name}' does not exist; check the path")
    if path.is_dir():
        raise InputError(f"{what} path '{name}' is a directory; give a {what} file instead")
    if not path.is_file():
        raise InputError(f"{what} path '{name}' is not a regular file; give a {what} file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{what} file '{name}' is empty (0 bytes); give a non-empty {what} file")
    if size > MAX_FILE_BYTES:
        raise InputError(
            f"{what} file '{name}' is {size / 2**20:.0f} MB, over the "
            f"{MAX_FILE_BYTES / 2**20:.0f} MB limit; shorten or compress it"
        )
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} file '{name}' is not readable; check its permissions")
    return path


def open_container(path: str | os.PathLike, what: str, allowed, fix: str,
                   damaged: Callable[[Path, Exception], InputError]):
    """Check, sniff and open an input file whose container must be in `allowed`.

    `what` ("audio", "video") words the errors; `damaged` builds the error for a file PyAV
    cannot open. Returns (checked path, open PyAV input container)."""
    import av

    path = check_input_file(path, what)
    fmt = sniff_container(path)
    if fmt not in allowed:
        raise InputError(
            f"{what} file '{path.name}' is not a supported {what} format "
            f"(it looks like {describe_content(path)}); {fix}"
        )
    try:
        return path, av.open(str(path), format=fmt)
    except av.FFmpegError as exc:
        raise damaged(path, exc) from exc


def read_head(path: Path, n: int = SNIFF_BYTES) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def sniff_container(path: Path) -> str | None:
    """FFmpeg demuxer name for the container in `path`, judged from its first bytes
    (never from the file name), or None when it is no audio/video container we accept."""
    head = read_head(path, SNIFF_BYTES)
    if head[:3] == b"ID3":  # ID3v2 tag in front of MP3 (rarely FLAC/AAC) data
        flags, size = head[5], _syncsafe(head[6:10])
        offset = 10 + size + (10 if flags & 0x10 else 0)
        with open(path, "rb") as f:
            f.seek(offset)
            after = f.read(4)
        if after[:4] == b"fLaC":
            return "flac"
        return "aac" if _is_adts(after) else "mp3"
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "matroska"
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mov"
    if _is_adts(head):
        return "aac"
    if _is_mpeg_audio(head):
        return "mp3"
    return None


def describe_content(path: Path) -> str:
    """A few words on what a file that is not accepted media seems to be, for error messages."""
    head = read_head(path, SNIFF_BYTES)
    known = {
        b"\xff\xd8\xff": "a JPEG image",
        b"\x89PNG": "a PNG image",
        b"GIF8": "a GIF image",
        b"%PDF": "a PDF document",
        b"PK\x03\x04": "a ZIP archive",
        b"BM": "a BMP image",
    }
    for magic, what in known.items():
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WEBP image"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return "a HEIC/AVIF image (save it as JPEG)"
    if head[4:8] == b"ftyp":
        return "an MP4/MOV file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return "an unrecognised binary file"
    return "an unrecognised binary file" if b"\x00" in head else "a text file"


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _syncsafe(b: bytes) -> int:
    return (b[0] << 21) | (b[1] << 14) | (b[2] << 7) | b[3] if len(b) == 4 else 0


def _is_adts(b: bytes) -> bool:
    return len(b) >= 2 and b[0] == 0xFF and (b[1] & 0xF6) == 0xF0


def _is_mpeg_audio(b: bytes) -> bool:
    # 11-bit frame sync, a valid MPEG version and a non-reserved layer
    return (
        len(b) >= 2 and b[0] == 0xFF and (b[1] & 0xE0) == 0xE0
        and (b[1] >> 3) & 0x3 != 0x1 and (b[1] >> 1) & 0x3 != 0x0
    )
