"""Shared fixtures of the federated tests: a tiny real model, clients' data, a signed registry.

Everything is built in the test session (no downloads): a randomly initialised model of the
real architecture at toy width, clients whose training pairs are synthesized, and a registry
whose `stable` alias points at a bundle signed by a key in its trust store.
"""

from __future__ import annotations

import numpy as np
import pytest

from mouthpiece.motion.learned import CUES, N_MELS, Audio2MouthConfig

N_INPUTS = N_MELS + len(CUES)


def tiny_config() -> Audio2MouthConfig:
    """The real architecture at toy width (a few thousand weights)."""
    return Audio2MouthConfig(width=16, hidden=16, n_conv=1, kernel=3,
                             input_mean=tuple([0.0] * N_INPUTS), input_std=tuple([1.0] * N_INPUTS))


def tiny_model(seed: int = 0):
    import torch

    from mouthpiece.motion.learned import LearnedMotionModel, build_network

    torch.manual_seed(seed)
    config = tiny_config()
    return LearnedMotionModel(config, build_network(config))


def synthetic_client(seed: int, clips: int = 2, frames: int = 100, style: float = 1.0):
    """A client whose mouth targets are a fixed function of its inputs, scaled by `style`
    (clients with different styles want different models)."""
    from mouthpiece.federated.task import ClientData
    from mouthpiece.training.data import Example

    rng = np.random.default_rng(seed)
    examples = []
    for k in range(clips):
        x = rng.normal(size=(frames, N_INPUTS)).astype(np.float32)
        y = 1 / (1 + np.exp(-style * (x[:, :7] + x[:, 7:14])))
        examples.append(Example(x, y.astype(np.float32), f"synthetic:{seed}:{k}"))
    return ClientData(examples)


@pytest.fixture(scope="session")
def server_key(tmp_path_factory):
    from mouthpiece.checkpoints import generate_keypair

    return generate_keypair(tmp_path_factory.mktemp("keys") / "server")


def install_base(registry_root, trust_dir, server_key, workdir):
    """A registry at `registry_root` trusting `server_key`, with `stable` → a tiny signed base."""
    from mouthpiece.checkpoints import Registry, TrustStore, build_bundle, sign_bundle
    from mouthpiece.motion.learned import ARCHITECTURE

    TrustStore(trust_dir).add(server_key.public_path)
    model = tiny_model(0)
    bundle = build_bundle(workdir / "base-bundle", model.network.state_dict(),
                          model.config.to_dict(), architecture=ARCHITECTURE, version="1.0.0",
                          name="motion-tiny",
                          recipe={"command": ["test"], "seed": 0, "data": {"source": "none"}})
    sign_bundle(bundle, server_key.private_path)
    reg = Registry(registry_root, trust_dir)
    reg.install(bundle)
    reg.set_alias("stable", "motion-tiny@1.0.0")
    return reg


@pytest.fixture
def registry(tmp_path, server_key):
    """A registry trusting `server_key`, with `stable` → a tiny signed base bundle."""
    return install_base(tmp_path / "registry", tmp_path / "trust", server_key, tmp_path)


@pytest.fixture
def data_dir(tmp_path, server_key):
    """A mouthpiece data folder (DATA/checkpoints registry, DATA/trust) holding the tiny base."""
    data = tmp_path / "data"
    install_base(data / "checkpoints", data / "trust", server_key, tmp_path)
    return data


@pytest.fixture(scope="session")
def talking_video(tmp_path_factory, portrait_path):
    """A real talking video (H.264 + AAC): the portrait rendered speaking espeak-ng audio
    with a speech-like mouth, as a client would record it."""
    import subprocess

    from mouthpiece.face import build_rig
    from mouthpiece.media import VideoWriter, load_image
    from mouthpiece.render import Renderer
    from mouthpiece.types import MotionTrack

    folder = tmp_path_factory.mktemp("videos")
    fps, n = 25, 50
    t = np.arange(n) / fps  # seconds
    track = MotionTrack.zeros(n, fps)
    track["jaw_open"] = np.clip(0.5 + 0.45 * np.sin(2 * np.pi * 2.1 * t), 0, 1)
    track["lip_round"] = np.clip(np.sin(2 * np.pi * 0.7 * t), 0, 1) * 0.8
    rig = build_rig(load_image(portrait_path), min_resolution=256)
    renderer = Renderer(rig, full_frame=False)
    wav, video = folder / "speech.wav", folder / "owner.mp4"
    subprocess.run(["espeak-ng", "-w", str(wav), "Bob bought a big map."], check=True)
    with VideoWriter(video, fps, renderer.output_size, wav, n / fps) as writer:
        for row in track.values:
            writer.write(renderer.render(row))
    return video
