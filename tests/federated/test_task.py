"""The federated ML without Flower: client data from real video, weights, updates, local training."""

from __future__ import annotations

import numpy as np
import pytest

from mouthpiece.federated import task
from mouthpiece.federated.privacy import DpSgdParams
from mouthpiece.types import InputError

from .conftest import synthetic_client, tiny_model


def test_weights_round_trip_and_refuse_wrong_shapes():
    model = tiny_model(0)
    weights = task.get_weights(model)
    assert [w.shape for w in weights] == [tuple(t.shape) for t in model.network.state_dict().values()]
    other = tiny_model(1)
    task.set_weights(other, weights)
    assert all(np.array_equal(a, b) for a, b in zip(task.get_weights(other), weights))
    with pytest.raises(InputError, match="shape"):
        task.set_weights(other, [w.T if w.ndim == 2 else w for w in weights])
    with pytest.raises(InputError, match="weight arrays"):
        task.set_weights(other, weights[:-1])
    bad = [w.copy() for w in weights]
    bad[0][0, 0] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        task.set_weights(other, bad)


def test_clip_update_bounds_the_norm_and_keeps_the_direction():
    rng = np.random.default_rng(0)
    update = [rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=7).astype(np.float32)]
    norm = task.update_norm(update)
    clipped, before = task.clip_update(update, norm / 10)
    assert before == pytest.approx(norm)
    assert task.update_norm(clipped) == pytest.approx(norm / 10, rel=1e-5)
    assert np.allclose(clipped[0] * 10, update[0], atol=1e-5)
    same, _ = task.clip_update(update, norm * 2)  # below the bound: unchanged
    assert all(np.array_equal(a, b) for a, b in zip(same, update))
    with pytest.raises(InputError):
        task.clip_update(update, 0.0)
    assert task.update_of(task.apply_update(update, update), update)[1].tolist() == update[1].tolist()


def test_local_training_lowers_the_clients_motion_error():
    model, data = tiny_model(0), synthetic_client(3, clips=3)
    report = task.local_train(model, data, epochs=6, lr=5e-3, seed=0)
    assert report.records == 6 and report.steps == 6  # 3 clips × 2 windows, batch 8
    assert report.loss_after < 0.9 * report.loss_before
    assert report.loss_after == pytest.approx(task.evaluate(model, data))
    assert set(report.metrics()) >= {"loss_before", "loss_after", "steps"}


def test_same_seed_same_weights():
    data = synthetic_client(4)
    a, b = tiny_model(0), tiny_model(0)
    task.local_train(a, data, epochs=2, seed=5)
    task.local_train(b, data, epochs=2, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(task.get_weights(a), task.get_weights(b)))


def test_fedprox_term_keeps_the_update_closer_to_the_global_weights():
    data = synthetic_client(5, style=3.0)
    start = task.get_weights(tiny_model(0))
    norms = {}
    for mu in (0.0, 50.0):
        model = tiny_model(0)
        task.local_train(model, data, epochs=4, lr=5e-3, prox_mu=mu, global_weights=start, seed=0)
        norms[mu] = task.update_norm(task.update_of(task.get_weights(model), start))
    assert norms[50.0] < 0.7 * norms[0.0]


def test_dp_sgd_trains_with_opacus_and_reports_epsilon():
    model, data = tiny_model(0), synthetic_client(6, clips=4)
    start = task.get_weights(model)
    report = task.local_train(model, data, epochs=2, lr=3e-3, seed=0, batch=4,
                              dp=DpSgdParams(noise_multiplier=1.0, max_grad_norm=1.0))
    assert report.dp_sample_rate == pytest.approx(0.5)  # 8 windows, expected batch 4
    assert 0 < report.epsilon < 50 and report.dp_delta == 1e-5
    assert task.update_norm(task.update_of(task.get_weights(model), start)) > 0
    # Stronger noise, same steps → smaller ε.
    quieter = task.local_train(tiny_model(0), data, epochs=2, seed=0, batch=4,
                               dp=DpSgdParams(noise_multiplier=4.0, max_grad_norm=1.0))
    assert quieter.epsilon < report.epsilon


def test_base_model_from_the_registry_and_from_a_bundle_path(registry, tmp_path):
    stable = task.load_base_model("stable", registry=registry)
    assert stable.checkpoint["id"] == "motion-tiny" and stable.checkpoint["trusted"]
    path = registry.resolve("stable")
    from_path = task.load_base_model(path, trust_dir=registry.trust_dir)
    assert all(np.array_equal(a, b) for a, b in zip(task.get_weights(stable),
                                                    task.get_weights(from_path)))
    with pytest.raises(InputError, match="not signed by a trusted key"):
        task.load_base_model(path, trust_dir=tmp_path / "empty-trust")
    with pytest.raises(InputError, match="not found"):
        task.load_base_model(tmp_path / "nowhere")


def test_client_data_from_a_real_talking_video(talking_video):
    data = task.build_client_data([talking_video])
    assert data.summary() == {"clips": 1, "frames": 50, "seconds": 2.0}
    [clip] = data.examples
    assert clip.inputs.shape == (50, 87) and clip.targets.shape == (50, 7)
    jaw = clip.targets[:, 0]
    assert jaw.max() - jaw.min() > 0.3  # the fitted jaw follows the rendered speech
    model = tiny_model(0)
    x, y = task.training_windows(model, data)
    assert x.shape == (1, 50, 87) and y.shape == (1, 50, 7)
    with pytest.raises(InputError, match="not found"):
        task.build_client_data([talking_video.with_name("missing.mp4")])
    with pytest.raises(InputError, match="at least one"):
        task.build_client_data([])
