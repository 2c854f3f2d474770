"""The federated ML, testable without Flower: a client's private data, local fine-tuning, updates.

A client's training pairs come from its owner's talking videos through the training pipeline's
real-video path (landmarks per frame → fitted mouth channels as targets, the video's own audio
as input). They stay in this process: only weight arrays (or updates of the same shapes) and
scalar metrics are ever handed to the Flower adapters.

Motion error (`evaluate`) is `mouthpiece.training.loop.evaluate_loss` with the default
`TrainParams`: the channel-weighted MSE of the 7 mouth channels plus 2 × the weighted MSE of
their frame-to-frame changes, averaged over frames — the training loss of the base model.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mouthpiece.federated.privacy import DpSgdParams
from mouthpiece.motion.learned import ARCHITECTURE, LearnedMotionModel
from mouthpiece.training.data import FPS, Dataset, Example, inputs_for
from mouthpiece.training.loop import CHANNEL_WEIGHTS, TrainParams, evaluate_loss, loss_fn
from mouthpiece.types import MOUTH_CHANNELS, InputError, Landmarks

log = logging.getLogger(__name__)

WINDOW_FRAMES = 50  # one training record: 2 s at 25 fps (the unit per-record DP protects)
MIN_WINDOW_FRAMES = 10  # a clip's tail shorter than this is folded into the previous window


@dataclass
class ClientData:
    """One client's private training pairs. Never serialised into a Flower message.

    `examples`: per clip, (T, n_inputs) raw network inputs and (T, 7) mouth targets at `fps`.
    """

    examples: list[Example]
    fps: float = FPS

    def __post_init__(self) -> None:
        if not self.examples:
            raise InputError("a client needs at least one training clip")
        for ex in self.examples:
            if ex.inputs.ndim != 2 or ex.targets.shape != (len(ex.inputs), len(MOUTH_CHANNELS)):
                raise InputError(f"training clip {ex.source!r}: inputs (T, D) and targets "
                                 f"(T, {len(MOUTH_CHANNELS)}) must have the same T")

    @property
    def n_frames(self) -> int:
        return sum(len(ex.targets) for ex in self.examples)

    @property
    def seconds(self) -> float:
        return self.n_frames / self.fps

    def dataset(self) -> Dataset:
        return Dataset(list(self.examples))

    def summary(self) -> dict:
        """Counts only (what a client may report): clips, frames, seconds."""
        return {"clips": len(self.examples), "frames": self.n_frames,
                "seconds": round(self.seconds, 2)}

    def save(self, path: str | Path) -> Path:
        """Write to a local .npz (the owner's machine only: never sent anywhere)."""
        self.dataset().save(path)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, fps: float = FPS) -> "ClientData":
        if not Path(path).is_file():
            raise InputError(f"client data {path} not found (build it with `mouthpiece fl client`)")
        return cls(Dataset.load(path).examples, fps)

    def split(self, test_share: float = 0.25, seed: int = 0) -> tuple["ClientData", "ClientData"]:
        """(train, test) split by clip; needs at least two clips."""
        if len(self.examples) < 2:
            raise InputError("splitting a client's data needs at least two clips")
        order = np.random.default_rng(seed).permutation(len(self.examples))
        n_test = min(len(order) - 1, max(1, int(round(test_share * len(order)))))
        test = [self.examples[i] for i in order[:n_test]]
        train = [self.examples[i] for i in order[n_test:]]
        return ClientData(train, self.fps), ClientData(test, self.fps)


def examples_from_video(video: str | Path, *, fps: float = FPS,
                        rest: Landmarks | None = None) -> Example:
    """One training clip from one talking video: landmarks → fitted MotionTrack (the training
    pipeline's `fit_track_to_video`) as targets, the video's own audio as inputs, both at
    `fps` (the model's frame rate)."""
    from mouthpiece.media import load_audio
    from mouthpiece.training.video import fit_track_to_video

    track = fit_track_to_video(video, rest)
    audio = load_audio(video)
    n = max(1, int(round(track.duration_s * fps)))  # frames at fps
    times = np.arange(n) / fps  # seconds
    src = np.arange(track.n_frames) / track.fps  # seconds
    targets = np.stack([np.interp(times, src, track[c]) for c in MOUTH_CHANNELS], axis=1)
    return Example(inputs_for(audio.samples, n, fps).astype(np.float32),
                   np.clip(targets, 0, 1).astype(np.float32), f"video:{Path(video).name}")


