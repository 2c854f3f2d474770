"""Differential privacy: client-level DP for the federation, per-record DP-SGD inside a client.

Client-level DP (large populations): each client's update is clipped to L2 norm `clip_norm`
on the client (Flower's `fixedclipping_mod`) and the server adds Gaussian noise of standard
deviation z·C/n to the average of the n updates it received (Flower's
`DifferentialPrivacyClientSideFixedClipping`, made dropout-tolerant below). One round is one
sampled Gaussian mechanism with sampling rate q = n / population; `ClientLevelAccountant`
composes rounds with Opacus' RDP accountant and reports (ε, δ) after each.

Per-record DP-SGD (small consortia): inside a client, Opacus clips each training window's
gradient and adds noise at every step (`DpSgdParams`, used by `task.local_train`); ε then
protects one 2-s window of the owner's video, not the owner as a whole.

Nothing here imports Flower at module level; `dp_strategy` builds the Flower wrapper on call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from mouthpiece.types import InputError

DEFAULT_DELTA = 1e-5


@dataclass(frozen=True)
class ClientDpParams:
    """Client-level DP: clip every client update to `clip_norm`, noise z = `noise_multiplier`."""

    noise_multiplier: float
    clip_norm: float
    delta: float = DEFAULT_DELTA

    def __post_init__(self) -> None:
        if not self.noise_multiplier > 0 or not math.isfinite(self.noise_multiplier):
            raise InputError(f"DP noise multiplier must be > 0, got {self.noise_multiplier}")
        if not self.clip_norm > 0:
            raise InputError(f"DP clipping norm must be > 0, got {self.clip_norm}")
        if not 0 < self.delta < 1:
            raise InputError(f"DP delta must be within (0, 1), got {self.delta}")

    def noise_std(self, n_clients: int) -> float:
        """Standard deviation of the noise added to the *average* of n clipped updates."""
        return self.noise_multiplier * self.clip_norm / max(1, n_clients)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DpSgdParams:
    """Per-record DP-SGD inside a client (Opacus): per-window gradient clip and noise."""

    noise_multiplier: float
    max_grad_norm: float = 1.0
    delta: float = DEFAULT_DELTA

    def __post_init__(self) -> None:
        if not self.noise_multiplier > 0 or not math.isfinite(self.noise_multiplier):
            raise InputError(f"DP-SGD noise multiplier must be > 0, got {self.noise_multiplier}")
        if not self.max_grad_norm > 0:
            raise InputError(f"DP-SGD gradient clip must be > 0, got {self.max_grad_norm}")
        if not 0 < self.delta < 1:
            raise InputError(f"DP-SGD delta must be within (0, 1), got {self.delta}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClientLevelAccountant:
    """(ε, δ) of client-level DP over the rounds so far: Opacus' RDP accountant, one sampled
    Gaussian step per round with q = clients aggregated / population (Poisson-sampling
    analysis; with every client in every round q = 1 and there is no amplification).

    `history`: (noise_multiplier, sample_rate, rounds) triples, JSON-friendly, so the ledger
    can be stored in a checkpoint's lineage and restored after a restart."""

    population: int
    delta: float = DEFAULT_DELTA
    history: list[tuple[float, float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.population < 1:
            raise InputError(f"the client population must be ≥ 1, got {self.population}")

    def step(self, noise_multiplier: float, n_clients: int) -> float:
        """Record one round that averaged `n_clients` updates; returns ε after it."""
        if n_clients < 1:
            raise InputError("a DP round needs at least one client")
        rate = min(1.0, n_clients / self.population)
        if self.history and self.history[-1][:2] == (noise_multiplier, rate):
            z, q, k = self.history[-1]
            self.history[-1] = (z, q, k + 1)
        else:
            self.history.append((float(noise_multiplier), rate, 1))
        return self.epsilon()

    @property
    def rounds(self) -> int:
        return sum(k for _, _, k in self.history)

    def epsilon(self, delta: float | None = None) -> float:
        return _rdp_epsilon(self.history, self.delta if delta is None else delta)

    def to_dict(self) -> dict:
        return {"population": self.population, "delta": self.delta,
                "history": [list(h) for h in self.history]}

    @classmethod
    def from_dict(cls, data: dict) -> "ClientLevelAccountant":
        return cls(int(data["population"]), float(data["delta"]),
                   [(float(z), float(q), int(k)) for z, q, k in data.get("history", [])])


def epsilon_of(history: list[tuple[float, float, int]], delta: float = DEFAULT_DELTA) -> float:
    """ε of a sequence of (noise multiplier, sample rate, steps) sampled Gaussian releases."""
    return _rdp_epsilon(history, delta)


def _rdp_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    if not history:
        return 0.0
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(z, q, k) for z, q, k in history]
    return float(accountant.get_epsilon(delta))


def epsilon_for(noise_multiplier: float, sample_rate: float, steps: int,
                delta: float = DEFAULT_DELTA) -> float:
    """ε after `steps` sampled Gaussian releases (RDP accounting, Opacus)."""
    if not 0 < sample_rate <= 1:
        raise InputError(f"sample rate must be within (0, 1], got {sample_rate}")
    return _rdp_epsilon([(noise_multiplier, sample_rate, steps)], delta)


def noise_for_epsilon(target_epsilon: float, sample_rate: float, steps: int,
                      delta: float = DEFAULT_DELTA) -> float:
    """Smallest noise multiplier that keeps ε ≤ target after `steps` releases (Opacus search)."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                      sample_rate=sample_rate, steps=steps, accountant="rdp"))


def add_gaussian_noise(arrays: list[np.ndarray], std: float,
                       rng: np.random.Generator) -> list[np.ndarray]:
    """arrays + N(0, std²) per coordinate (float32). Used by tests and the attack bench to
    reproduce what the server adds; the federation itself uses Flower's noise function."""
    return [(np.asarray(a, np.float32) + rng.normal(0.0, std, np.shape(a)).astype(np.float32))
            for a in arrays]


def dp_strategy(strategy, params: ClientDpParams, num_sampled_clients: int):
    """Flower's client-side fixed-clipping DP wrapper around `strategy` (clients clip with
    `fixedclipping_mod`, the server adds noise to the aggregate), with two changes:
    a round in which some clients failed (dropped out) is still aggregated instead of being
    discarded, and the noise is scaled to the number of updates actually averaged, so a
    dropout never weakens the noise below z·C/n."""
    from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping
    from flwr.supercore.differential_privacy import add_gaussian_noise_to_params

    class DropoutTolerantClientSideFixedClipping(DifferentialPrivacyClientSideFixedClipping):
        def aggregate_fit(self, server_round, results, failures):
            if not results:
                return None, {}
            aggregated, metrics = self.strategy.aggregate_fit(server_round, results, failures)
            if aggregated is not None:
                aggregated = add_gaussian_noise_to_params(
                    aggregated, self.noise_multiplier, self.clipping_norm, len(results))
                metrics = dict(metrics, dp_noise_std=params.noise_std(len(results)))
            return aggregated, metrics

    return DropoutTolerantClientSideFixedClipping(
        strategy, noise_multiplier=params.noise_multiplier, clipping_norm=params.clip_norm,
        num_sampled_clients=num_sampled_clients)


__all__ = [
    "ClientDpParams", "ClientLevelAccountant", "DEFAULT_DELTA", "DpSgdParams",
    "add_gaussian_noise", "dp_strategy", "epsilon_for", "epsilon_of", "noise_for_epsilon",
]
