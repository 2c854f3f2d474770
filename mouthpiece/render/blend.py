"""Painting a colour over part of an image, touching only the pixels it covers."""

from __future__ import annotations

import numpy as np


def blend_over(image: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """In place: image ← image + (colour − image)·alpha, rounded, where alpha > 0.

    `image`: (h, w, 3) uint8 (a view is fine); `alpha`: (h, w) in 0…1; `colour`: (3,) or
    (h, w, 3). Painted features (lips, lids, lashes) cover a small part of their box, so
    gathering those pixels is cheaper than blending the whole box."""
    ys, xs = np.nonzero(alpha > 1 / 512)
    if not len(ys):
        return
    a = alpha[ys, xs].astype(np.float32)[:, None]  # (n, 1)
    c = colour if np.ndim(colour) == 1 else colour[ys, xs]
    under = image[ys, xs].astype(np.float32)  # (n, 3)
    mixed = under + (np.asarray(c, np.float32) - under) * a + np.float32(0.5)
    image[ys, xs] = np.clip(mixed, 0, 255).astype(np.uint8)