def build_client_data(videos: list[Path], *, fps: float = FPS,
                      rest: Landmarks | None = None) -> ClientData:
    """Training pairs from the owner's talking videos (each must show one speaking face and
    carry its audio). `rest`: the neutral face when known (e.g. the portrait a rendered video
    was made from); default: estimated from each video's most closed-mouth frames."""
    if not videos:
        raise InputError("no videos given: a client trains on at least one talking video")
    missing = [str(v) for v in videos if not Path(v).is_file()]
    if missing:
        raise InputError(f"video not found: {', '.join(missing)}")
    return ClientData([examples_from_video(v, fps=fps, rest=rest) for v in videos], fps)


def load_base_model(ref: str | Path, *, registry=None, trust_dir: str | Path | None = None,
                    allow_untrusted: bool = False) -> LearnedMotionModel:
    """The verified model to fine-tune: a bundle path (folder or .zip), or — with `registry`
    (a `mouthpiece.checkpoints.Registry`) — an alias (`stable`) or `id@version` in it."""
    path = Path(ref)
    if registry is not None and not path.exists():
        loaded = registry.load(str(ref), architecture=ARCHITECTURE)
        return LearnedMotionModel.from_checkpoint(loaded)
    if not path.exists():
        raise InputError(f"checkpoint {ref} not found (pass a bundle folder/.zip, or a registry "
                         "alias / id@version with a registry)")
    return LearnedMotionModel.load(path, trust_dir, allow_untrusted)


def weight_names(model: LearnedMotionModel) -> list[str]:
    """State-dict keys in the fixed order of `get_weights`."""
    return list(model.network.state_dict().keys())


def get_weights(model: LearnedMotionModel) -> list[np.ndarray]:
    """The network's weights as float32 arrays (copies), in state-dict order."""
    return [t.detach().cpu().numpy().astype(np.float32, copy=True)
            for t in model.network.state_dict().values()]


def set_weights(model: LearnedMotionModel, weights: list[np.ndarray]) -> None:
    """Load arrays (in `get_weights` order) into the network; shapes must match exactly."""
    import torch

    names = weight_names(model)
    state = model.network.state_dict()
    if len(weights) != len(names):
        raise InputError(f"got {len(weights)} weight arrays, the model has {len(names)}")
    new_state = {}
    for name, array in zip(names, weights):
        array = np.asarray(array)
        if tuple(array.shape) != tuple(state[name].shape):
            raise InputError(f"weight {name}: shape {tuple(array.shape)}, the model needs "
                             f"{tuple(state[name].shape)}")
        if not np.all(np.isfinite(array)):
            raise InputError(f"weight {name} holds non-finite values")
        new_state[name] = torch.from_numpy(np.array(array, dtype=np.float32))
    model.network.load_state_dict(new_state, strict=True)
    model.network.eval()


def update_of(new: list[np.ndarray], old: list[np.ndarray]) -> list[np.ndarray]:
    """new − old, array by array (float32)."""
    if len(new) != len(old) or any(a.shape != b.shape for a, b in zip(new, old)):
        raise InputError("an update needs two weight lists of the same shapes")
    return [(np.asarray(a, np.float32) - np.asarray(b, np.float32)) for a, b in zip(new, old)]


def apply_update(weights: list[np.ndarray], update: list[np.ndarray]) -> list[np.ndarray]:
    """weights + update, array by array (float32)."""
    if len(weights) != len(update) or any(a.shape != b.shape for a, b in zip(weights, update)):
        raise InputError("an update must have the weights' shapes")
    return [(np.asarray(w, np.float32) + np.asarray(u, np.float32)) for w, u in zip(weights, update)]


def update_norm(update: list[np.ndarray]) -> float:
    """Global L2 norm over all arrays."""
    return float(np.sqrt(sum(float(np.sum(np.square(u, dtype=np.float64))) for u in update)))


def clip_update(update: list[np.ndarray], max_norm: float) -> tuple[list[np.ndarray], float]:
    """Scale the whole update down to global L2 norm ≤ `max_norm`; returns (clipped, norm
    before clipping). The bound is what makes a poisoned or outlying client's pull finite and
    gives client-level DP its sensitivity."""
    if not max_norm > 0:
        raise InputError(f"the clipping norm must be > 0, got {max_norm}")
    norm = update_norm(update)
    scale = min(1.0, max_norm / norm) if norm > 0 else 1.0
    return [(np.asarray(u, np.float32) * np.float32(scale)) for u in update], norm


