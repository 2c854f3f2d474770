"""8-bit quantization of model updates that secure aggregation can sum.

SecAgg sums integers modulo a field size, so every client must quantize onto the *same*
grid: no per-client scale. The grid is derived from the clipping norm C, which every update
already respects (‖u‖₂ ≤ C):

1. flatten the update and apply a shared random rotation (random permutation, random signs,
   orthonormal Walsh–Hadamard transform in blocks of BLOCK): the rotation keeps the L2 norm
   and spreads it evenly, so each rotated coordinate is ≈ N(0, ‖u‖²/d);
2. clip each coordinate to [−r, r] with r = SIGMAS·C/√d (a 4σ coordinate is rare);
3. stochastic rounding onto 2^bits − 1 steps of [−r, r] (unbiased): levels 0 … 255 at 8 bits.

Levels from n clients add up to at most n·255, so a field of 2^(8 + ⌈log₂(n+1)⌉) holds the sum
without wrapping: masked sums (SecAgg+) unmask to the exact level sum; the server turns it
into the sum of updates with `dequantize_sum`, then rotates back. The rotation seed is
public (sent in the round's config); it protects nothing, it only shapes the error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mouthpiece.types import InputError

BLOCK = 4096  # Walsh–Hadamard block (2^12 coordinates)
SIGMAS = 4.0  # per-coordinate range r in standard deviations of a rotated update at norm C
FLOAT32_BYTES = 4


def flatten(arrays: list[np.ndarray]) -> np.ndarray:
    """All arrays as one float32 vector (C order, in list order)."""
    return np.concatenate([np.asarray(a, np.float32).ravel() for a in arrays]) if arrays else \
        np.zeros(0, np.float32)


def unflatten(vector: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Inverse of `flatten` for arrays of `shapes` (extra trailing entries are ignored)."""
    out, at = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        out.append(np.asarray(vector[at: at + size], np.float32).reshape(shape))
        at += size
    if at > len(vector):
        raise InputError(f"vector of {len(vector)} values cannot fill shapes totalling {at}")
    return out


