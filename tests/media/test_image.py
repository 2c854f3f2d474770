"""load_image on real photos in each format, EXIF rotation, transparency, and bad input."""

from __future__ import annotations

import struct
import time
import zlib

import matplotlib.cbook
import numpy as np
import pytest
from PIL import Image

from mouthpiece.media import load_image
from mouthpiece.types import InputError

GRACE_HOPPER = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def test_real_jpeg():
    image = load_image(GRACE_HOPPER)
    assert image.shape == (600, 512, 3) and image.dtype == np.uint8
    assert image.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("fmt, ext, tolerance", [("PNG", "png", 0), ("JPEG", "jpg", 8),
                                                 ("WEBP", "webp", 8)])
def test_formats_round_trip(astronaut_photo, tmp_path, fmt, ext, tolerance):
    path = tmp_path / f"astronaut_photo.{ext}"
    Image.fromarray(astronaut_photo).save(path, fmt, quality=95)
    image = load_image(path)
    assert image.shape == astronaut_photo.shape and image.dtype == np.uint8
    assert np.abs(image.astype(int) - astronaut_photo).mean() <= tolerance


def test_format_is_sniffed_not_taken_from_the_name(astronaut_photo, tmp_path):
    path = tmp_path / "really_a_png.jpg"
    Image.fromarray(astronaut_photo).save(path, "PNG")
    np.testing.assert_array_equal(load_image(path), astronaut_photo)


@pytest.mark.parametrize("orientation, turn", [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(astronaut_photo, tmp_path, orientation, turn):
    """Orientation 6 means the camera was turned: the stored pixels must be rotated 90° CW."""
    stored = astronaut_photo[:, 100:400]  # (512, 300): non-square, so a missed rotation shows
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, "JPEG", quality=95, exif=exif)
    image = load_image(path)
    expected = np.rot90(stored, turn)
    assert image.shape == expected.shape
    assert np.abs(image.astype(int) - expected).mean() < 8


def test_alpha_is_flattened_on_white(astronaut_photo, tmp_path):
    rgba = np.dstack([astronaut_photo, np.full(astronaut_photo.shape[:2], 255, np.uint8)])
    rgba[:, :256, 3] = 0  # left half fully transparent
    rgba[:, 256:, 3] = 255
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = load_image(path)
    assert (image[:, :256] == 255).all()
    np.testing.assert_array_equal(image[:, 256:], astronaut_photo[:, 256:])


def test_palette_with_transparency(tmp_path):
    palette = Image.new("P", (100, 100), 0)
    palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    palette.paste(1, (50, 0, 100, 100))
    path = tmp_path / "palette.png"
    palette.save(path, transparency=0)
    image = load_image(path)
    assert (image[:, :50] == 255).all() and (image[:, 50:] == (200, 10, 10)).all()


def test_greyscale_becomes_rgb(astronaut_photo, tmp_path):
    grey = astronaut_photo.mean(axis=2).astype(np.uint8)
    path = tmp_path / "grey.png"
    Image.fromarray(grey, "L").save(path)
    image = load_image(path)
    assert image.shape == (512, 512, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], grey)


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 128).astype(np.uint16), (128, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    image = load_image(path)
    assert image[0, 0, 0] == 0 and image[0, -1, 0] == 255
    assert 120 < image[0, 64, 0] < 136


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height (the pixel data is never there)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (8_000, 6_000)])
def test_decompression_bomb_is_refused_from_the_header(tmp_path, width, height):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(width, height))
    assert path.stat().st_size < 200
    start = time.perf_counter()
    with pytest.raises(InputError, match="bomb.png.*(downscale|too large)"):
        load_image(path)
    assert time.perf_counter() - start < 5.0  # refused before any decoding (decoding takes minutes)


def test_max_pixels_is_a_parameter(astronaut_photo, tmp_path):
    path = tmp_path / "astronaut_photo.png"
    Image.fromarray(astronaut_photo).save(path)
    with pytest.raises(InputError, match="over the 0.2 Mpx limit"):
        load_image(path, max_pixels=200_000)


def test_text_named_jpg(tmp_path):
    path = tmp_path / "portrait.jpg"
    path.write_text("this is not a picture\n")
    with pytest.raises(InputError, match="portrait.jpg.*not a PNG, JPEG or WEBP.*text file"):
        load_image(path)


def test_unsupported_image_format(astronaut_photo, tmp_path):
    path = tmp_path / "anim.gif"
    Image.fromarray(astronaut_photo[:128, :128]).save(path, "GIF")
    with pytest.raises(InputError, match="GIF image"):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    data = open(GRACE_HOPPER, "rb").read()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="cut.jpg.*damaged or truncated"):
        load_image(path)


def test_too_small(tmp_path):
    path = tmp_path / "thumb.png"
    Image.new("RGB", (48, 300)).save(path)
    with pytest.raises(InputError, match="thumb.png.*48x300.*at least 64 px"):
        load_image(path)


def test_missing_and_empty(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "nobody.png")
    (tmp_path / "empty.png").touch()
    with pytest.raises(InputError, match="empty"):
        load_image(tmp_path / "empty.png")


def test_iphone_heic_gets_a_helpful_message(tmp_path):
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    with pytest.raises(InputError, match="IMG_0001.HEIC.*HEIC/AVIF image"):
        load_image(path)