@dataclass
class TrainReport:
    """What `local_train` did. Scalars only: safe to report as Flower metrics."""

    epochs: int
    steps: int
    records: int  # training windows (the unit per-record DP protects)
    frames: int
    loss_before: float
    loss_after: float
    wall_s: float
    dp_noise_multiplier: float | None = None
    dp_max_grad_norm: float | None = None
    dp_sample_rate: float | None = None
    epsilon: float | None = None  # per-record ε of this call alone (DP-SGD), at dp_delta
    dp_delta: float | None = None
    extra: dict = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat scalar metrics (None dropped)."""
        out = {k: float(v) for k, v in self.__dict__.items()
               if k != "extra" and v is not None}
        out.update({k: float(v) for k, v in self.extra.items()})
        return out


def training_windows(model: LearnedMotionModel, data: ClientData,
                     window: int = WINDOW_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Standardised inputs and targets cut into non-overlapping windows of `window` frames:
    ((N, window, D), (N, window, 7)). A clip shorter than `window` is padded with its last
    (silent) frame; a tail shorter than MIN_WINDOW_FRAMES is dropped."""
    if abs(data.fps - model.config.fps) > 1e-6:
        raise InputError(f"client data is at {data.fps} fps, the model runs at {model.config.fps}")
    xs, ys = [], []
    for ex in data.examples:
        x, y = model.standardise(ex.inputs), ex.targets  # (T, D), (T, 7)
        starts = list(range(0, max(1, len(y) - MIN_WINDOW_FRAMES + 1), window)) or [0]
        for s in starts:
            xw, yw = x[s: s + window], y[s: s + window]
            if len(yw) < window:  # pad with the last (silent) frame
                xw = np.concatenate([xw, np.repeat(xw[-1:], window - len(yw), axis=0)])
                yw = np.concatenate([yw, np.repeat(yw[-1:], window - len(yw), axis=0)])
            xs.append(xw)
            ys.append(yw)
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)


def local_train(model: LearnedMotionModel, data: ClientData, *, epochs: int = 1,
                lr: float = 1e-3, prox_mu: float = 0.0,
                global_weights: list[np.ndarray] | None = None,
                dp: DpSgdParams | None = None, seed: int = 0, batch: int = 8,
                window: int = WINDOW_FRAMES) -> TrainReport:
    """Fine-tune `model` in place on the client's windows with Adam for `epochs` passes.

    `prox_mu` > 0 adds FedProx's pull toward `global_weights` (default: the weights on entry),
    applied as a decoupled step w ← w − lr·μ·(w − w_global) after each optimiser step (the
    gradient of μ/2‖w − w_global‖², kept out of the per-example gradients so it needs no
    privacy budget under DP-SGD). `dp`: per-record DP-SGD with Opacus (Poisson-sampled
    batches of expected size `batch`, per-window gradients clipped to dp.max_grad_norm,
    Gaussian noise dp.noise_multiplier × that norm); the report gives its ε for this call.
    """
    import torch

    if epochs < 1:
        raise InputError(f"epochs must be ≥ 1, got {epochs}")
    if not lr > 0 or prox_mu < 0:
        raise InputError("lr must be > 0 and prox_mu ≥ 0")
    started = time.perf_counter()
    torch.manual_seed(seed)
    anchor = [torch.from_numpy(np.array(w, np.float32))
              for w in (global_weights if global_weights is not None else get_weights(model))]
    x, y = training_windows(model, data, window)
    weights = torch.tensor([CHANNEL_WEIGHTS.get(c, 1.0) for c in model.config.channels])
    delta_weight = TrainParams().delta_weight
    loss_before = evaluate(model, data)
    if dp is None:
        steps = _train_plain(model.network, x, y, weights, delta_weight, epochs, lr, prox_mu,
                             anchor, batch, np.random.default_rng(seed))
        report_dp: dict = {}
    else:
        steps, report_dp = _train_dp_sgd(model, x, y, weights, delta_weight, epochs, lr,
                                         prox_mu, anchor, batch, dp)
    model.network.eval()
    return TrainReport(epochs=epochs, steps=steps, records=len(x), frames=data.n_frames,
                       loss_before=loss_before, loss_after=evaluate(model, data),
                       wall_s=round(time.perf_counter() - started, 3), **report_dp)


