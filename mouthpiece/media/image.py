"""Reading the portrait: PNG/JPEG/WEBP recognised by content, size checked from the header
before any pixel is decoded, EXIF orientation applied, returned as (H, W, 3) uint8 RGB."""

from __future__ import annotations

import io
import logging
import os
import warnings

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from mouthpiece.media.files import check_input_file, describe_content
from mouthpiece.media.limits import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from mouthpiece.types import InputError

log = logging.getLogger(__name__)

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")  # Pillow plugin names tried, in this order
BACKGROUND_RGB = (255, 255, 255)  # what transparent pixels become
_FIX = "save it as PNG or JPEG"


def load_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a portrait to (H, W, 3) uint8 RGB, upright per its EXIF orientation,
    transparency flattened on white. Anything unusable raises InputError."""
    path = check_input_file(path, "image")
    try:
        with warnings.catch_warnings():
            # our own max_pixels check replaces Pillow's DecompressionBombWarning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as img:
                width, height = img.size  # from the header; nothing decoded yet
                if width * height > max_pixels:
                    raise InputError(
                        f"image file '{path.name}' is {width}x{height} "
                        f"({width * height / 1e6:.0f} Mpx), over the {max_pixels / 1e6:g} Mpx "
                        f"limit; downscale it"
                    )
                if min(width, height) < MIN_IMAGE_SIDE:
                    raise InputError(
                        f"image file '{path.name}' is only {width}x{height} pixels; give a "
                        f"portrait at least {MIN_IMAGE_SIDE} px on each side"
                    )
                img.load()
                upright = ImageOps.exif_transpose(img)
                return _to_rgb(upright)
    except UnidentifiedImageError as exc:
        raise InputError(
            f"image file '{path.name}' is not a PNG, JPEG or WEBP image "
            f"(it looks like {describe_content(path)}); {_FIX}"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"image file '{path.name}' is too large to decode safely; downscale it"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(
            f"image file '{path.name}' is damaged or truncated ({exc}); {_FIX} again"
        ) from exc


def _to_rgb(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any Pillow mode; alpha composited on BACKGROUND_RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale, don't clip
        grey = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or grey.max() > 255 else 255.0
        grey8 = np.clip(grey * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey8[:, :, None], 3, axis=2))
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND_RGB + (255,))
        img = Image.alpha_composite(background, rgba)
    icc = img.info.get("icc_profile")
    img = img.convert("RGB")
    if icc:
        img = _to_srgb(img, icc)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """Convert from an embedded colour profile (e.g. a phone's Display P3) to sRGB, which is
    what the video is tagged as; an unusable profile leaves the pixels as they are."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(img, source, srgb, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        log.warning("ignoring the image's colour profile (%s)", exc)
        return img
