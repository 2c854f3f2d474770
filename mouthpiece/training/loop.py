"""The training loop: random fixed-length crops, weighted MSE on values and frame-to-frame
changes, Adam with cosine decay. Deterministic for a seed on one CPU thread."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from mouthpiece.motion.learned import Audio2MouthConfig, LearnedMotionModel, build_network
from mouthpiece.training.data import Dataset
from mouthpiece.types import MOUTH_CHANNELS

log = logging.getLogger(__name__)

# lip_press carries the closures users notice most; lower_lip_tuck the labiodentals.
CHANNEL_WEIGHTS = {"jaw_open": 1.5, "lip_press": 2.0, "lower_lip_tuck": 1.0}


@dataclass(frozen=True)
class TrainParams:
    steps: int = 3000
    batch: int = 24
    crop_frames: int = 100  # 4 s at 25 fps
    lr: float = 3e-3
    weight_decay: float = 1e-4
    delta_weight: float = 2.0  # loss on frame-to-frame change (keeps timing crisp)
    seed: int = 0
    time_limit_s: float | None = None  # stop early (reported) if training runs past this

    def to_dict(self) -> dict:
        return asdict(self)


def input_statistics(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    stacked = np.concatenate([e.inputs for e in data.examples]).astype(np.float64)
    return stacked.mean(axis=0), stacked.std(axis=0) + 1e-3


def _batch(model: LearnedMotionModel, data: Dataset, rng: np.random.Generator,
           params: TrainParams) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    n = params.crop_frames
    for k in rng.integers(0, len(data.examples), params.batch):
        ex = data.examples[int(k)]
        x, y = model.standardise(ex.inputs), ex.targets
        if len(y) < n:  # pad short clips with their (silent) last frame
            x = np.concatenate([x, np.repeat(x[-1:], n - len(y), axis=0)])
            y = np.concatenate([y, np.repeat(y[-1:], n - len(y), axis=0)])
        start = int(rng.integers(0, len(y) - n + 1))
        xs.append(x[start: start + n])
        ys.append(y[start: start + n])
    return np.stack(xs), np.stack(ys)


def loss_fn(pred, target, weights, delta_weight: float):
    err = ((pred - target) ** 2 * weights).mean()
    d_pred, d_target = pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1]
    return err + delta_weight * ((d_pred - d_target) ** 2 * weights).mean()


def evaluate_loss(model: LearnedMotionModel, data: Dataset, params: TrainParams) -> float:
    import torch

    weights = torch.tensor([CHANNEL_WEIGHTS.get(c, 1.0) for c in model.config.channels])
    total, count = 0.0, 0
    model.network.eval()
    with torch.inference_mode():
        for ex in data.examples:
            x = torch.from_numpy(model.standardise(ex.inputs))[None]
            y = torch.from_numpy(ex.targets)[None]
            total += float(loss_fn(model.network(x), y, weights, params.delta_weight)) * len(y[0])
            count += len(y[0])
    return total / max(count, 1)


def train(data: Dataset, params: TrainParams, config: Audio2MouthConfig | None = None,
          validation: Dataset | None = None, progress=None) -> tuple[LearnedMotionModel, dict]:
    """Train a fresh model on `data`; returns (model, history summary)."""
    import torch

    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    mean, std = input_statistics(data)
    config = config or Audio2MouthConfig()
    config = Audio2MouthConfig(**{**config.__dict__, "input_mean": tuple(mean.tolist()),
                                  "input_std": tuple(std.tolist()),
                                  "channels": MOUTH_CHANNELS})
    network = build_network(config)
    model = LearnedMotionModel(config, network)
    weights = torch.tensor([CHANNEL_WEIGHTS.get(c, 1.0) for c in config.channels])
    optimiser = torch.optim.AdamW(network.parameters(), lr=params.lr,
                                  weight_decay=params.weight_decay)
    warmup = max(1, params.steps // 50)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, params.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_at)
    started = time.perf_counter()
    history, running, step = [], 0.0, 0
    for step in range(params.steps):
        network.train()
        x, y = _batch(model, data, rng, params)
        loss = loss_fn(network(torch.from_numpy(x)), torch.from_numpy(y), weights,
                       params.delta_weight)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step else value
        if step % 100 == 0 or step == params.steps - 1:
            entry = {"step": step, "train_loss": round(running, 5),
                     "elapsed_s": round(time.perf_counter() - started, 1)}
            history.append(entry)
            if progress is not None:
                progress(entry)
        if params.time_limit_s and time.perf_counter() - started > params.time_limit_s:
            log.warning("training stopped at step %d: time limit %.0f s", step, params.time_limit_s)
            break
    network.eval()
    summary = {"steps_done": step + 1, "wall_s": round(time.perf_counter() - started, 1),
               "final_train_loss": round(running, 5), "history": history}
    if validation is not None and validation.examples:
        summary["validation_loss"] = round(evaluate_loss(model, validation, params), 5)
    return model, summary
