"""The learned audio→mouth model: log-mel + acoustic cues → the 7 mouth channels per frame.

A small causal network (per-frame projection → causal 1-D convolutions → GRU → 7 sigmoids)
that hears at most 80 ms past the frame it predicts (one feature sample at 25 fps), so it
can later run on a stream. It runs at its own frame rate (`Audio2MouthConfig.fps`);
features at another rate are resampled in and the prediction resampled out.

Inference only; training lives in `mouthpiece.training`. torch is imported on first use.

Engine wiring: `build_track(...)` as usual, then
`blend_learned_mouth(track, model.predict(features), segments_if_known, dynamic_scale=…)`:
without known phones (no transcript) the model drives the mouth; with them (transcript or
TTS timings) the rules' mouth and its guarantees (bilabial closure, labiodental tuck, rest in
pauses) are kept. `LearnedMotionModel.load()` verifies and loads the shipped bundle.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mouthpiece.motion.coarticulation import (
    JAW_MAX_SPEED, apply_constraints, limit_speed, to_spans,
)
from mouthpiece.types import MOUTH_CHANNELS, AudioFeatures, InputError, MotionTrack, PhonemeSegment

ARCHITECTURE = "audio2mouth-gru/1"
# The checkpoint shipped as package data (produced by `mouthpiece train`, pinned by digest in
# mouthpiece.checkpoints.signing.PINNED_MANIFEST_DIGESTS).
DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "assets" / "motion-default"
CUES: tuple[str, ...] = ("loudness", "voiced", "speech", "open", "round", "spread", "closure")
N_MELS = 80
MEL_SCALE = 4.0  # natural-log units: ~35 dB of level maps to about ±1
# Share of the rules' mouth when the phones are known (the model supplies the rest). Measured
# on unseen voices with exact timings: rules alone r = 0.657, 50/50 blend 0.632 (both close
# every bilabial), so known phones keep the rules' mouth unless a caller asks otherwise.
RULES_WEIGHT_WITH_PHONES = 1.0
# Share of the rules' mouth (from *recognised* phones) without a transcript. Measured: rules
# r = 0.802 / model alone 0.678 / 70:30 blend 0.804 on recorded speech; 0.603 / 0.619 / 0.664
# on unseen synthetic voices (bilabials closed 0.89 / 0.89 / 0.94): the blend is the best.
RULES_WEIGHT_RECOGNISED = 0.7


@dataclass(frozen=True)
class Audio2MouthConfig:
    """Architecture hyperparameters, saved as the checkpoint's config.json."""

    fps: float = 25.0  # frames per second the network runs at
    n_mels: int = N_MELS
    cues: tuple[str, ...] = CUES
    channels: tuple[str, ...] = MOUTH_CHANNELS
    width: int = 128  # projection / convolution channels
    kernel: int = 5  # causal convolution taps (frames)
    n_conv: int = 2
    hidden: int = 160  # GRU state
    # Feature samples read past the predicted frame: frame k (time k/fps) sees audio up to
    # (k + 1 + lookahead)/fps, i.e. 80 ms ahead at lookahead 1 and 25 fps.
    lookahead: int = 1
    # Per-input standardisation, measured on the training data (len = n_mels + len(cues)).
    input_mean: tuple[float, ...] = field(default_factory=tuple)
    input_std: tuple[float, ...] = field(default_factory=tuple)

    @property
    def n_inputs(self) -> int:
        return self.n_mels + len(self.cues)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(cues=list(self.cues), channels=list(self.channels),
                    input_mean=[float(v) for v in self.input_mean],
                    input_std=[float(v) for v in self.input_std])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Audio2MouthConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("cues", "channels", "input_mean", "input_std"):
            if key in known:
                known[key] = tuple(known[key])
        config = cls(**known)
        if set(config.channels) - set(MOUTH_CHANNELS):
            raise InputError(f"model config names unknown mouth channels {config.channels}")
        if config.input_mean and len(config.input_mean) != config.n_inputs:
            raise InputError("model config: input_mean does not match the number of inputs")
        return config


