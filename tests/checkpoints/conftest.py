"""Real keys, a real toy audio→motion module, and real bundles built from its weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mouthpiece.checkpoints import TrustStore, build_bundle, generate_keypair, sign_bundle

ARCH = "audio2motion-gru/1"
RECIPE = {"command": ["mouthpiece", "train", "--steps", "10"], "seed": 7,
          "data": {"source": "synthetic", "clips": 12, "seconds": 96.0}}


class ToyAudioToMotion(torch.nn.Module):
    """Tiny stand-in of the learned model: log-mel frames → motion channels."""

    def __init__(self, n_mels: int = 8, hidden: int = 16, channels: int = 15) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(n_mels, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, channels)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # (B, T, n_mels) → (B, T, channels)
        return self.head(self.gru(mel)[0])


TOY_CONFIG = {"n_mels": 8, "hidden": 16, "channels": 15, "fps": 25}


def toy_model(seed: int) -> ToyAudioToMotion:
    torch.manual_seed(seed)
    return ToyAudioToMotion()


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """Three signing keys: `a` (trusted in `trust_dir`), `b` and `c` (not trusted)."""
    root = tmp_path_factory.mktemp("keys")
    return {name: generate_keypair(root / name) for name in ("a", "b", "c")}


@pytest.fixture(scope="session")
def trust_dir(tmp_path_factory, keys) -> Path:
    path = tmp_path_factory.mktemp("trust")
    TrustStore(path).add(keys["a"].public_path)
    return path


@pytest.fixture(scope="session")
def signed_template(tmp_path_factory, keys) -> Path:
    """A bundle signed by key `a`; tests copy it before tampering."""
    out = tmp_path_factory.mktemp("template") / "toy"
    build_bundle(out, toy_model(0).state_dict(), TOY_CONFIG, architecture=ARCH, version="1.0.0",
                 recipe=RECIPE, name="toy")
    sign_bundle(out, keys["a"].private_path)
    return out


@pytest.fixture
def signed_bundle(tmp_path, signed_template) -> Path:
    return Path(shutil.copytree(signed_template, tmp_path / "toy"))
