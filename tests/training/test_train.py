"""Training end to end at toy size: loss goes down; the bundle is signed, verifies, loads and
predicts; the manifest records how to reproduce it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mouthpiece.checkpoints import generate_keypair, load_bundle, verify_bundle
from mouthpiece.motion.learned import Audio2MouthConfig, LearnedMotionModel
from mouthpiece.speech import frame_features
from mouthpiece.training import DataRecipe, TrainingRun, TrainParams, generate_dataset, run, train
from mouthpiece.training.loop import evaluate_loss
from mouthpiece.types import MOUTH_CHANNELS, Audio

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
TINY = Audio2MouthConfig(width=16, hidden=12, n_conv=1)
RECIPE = DataRecipe(seed=1, n_espeak=4, n_piper=0)


@pytest.fixture(scope="module")
def dataset():
    return generate_dataset(RECIPE)


def test_a_few_steps_lower_the_loss(dataset):
    params = TrainParams(steps=40, batch=4, crop_frames=50, seed=0)
    before, _ = train(dataset, TrainParams(steps=1, batch=4, crop_frames=50, lr=1e-9), TINY)
    after, summary = train(dataset, params, TINY)
    assert summary["steps_done"] == 40
    assert evaluate_loss(after, dataset, params) < 0.8 * evaluate_loss(before, dataset, params)


def test_same_seed_same_weights(dataset):
    params = TrainParams(steps=5, batch=2, crop_frames=30, seed=3)
    a, _ = train(dataset, params, TINY)
    b, _ = train(dataset, params, TINY)
    for (name, x), (_, y) in zip(a.network.state_dict().items(), b.network.state_dict().items()):
        assert np.array_equal(x.numpy(), y.numpy()), name


def test_train_sign_verify_load_predict(tmp_path, dataset):
    keys = generate_keypair(tmp_path / "keys")
    job = TrainingRun(out=tmp_path / "bundle", command=["mouthpiece", "train", "--seed", "1"],
                      recipe=RECIPE, params=TrainParams(steps=3, batch=2, crop_frames=30, seed=1),
                      config=TINY, evaluate=False, key=keys.private_path,
                      data_cache=tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    from mouthpiece.training.pipeline import load_or_generate

    load_or_generate(RECIPE, tmp_path / "cache")  # the run below reuses this cached data
    result = run(job)
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(keys.public_path, trust / "release.pub")
    report = verify_bundle(result.bundle, trust)
    assert report.trusted and report.manifest["recipe"]["seed"] == 1
    assert report.manifest["recipe"]["command"][:2] == ["mouthpiece", "train"]
    assert report.manifest["recipe"]["data"]["examples"] == 4
    model = LearnedMotionModel.from_checkpoint(load_bundle(result.bundle, trust))
    samples = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.05
    out = model.predict(frame_features(Audio(samples), 25, 25))
    assert set(out) == set(MOUTH_CHANNELS) and all(v.shape == (25,) for v in out.values())
    reference = result.model.predict(frame_features(Audio(samples), 25, 25))
    assert all(np.array_equal(out[c], reference[c]) for c in MOUTH_CHANNELS)