def _fwht(blocks: np.ndarray) -> np.ndarray:
    """Orthonormal Walsh–Hadamard transform along the last axis (length a power of two);
    its own inverse."""
    n, size = blocks.shape
    x = blocks.astype(np.float64)
    h = 1
    while h < size:
        x = x.reshape(n, size // (2 * h), 2, h)  # pairs (j, j + h) inside groups of 2h
        x = np.stack((x[:, :, 0] + x[:, :, 1], x[:, :, 0] - x[:, :, 1]), axis=2)
        h *= 2
    return (x.reshape(n, size) / math.sqrt(size)).astype(np.float32)


def padded_size(size: int) -> int:
    """Length after rotation: a multiple of BLOCK (or the next power of two below BLOCK)."""
    if size <= 0:
        raise InputError("cannot rotate an empty update")
    if size < BLOCK:
        return 1 << (size - 1).bit_length()
    return -(-size // BLOCK) * BLOCK


class Rotation:
    """A shared random orthogonal map of R^size into R^padded (padded ≥ size): permute, flip
    signs, Walsh–Hadamard per block. Same (size, seed) → same map on every client."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.padded = padded_size(size)
        self.block = min(BLOCK, self.padded)
        rng = np.random.default_rng([0x6D70, seed])  # 'mp'
        self.permutation = rng.permutation(self.padded)
        self.signs = rng.choice(np.array([-1.0, 1.0], np.float32), self.padded)

    def forward(self, vector: np.ndarray) -> np.ndarray:
        """(size,) → (padded,) with the same L2 norm."""
        if vector.shape != (self.size,):
            raise InputError(f"rotation expects {self.size} values, got {vector.shape}")
        padded = np.zeros(self.padded, np.float32)
        padded[: self.size] = vector
        mixed = (padded[self.permutation] * self.signs).reshape(-1, self.block)
        return _fwht(mixed).ravel()

    def inverse(self, rotated: np.ndarray) -> np.ndarray:
        """(padded,) → (size,): the transpose of `forward` (its inverse on its range)."""
        if rotated.shape != (self.padded,):
            raise InputError(f"inverse rotation expects {self.padded} values, got {rotated.shape}")
        mixed = _fwht(np.asarray(rotated, np.float32).reshape(-1, self.block)).ravel() * self.signs
        out = np.empty(self.padded, np.float32)
        out[self.permutation] = mixed
        return out[: self.size]


@dataclass(frozen=True)
class QuantizationSpec:
    """The shared grid: `bits` per coordinate over [−range, range] of the rotated update."""

    range: float
    bits: int = 8

    def __post_init__(self) -> None:
        if not self.range > 0:
            raise InputError(f"quantization range must be > 0, got {self.range}")
        if not 2 <= self.bits <= 16:
            raise InputError(f"quantization bits must be within 2..16, got {self.bits}")

    @property
    def levels(self) -> int:
        """Largest level (2^bits − 1); levels run 0 … levels."""
        return (1 << self.bits) - 1

    @property
    def dtype(self):
        return np.uint8 if self.bits <= 8 else np.uint16

    @classmethod
    def for_clip_norm(cls, clip_norm: float, size: int, bits: int = 8) -> "QuantizationSpec":
        """r = SIGMAS·C/√d over the rotated length d of a `size`-value update."""
        if not clip_norm > 0:
            raise InputError(f"the clipping norm must be > 0, got {clip_norm}")
        return cls(SIGMAS * clip_norm / math.sqrt(padded_size(size)), bits)


def quantize(vector: np.ndarray, spec: QuantizationSpec, rng: np.random.Generator) -> np.ndarray:
    """Clip to [−r, r], then stochastic rounding onto levels 0 … 2^bits − 1 (unbiased)."""
    r = spec.range
    scaled = (np.clip(vector, -r, r) + r) * (spec.levels / (2 * r))  # in [0, levels]
    low = np.floor(scaled)
    up = rng.random(scaled.shape) < (scaled - low)
    return np.minimum(low + up, spec.levels).astype(spec.dtype)


def dequantize_sum(level_sum: np.ndarray, n_clients: int, spec: QuantizationSpec) -> np.ndarray:
    """Sum of the levels of `n_clients` vectors → sum of the (clipped) vectors."""
    step = 2 * spec.range / spec.levels
    return (np.asarray(level_sum, np.float64) * step - n_clients * spec.range).astype(np.float32)


def encode_update(update: list[np.ndarray], spec: QuantizationSpec, seed: int,
                  rng: np.random.Generator) -> np.ndarray:
    """An update (arrays) → one vector of levels (uint8 at 8 bits), rotated by `seed`."""
    vector = flatten(update)
    return quantize(Rotation(len(vector), seed).forward(vector), spec, rng)


def rotate_update(update: list[np.ndarray], seed: int) -> np.ndarray:
    """The rotated float vector that `encode_update` quantizes (what SecAgg+ quantizes)."""
    vector = flatten(update)
    return Rotation(len(vector), seed).forward(vector)


def decode_rotated(rotated: np.ndarray, shapes: list[tuple[int, ...]],
                   seed: int) -> list[np.ndarray]:
    """A rotated float vector (e.g. a dequantized mean) → arrays of `shapes`."""
    size = sum(int(np.prod(s, dtype=np.int64)) for s in shapes)
    return unflatten(Rotation(size, seed).inverse(np.asarray(rotated, np.float32)), shapes)


def decode_level_sum(level_sum: np.ndarray, n_clients: int, shapes: list[tuple[int, ...]],
                     spec: QuantizationSpec, seed: int) -> list[np.ndarray]:
    """Summed levels of `n_clients` encoded updates → their *mean* update as arrays."""
    if n_clients < 1:
        raise InputError("decoding a sum needs at least one client")
    mean = dequantize_sum(level_sum, n_clients, spec) / n_clients
    return decode_rotated(mean, shapes, seed)


def field_modulus(bits: int, max_clients: int) -> int:
    """Smallest power of two holding the sum of `max_clients` level vectors without wrap."""
    need = ((1 << bits) - 1) * max_clients + 1
    return 1 << max(bits + 1, (need - 1).bit_length())


def bytes_per_round(n_params: int, *, quantized: bool, bits: int = 8,
                    secagg_clients: int | None = None) -> int:
    """Update payload one client uploads per round (parameter data only, no protocol
    overhead): float32 = 4 B per weight; quantized = one level per rotated coordinate. Under
    SecAgg the payload is a field element per coordinate: ⌈log₂(modulus)/8⌉ bytes, with the
    modulus of `field_modulus` when quantized and Flower's default 2^32 otherwise."""
    if n_params < 1:
        raise InputError("the model has no parameters")
    if secagg_clients is None:
        if not quantized:
            return FLOAT32_BYTES * n_params
        return padded_size(n_params) * (1 if bits <= 8 else 2)
    if quantized:
        modulus_bits = field_modulus(bits, secagg_clients).bit_length() - 1
        return padded_size(n_params) * -(-modulus_bits // 8)
    return 4 * n_params


__all__ = [
    "BLOCK", "QuantizationSpec", "Rotation", "bytes_per_round", "decode_level_sum",
    "decode_rotated", "dequantize_sum", "encode_update", "field_modulus", "flatten",
    "padded_size", "quantize", "rotate_update", "unflatten",
]