def raw_inputs(features: AudioFeatures, n_mels: int = N_MELS,
               cues: tuple[str, ...] = CUES) -> np.ndarray:
    """(T, n_mels + len(cues)) unstandardised network inputs at the features' own rate.

    log-mel is referred to this clip's speech level (95th percentile of the per-frame mean
    log-mel) so the network sees spectral shape and relative level, not the recording gain.
    """
    if features.mel is None or features.mel.shape[1] != n_mels:
        raise InputError(f"the learned motion model needs {n_mels}-band log-mel features")
    mel = np.asarray(features.mel, np.float32)  # (T, n_mels) natural log
    level = mel.mean(axis=1)
    ref = float(np.percentile(level, 95)) if len(level) else 0.0
    mel = (mel - ref) / MEL_SCALE
    missing = [c for c in cues if c not in features.series]
    if missing:
        raise InputError(f"features lack the cue series {missing}")
    series = np.stack([np.asarray(features.series[c], np.float32) for c in cues], axis=1)
    return np.concatenate([mel, series], axis=1)  # (T, D)


def resample_rows(rows: np.ndarray, from_fps: float, to_fps: float, n_out: int) -> np.ndarray:
    """Resample per-frame rows whose sample k stands for the interval centre (k + .5)/fps."""
    if abs(from_fps - to_fps) < 1e-9 and len(rows) == n_out:
        return rows
    src = (np.arange(len(rows)) + 0.5) / from_fps  # seconds
    dst = (np.arange(n_out) + 0.5) / to_fps
    return np.stack([np.interp(dst, src, rows[:, j]) for j in range(rows.shape[1])], axis=1
                    ).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _network_class():
    import torch
    from torch import nn

    class Audio2Mouth(nn.Module):
        """(B, T, D) standardised inputs → (B, T, C) channel values in [0, 1]; causal in T
        (the lookahead is applied by shifting the inputs, see `LearnedMotionModel`)."""

        def __init__(self, config: Audio2MouthConfig):
            super().__init__()
            self.kernel = config.kernel
            self.proj = nn.Linear(config.n_inputs, config.width)
            self.convs = nn.ModuleList(
                nn.Conv1d(config.width, config.width, config.kernel) for _ in range(config.n_conv))
            self.gru = nn.GRU(config.width, config.hidden, batch_first=True)
            self.head = nn.Linear(config.hidden + config.width, len(config.channels))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.proj(x)).transpose(1, 2)  # (B, W, T)
            for conv in self.convs:  # left padding only: frame t sees t-k+1 … t
                h = h + torch.relu(conv(nn.functional.pad(h, (self.kernel - 1, 0))))
            h = h.transpose(1, 2)  # (B, T, W)
            g, _ = self.gru(h)  # (B, T, H)
            return torch.sigmoid(self.head(torch.cat([g, h], dim=2)))  # (B, T, C)

    return Audio2Mouth


def build_network(config: Audio2MouthConfig):
    """A fresh (randomly initialised) network for `config`."""
    return _network_class()(config)


class LearnedMotionModel:
    """A loaded audio→mouth network plus its config; `predict` is all the engine needs."""

    def __init__(self, config: Audio2MouthConfig, network) -> None:
        if len(config.input_mean) != config.n_inputs or len(config.input_std) != config.n_inputs:
            raise InputError("model config lacks its input standardisation")
        self.config = config
        self.network = network.eval()
        self._mean = np.asarray(config.input_mean, np.float32)
        self._std = np.maximum(np.asarray(config.input_std, np.float32), 1e-4)
        self.checkpoint: dict | None = None  # {id, version, sha256, trusted} when loaded

    @classmethod
    def from_checkpoint(cls, loaded) -> "LearnedMotionModel":
        """From a verified `mouthpiece.checkpoints.LoadedCheckpoint` of this architecture."""
        architecture = loaded.manifest.get("architecture")
        if architecture != ARCHITECTURE:
            raise InputError(f"checkpoint {loaded.id} is a {architecture!r} model, "
                             f"the learned motion model needs {ARCHITECTURE!r}")
        config = Audio2MouthConfig.from_dict(loaded.config)
        network = build_network(config)
        try:
            network.load_state_dict(loaded.tensors, strict=True)
        except RuntimeError as exc:
            raise InputError(f"checkpoint {loaded.id}: weights do not fit its config ({exc})") from exc
        model = cls(config, network)
        model.checkpoint = loaded.summary()
        return model

    @classmethod
    def load(cls, bundle: str | Path = DEFAULT_BUNDLE, trust_dir: str | Path | None = None,
             allow_untrusted: bool = False) -> "LearnedMotionModel":
        """Verify and load a bundle (default: the shipped one), then build the model."""
        from mouthpiece.checkpoints import load_bundle

        loaded = load_bundle(bundle, trust_dir, allow_untrusted, architecture=ARCHITECTURE)
        return cls.from_checkpoint(loaded)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.network.parameters())

    def standardise(self, raw: np.ndarray) -> np.ndarray:
        """(T, D) raw inputs at the model's rate → standardised, shifted by the lookahead."""
        x = (raw - self._mean) / self._std
        k = self.config.lookahead
        if k > 0 and len(x):
            x = np.concatenate([x[k:], np.repeat(x[-1:], min(k, len(x)), axis=0)])[: len(raw)]
        return x.astype(np.float32)

    def predict(self, features: AudioFeatures) -> dict[str, np.ndarray]:
        """Mouth channel name → (T,) values in [0, 1] for the video frames of `features`
        (frame k shows time k / features.fps, as in `build_track`)."""
        import torch

        n_out = features.n_frames
        if n_out == 0:
            return {c: np.zeros(0, np.float32) for c in self.config.channels}
        fps = self.config.fps
        raw = raw_inputs(features, self.config.n_mels, self.config.cues)
        n_model = max(1, int(np.ceil(n_out * fps / features.fps)))
        raw = resample_rows(raw, features.fps, fps, n_model)  # (T', D)
        x = torch.from_numpy(self.standardise(raw))[None]
        with torch.inference_mode():
            y = self.network(x)[0].numpy().astype(np.float64)  # (T', C) at model frame times
        times = np.arange(n_out) / features.fps  # seconds: the video frame times
        model_times = np.arange(n_model) / fps
        return {c: np.interp(times, model_times, y[:, j]).astype(np.float32)
                for j, c in enumerate(self.config.channels)}


