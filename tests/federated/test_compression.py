"""8-bit updates on a grid shared by all clients, summed under SecAgg-style masking."""

from __future__ import annotations

import numpy as np
import pytest

from mouthpiece.federated import compression as comp
from mouthpiece.types import InputError

SHAPES = [(64, 87), (64,), (48, 64), (7, 80), (7,)]


def _update(rng, scale=1.0):
    return [(rng.normal(size=s) * scale).astype(np.float32) for s in SHAPES]


def test_rotation_is_orthogonal_and_shared_by_seed():
    rng = np.random.default_rng(0)
    n = sum(int(np.prod(s)) for s in SHAPES)
    vec = comp.flatten(_update(rng))
    vec[:10] *= 100  # a few large coordinates (a hot layer)
    rot = comp.Rotation(n, seed=7)
    out = rot.forward(vec)
    assert out.shape == (comp.padded_size(n),) and comp.padded_size(n) % comp.BLOCK == 0
    assert np.linalg.norm(out) == pytest.approx(np.linalg.norm(vec), rel=1e-5)
    assert np.allclose(rot.inverse(out), vec, atol=1e-4)
    assert np.array_equal(comp.Rotation(n, 7).forward(vec), out)
    assert not np.allclose(comp.Rotation(n, 8).forward(vec), out)
    # Spread out: no rotated coordinate keeps the big ones' share of the norm.
    assert np.abs(out).max() < 0.1 * np.abs(vec).max()


def test_stochastic_rounding_is_unbiased_and_8_bit():
    rng = np.random.default_rng(1)
    spec = comp.QuantizationSpec(range=1.0)
    values = np.linspace(-1.2, 1.2, 25).astype(np.float32)  # ends beyond the range clip
    draws = np.stack([comp.quantize(values, spec, rng) for _ in range(4000)])
    assert draws.dtype == np.uint8 and draws.min() >= 0 and draws.max() <= 255
    mean = comp.dequantize_sum(draws.astype(np.int64).sum(0), len(draws), spec) / len(draws)
    assert np.allclose(mean, np.clip(values, -1, 1), atol=2e-3)


def test_masked_sum_of_levels_decodes_to_the_mean_update():
    """What SecAgg does with the levels: add random masks that cancel, sum mod a field."""
    rng = np.random.default_rng(2)
    clients = 5
    updates = [_update(rng, 0.01) for _ in range(clients)]
    clip = max(comp.np.linalg.norm(comp.flatten(u)) for u in updates)
    n = sum(int(np.prod(s)) for s in SHAPES)
    spec = comp.QuantizationSpec.for_clip_norm(clip, n)
    modulus = comp.field_modulus(spec.bits, clients)
    assert modulus == 2 ** 11  # 5 × 255 < 2048
    levels = [comp.encode_update(u, spec, seed=3, rng=rng).astype(np.int64) for u in updates]
    masks = [rng.integers(0, modulus, levels[0].shape) for _ in range(clients - 1)]
    masks.append((-np.sum(masks, axis=0)) % modulus)  # pairwise masks cancel in the sum
    masked = [(lv + m) % modulus for lv, m in zip(levels, masks)]
    assert not np.array_equal(masked[0], levels[0])
    level_sum = np.sum(masked, axis=0) % modulus
    assert np.array_equal(level_sum, np.sum(levels, axis=0))  # no wrap-around
    mean = comp.decode_level_sum(level_sum, clients, SHAPES, spec, seed=3)
    truth = [np.mean(parts, axis=0) for parts in zip(*updates)]
    err = np.linalg.norm(comp.flatten(mean) - comp.flatten(truth))
    assert err < 0.02 * clip


def test_bytes_per_round_float32_vs_int8():
    n = 316_583  # the shipped model
    f32 = comp.bytes_per_round(n, quantized=False)
    i8 = comp.bytes_per_round(n, quantized=True)
    assert f32 == 4 * n
    assert i8 == comp.padded_size(n) and 3.9 < f32 / i8 < 4.0
    # Under SecAgg+ a coordinate is a field element: 16 bits hold 8-bit sums of ≤ 257 clients.
    assert comp.bytes_per_round(n, quantized=True, secagg_clients=100) == 2 * comp.padded_size(n)
    with pytest.raises(InputError):
        comp.QuantizationSpec(range=0.0)