def _prox_step(params, anchor, lr: float, mu: float) -> None:
    import torch

    if mu <= 0:
        return
    with torch.no_grad():
        for p, a in zip(params, anchor):
            p.sub_(lr * mu * (p - a))


def _train_plain(network, x, y, weights, delta_weight, epochs, lr, prox_mu, anchor, batch,
                 rng: np.random.Generator) -> int:
    import torch

    params = list(network.state_dict(keep_vars=True).values())
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    network.train()
    steps = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(order), batch):
            idx = order[start: start + batch]
            loss = loss_fn(network(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]),
                           weights, delta_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            _prox_step(params, anchor, lr, prox_mu)
            steps += 1
    return steps


def _train_dp_sgd(model: LearnedMotionModel, x, y, weights, delta_weight, epochs, lr, prox_mu,
                  anchor, batch, dp: DpSgdParams) -> tuple[int, dict]:
    """DP-SGD with Opacus on a twin network whose GRU is Opacus' DPGRU (per-example
    gradients for recurrent layers); the trained weights are copied back."""
    import torch
    from opacus import PrivacyEngine
    from opacus.layers import DPGRU

    from mouthpiece.motion.learned import build_network

    twin = build_network(model.config)
    gru = twin.gru
    twin.gru = DPGRU(gru.input_size, gru.hidden_size, batch_first=True)
    for name, module in model.network.named_children():  # DPGRU maps nn.GRU's parameter names
        getattr(twin, name).load_state_dict(module.state_dict())
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=min(batch, len(x)))
    optimiser = torch.optim.Adam(twin.parameters(), lr=lr)
    with warnings.catch_warnings():  # Opacus' secure_mode needs torchcsprng, absent here
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        engine = PrivacyEngine(accountant="rdp")
        private, optimiser, loader = engine.make_private(
            module=twin, optimizer=optimiser, data_loader=loader,
            noise_multiplier=dp.noise_multiplier, max_grad_norm=dp.max_grad_norm,
            poisson_sampling=True)
    params = [p for p in private._module.parameters()]
    anchor_by_param = _anchor_for_twin(private._module, model.network, anchor)
    private.train()
    steps = 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Full backward hook.*")
        for _ in range(epochs):
            for xb, yb in loader:
                if len(xb) == 0:  # Poisson sampling can draw an empty batch
                    continue
                loss = loss_fn(private(xb), yb, weights, delta_weight)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                _prox_step(params, anchor_by_param, lr, prox_mu)
                steps += 1
    trained = private._module
    for name, module in model.network.named_children():
        module.load_state_dict(getattr(trained, name).state_dict())
    sample_rate = 1.0 / len(loader)
    return steps, {"dp_noise_multiplier": dp.noise_multiplier,
                   "dp_max_grad_norm": dp.max_grad_norm, "dp_sample_rate": sample_rate,
                   "epsilon": float(engine.get_epsilon(dp.delta)), "dp_delta": dp.delta}


def _anchor_for_twin(twin, network, anchor) -> list:
    """The FedProx anchor tensors in the twin's parameter order (matched by state-dict key)."""
    by_name = dict(zip(network.state_dict().keys(), anchor))
    out = []
    for child_name, child in twin.named_children():
        for key in child.state_dict().keys():
            out.append(by_name[f"{child_name}.{key}"])
    params = list(twin.parameters())
    if len(out) != len(params) or any(a.shape != p.shape for a, p in zip(out, params)):
        raise RuntimeError("DP twin network does not line up with the model's parameters")
    return out


def evaluate(model: LearnedMotionModel, data: ClientData) -> float:
    """Motion error on `data`: `training.loop.evaluate_loss` with default TrainParams (weighted
    MSE of the 7 mouth channels + 2 × weighted MSE of their frame-to-frame changes)."""
    return float(evaluate_loss(model, data.dataset(), TrainParams()))


__all__ = [
    "ClientData", "TrainReport", "apply_update", "build_client_data", "clip_update", "evaluate",
    "examples_from_video", "get_weights", "load_base_model", "local_train", "set_weights",
    "training_windows", "update_norm", "update_of", "weight_names",
]