def blend_learned_mouth(track: MotionTrack, predicted: dict[str, np.ndarray],
                        segments: list[PhonemeSegment] | None = None, *,
                        dynamic_scale: float = 1.0,
                        rules_weight: float | None = None) -> MotionTrack:
    """A copy of `track` (from `build_track`) whose mouth mixes in the model's prediction.

    mouth = `rules_weight` × the track's (rules') mouth + the rest × the model's. Pass
    `segments` only when the phones are *known* (transcript alignment, TTS timings): then the
    default weight is 1 (the rules' mouth is kept exactly: it scored better) and, for a weight
    below 1, the rules' guarantees are re-applied from those phones (bilabial closure,
    labiodental tuck, rest in long pauses). Without them (recognised phones, which are often
    wrong) the default is RULES_WEIGHT_RECOGNISED and no phone constraint is imposed;
    `rules_weight=0` gives the model alone. The model's values are scaled by `dynamic_scale`
    on every channel but lip_press / lower_lip_tuck (as the rules do); the jaw speed limit
    comes last.
    """
    if rules_weight is None:
        rules_weight = RULES_WEIGHT_WITH_PHONES if segments else RULES_WEIGHT_RECOGNISED
    if not 0.0 <= rules_weight <= 1.0:
        raise InputError(f"rules_weight must be within 0..1, got {rules_weight}")
    n, fps = track.n_frames, track.fps
    out = MotionTrack(fps, track.values.copy(), track.channels, dict(track.meta))
    if rules_weight >= 1.0:
        out.meta["mouth_source"] = "rules"
        return out  # the rules' mouth already holds every guarantee
    model = np.stack([np.asarray(predicted[c], np.float64)[:n] for c in MOUTH_CHANNELS], axis=1)
    if model.shape[0] != n:
        raise ValueError(f"prediction has {model.shape[0]} frames, the track {n}")
    for j, name in enumerate(MOUTH_CHANNELS):
        if name not in ("lip_press", "lower_lip_tuck"):
            model[:, j] *= dynamic_scale
    rules = np.stack([track[c] for c in MOUTH_CHANNELS], axis=1).astype(np.float64)
    mouth = rules_weight * rules + (1.0 - rules_weight) * model
    if segments:
        times = np.arange(n) / fps  # seconds
        mouth = apply_constraints(mouth, to_spans(list(segments), n / fps), times, fps)
    jaw = MOUTH_CHANNELS.index("jaw_open")
    mouth[:, jaw] = limit_speed(mouth[:, jaw], JAW_MAX_SPEED / fps)
    for j, name in enumerate(MOUTH_CHANNELS):
        if name == "smile":  # keep the expression sampler's smile on top of the mouth's
            out[name] = track[name] - rules[:, j] + mouth[:, j]
        else:
            out[name] = mouth[:, j]
    out.meta["mouth_source"] = "model" if rules_weight == 0 else "rules+model"
    out.meta["rules_weight"] = float(rules_weight)
    return out.clipped()
