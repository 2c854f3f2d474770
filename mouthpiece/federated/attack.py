"""A gradient-inversion attack (DLG-style) on a client's update of the motion model.

Threat model: an honest-but-curious server (or anyone who sees what a client uploads) knows
the global weights, the training loss and the record length, and observes one client's
update from a single training record and a single SGD step (FedSGD) — the update that leaks
the most, since update = −lr · ∇loss(record). It looks for a record whose gradient points the
same way: dummy network inputs (log-mel + acoustic cues, standardised) and dummy mouth
targets are optimised with L-BFGS to maximise the cosine between their gradient and the
observed update (Zhu et al. 2019 "Deep Leakage from Gradients", with the cosine loss of
Geiping et al. 2020). Two things make it work on this model:
- the first layer is a per-frame linear map with a bias, so its weight gradient
  Σ_t δ_t x_tᵀ spans exactly the record's input frames: the dummy frames are searched
  inside that row space (W·rank unknowns instead of W·87), and
- several random restarts; the one whose gradient matches best is kept (the attacker can
  compute that without knowing the truth).
Measured on the shipped base model: records of 1–2 frames (40–80 ms) come back almost
exactly, 4 frames occasionally; 10- and 25-frame records resisted it (clients train on
50-frame windows; docs/federated.md, "Evaluation") — no guarantee that stronger attacks
would fail. The sum
of a few clients' single-record updates (all SecAgg+ reveals) is a batch gradient:
`n_records` > 1 searches several records at once and can recover them from it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from mouthpiece.motion.learned import LearnedMotionModel
from mouthpiece.training.loop import CHANNEL_WEIGHTS, TrainParams, loss_fn
from mouthpiece.types import InputError

log = logging.getLogger(__name__)

RANK_TOLERANCE = 1e-5  # singular values below this share of the largest are noise


@dataclass(frozen=True)
class AttackParams:
    """How hard the attacker tries: `restarts` random starts of `max_iter` L-BFGS steps."""

    restarts: int = 6
    max_iter: int = 150
    seed: int = 0
    use_row_space: bool = True  # search the dummy frames in the first layer's row space

    def __post_init__(self) -> None:
        if self.restarts < 1 or self.max_iter < 1:
            raise InputError("the attack needs at least one restart and one iteration")


@dataclass
class Reconstruction:
    """The attacker's best guess: (R, W, D) standardised inputs and (R, W, 7) targets for R
    records, with how well its gradient matched (1 − cosine; 0 = exactly)."""

    inputs: np.ndarray
    targets: np.ndarray
    match_loss: float
    restart_losses: list[float] = field(default_factory=list)


def _weights(model: LearnedMotionModel):
    import torch

    return torch.tensor([CHANNEL_WEIGHTS.get(c, 1.0) for c in model.config.channels])


def _grads(model: LearnedMotionModel, x, y, create_graph: bool = False):
    """∇θ of the training loss (`training.loop.loss_fn`) on records x (R, W, D), y (R, W, 7)."""
    import torch

    params = list(model.network.parameters())
    loss = loss_fn(model.network(x), y, _weights(model), TrainParams().delta_weight)
    return torch.autograd.grad(loss, params, create_graph=create_graph)


def record_gradient(model: LearnedMotionModel, inputs: np.ndarray, targets: np.ndarray
                    ) -> list[np.ndarray]:
    """Gradient of the training loss on one record: `inputs` (W, D) standardised
    (`model.standardise`), `targets` (W, 7); arrays in `task.get_weights` order."""
    import torch

    x = torch.from_numpy(np.asarray(inputs, np.float32))[None]  # (1, W, D)
    y = torch.from_numpy(np.asarray(targets, np.float32))[None]  # (1, W, 7)
    return [g.numpy().copy() for g in _grads(model, x, y)]


def single_record_update(model: LearnedMotionModel, inputs: np.ndarray, targets: np.ndarray,
                         lr: float = 1e-3) -> list[np.ndarray]:
    """What a client uploads after one SGD step on one record: −lr · ∇loss."""
    return [(-lr * g).astype(np.float32) for g in record_gradient(model, inputs, targets)]


def _param_names(model: LearnedMotionModel) -> list[str]:
    return [name for name, _ in model.network.named_parameters()]


def invert_update(model: LearnedMotionModel, update: list[np.ndarray], n_frames: int, *,
                  n_records: int = 1, params: AttackParams = AttackParams()) -> Reconstruction:
    """Search `n_records` records of `n_frames` frames whose one-step SGD update points the
    way `update` does (the update of one record, or the sum of several clients' updates)."""
    import torch

    names = _param_names(model)
    if len(update) != len(names):
        raise InputError(f"an update of {len(update)} arrays does not fit this model "
                         f"({len(names)} parameters)")
    if n_frames < 1 or n_records < 1:
        raise InputError("the attack needs at least one record of one frame")
    model.network.eval()
    # update = −lr · gradient: the attacker matches the gradient's direction
    target = [torch.from_numpy(-np.asarray(u, np.float32)) for u in update]
    basis = _row_space(update[names.index("proj.weight")]) if params.use_row_space else None
    shape = (n_records, n_frames)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only contend (several × slower)
    try:
        for restart in range(params.restarts):
            torch.manual_seed(params.seed * 1000 + restart)
            loss, x, y = _search(model, target, basis, shape, params.max_iter)
            losses.append(round(loss, 5))
            if np.isfinite(loss) and (best is None or loss < best[0]):
                best = (loss, x, y)
    finally:
        torch.set_num_threads(threads)
    if best is None:
        raise RuntimeError("every restart of the attack diverged")
    log.info("gradient inversion: best match 1 − cos = %.4f over %d restarts", best[0],
             params.restarts)
    return Reconstruction(best[1], best[2], best[0], losses)


def _search(model: LearnedMotionModel, target: list, basis, shape: tuple[int, int],
            max_iter: int) -> tuple[float, np.ndarray, np.ndarray]:
    """One L-BFGS run from a random start: (1 − cosine, inputs (R, W, D), targets (R, W, 7))."""
    import torch

    target_norm = torch.sqrt(sum((t.double() ** 2).sum() for t in target)).float()

    def cosine_loss(x, y):
        grads = _grads(model, x, y, create_graph=True)
        dot = sum((g * t).sum() for g, t in zip(grads, target))
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        return 1.0 - dot / (norm * target_norm + 1e-20)

    n_inputs = model.config.n_inputs
    if basis is not None:  # frames = coefficients @ basis: inside the row space
        rank = basis.shape[0]
        free = (torch.randn(*shape, rank) * np.sqrt(n_inputs / rank)).requires_grad_(True)
        frames = lambda: free @ basis  # noqa: E731
    else:
        free = torch.randn(*shape, n_inputs).requires_grad_(True)
        frames = lambda: free  # noqa: E731
    logits = torch.zeros(*shape, len(model.config.channels), requires_grad=True)
    optimiser = torch.optim.LBFGS([free, logits], lr=1.0, max_iter=max_iter, history_size=50,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = cosine_loss(frames(), torch.sigmoid(logits))
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        x, y = frames(), torch.sigmoid(logits)
    loss = float(cosine_loss(x, y).detach())
    return loss, x.numpy().copy(), y.numpy().copy()


def _row_space(weight_update: np.ndarray):
    """Orthonormal basis (rank, D) of the rows of the first layer's weight update: the span
    of the record's input frames (exact for a noise-free update of fewer frames than D)."""
    import torch

    _, s, vt = np.linalg.svd(np.asarray(weight_update, np.float64), full_matrices=False)
    rank = max(1, int((s > s[0] * RANK_TOLERANCE).sum())) if s[0] > 0 else vt.shape[0]
    return torch.from_numpy(vt[:rank].astype(np.float32))


def feature_similarity(guess: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How close a reconstructed record is to the true one, frame order kept: the cosine of
    the flattened standardised features and the relative L2 error ‖guess − truth‖ / ‖truth‖."""
    guess = np.asarray(guess, np.float64).ravel()
    truth = np.asarray(truth, np.float64).ravel()
    if guess.shape != truth.shape:
        raise InputError(f"records differ in size: {guess.shape} vs {truth.shape}")
    denominator = np.linalg.norm(guess) * np.linalg.norm(truth)
    return {"cosine": float(guess @ truth / denominator) if denominator > 0 else 0.0,
            "relative_error": float(np.linalg.norm(guess - truth) / max(np.linalg.norm(truth),
                                                                       1e-12))}


def best_match(reconstruction: Reconstruction, truth: np.ndarray) -> dict[str, float]:
    """`feature_similarity` of the reconstructed record closest to `truth` (W, D)."""
    scores = [feature_similarity(r, truth) for r in reconstruction.inputs]
    return max(scores, key=lambda s: s["cosine"])


def random_guess_baseline(truth: np.ndarray, candidates: list[np.ndarray]) -> dict[str, float]:
    """What guessing without the update achieves: the mean similarity to `truth` of records
    of the same length drawn from other people's data (`candidates`, each (W, D))."""
    scores = [feature_similarity(c, truth) for c in candidates]
    return {"cosine": float(np.mean([s["cosine"] for s in scores])),
            "relative_error": float(np.mean([s["relative_error"] for s in scores]))}


def is_reconstructed(similarity: dict[str, float], baseline: dict[str, float]) -> bool:
    """Success: cosine ≥ 0.9 and relative error ≤ 0.5, and both far better than guessing
    (a cosine gain of ≥ 0.3 over the baseline, an error at most half the baseline's)."""
    return (similarity["cosine"] >= max(0.9, baseline["cosine"] + 0.3)
            and similarity["relative_error"] <= min(0.5, 0.5 * baseline["relative_error"]))


__all__ = [
    "AttackParams", "Reconstruction", "best_match", "feature_similarity", "invert_update",
    "is_reconstructed", "random_guess_baseline", "record_gradient", "single_record_update",
]
