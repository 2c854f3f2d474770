"""A poisoned client: bounded by clipping under FedAvg, neutralised by robust aggregation.

Honest updates are real: the tiny model fine-tuned on nine clients' data. The poisoned
client sends a huge update, a sign-flipped one, or one aimed at a few weights. Rounds go
through the server's own Flower strategy (`server_app.make_strategy`), which decodes and clips
every update, then aggregates. After clipping, a huge update in a random direction is just
one more update of norm C (no statistic can tell it apart, and it pulls no harder than an
honest client); what robust aggregation adds is dropping updates that stand out per
coordinate: aimed at a few weights, or against the honest direction.
"""

from __future__ import annotations

import numpy as np
import pytest

from mouthpiece.federated import robust, task
from mouthpiece.federated.server_app import FederationParams, make_strategy
from mouthpiece.types import InputError

from .conftest import synthetic_client, tiny_model

N_HONEST = 9
CLIP = 0.05


@pytest.fixture(scope="module")
def honest_updates() -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """(global weights, nine real client updates from one local epoch each)."""
    base = tiny_model(0)
    weights = task.get_weights(base)
    updates = []
    for k in range(N_HONEST):
        model = tiny_model(0)
        task.local_train(model, synthetic_client(100 + k, style=1.0 + 0.1 * k), epochs=1,
                         lr=3e-3, seed=k)
        updates.append(task.update_of(task.get_weights(model), weights))
    return weights, updates


def _norm(arrays: list[np.ndarray]) -> float:
    return task.update_norm(arrays)


def _diff(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
    return [x - y for x, y in zip(a, b)]


def _server_round(weights, updates, aggregate=None) -> list[np.ndarray]:
    """One round of the real server strategy (no SecAgg): the aggregated update it applies."""
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

    params = FederationParams(secagg=False, clip_norm=CLIP, min_clients=len(updates))
    _, inner = make_strategy(params, weights, aggregate=aggregate)
    results = [(None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(u), 1, {}))
               for u in updates]
    parameters, _ = inner.aggregate_fit(1, results, [])
    return task.update_of(parameters_to_ndarrays(parameters), weights)


def _poison(updates: list[list[np.ndarray]], kind: str) -> list[np.ndarray]:
    """"huge": a random direction at 10⁴ × an honest update's norm; "flip": the honest mean
    reversed and blown up 50×; "targeted": only the output layer's biases, pushed up."""
    if kind == "huge":
        rng = np.random.default_rng(7)
        noise = [rng.normal(size=u.shape).astype(np.float32) for u in updates[0]]
        scale = 1e4 * _norm(updates[0]) / _norm(noise)
        return [scale * n for n in noise]
    if kind == "targeted":
        out = [np.zeros_like(u) for u in updates[0]]
        out[-1][:] = 1.0
        return out
    return [-50.0 * m for m in robust.mean(updates)]


@pytest.mark.parametrize("kind", ["huge", "flip", "targeted"])
def test_clipping_bounds_a_poisoned_client_to_clip_norm_over_n(honest_updates, kind):
    weights, honest = honest_updates
    poisoned = _poison(honest, kind)
    n = N_HONEST + 1
    attacked = _server_round(weights, honest + [poisoned])
    abstained = _server_round(weights, honest + [[np.zeros_like(w) for w in weights]])
    # What the poisoned client can add to the round is its clipped update over N.
    assert _norm(_diff(attacked, abstained)) <= CLIP / n * (1 + 1e-4)
    # Against an honest round it is at most (C + C)/N: its update, and the honest share it
    # displaced.
    fair = _server_round(weights, honest + [honest[0]])
    assert _norm(_diff(attacked, fair)) <= 2 * CLIP / n * (1 + 1e-4)
    # Without clipping the same client would move the round many times further.
    unclipped = robust.mean(honest + [poisoned])
    assert _norm(_diff(unclipped, robust.mean(honest))) > 20 * CLIP / n


def _progress(weights, honest, poisoned, aggregate) -> float:
    """How far the poisoned client pushes the round toward its own update: the shift of the
    aggregate, against a round where an honest client took its place, along its direction."""
    attacked = _server_round(weights, honest + [poisoned], aggregate=aggregate)
    fair = _server_round(weights, honest + [honest[0]], aggregate=aggregate)
    unit = [p / _norm(poisoned) for p in poisoned]
    return sum(float(np.sum(d * u)) for d, u in zip(_diff(attacked, fair), unit))


@pytest.mark.parametrize("name", ["trimmed-mean", "median"])
def test_robust_aggregation_neutralises_a_targeted_poisoned_client(honest_updates, name):
    """The poisoned client spends its whole (clipped) budget on the output biases — "keep
    the mouth open". FedAvg moves them by C/N; a coordinate-wise robust statistic drops it."""
    weights, honest = honest_updates
    poisoned = _poison(honest, "targeted")
    fedavg = _progress(weights, honest, poisoned, robust.mean)
    assert fedavg == pytest.approx(CLIP / (N_HONEST + 1), rel=0.2)
    assert _progress(weights, honest, poisoned, robust.make_aggregator(name)) < 0.1 * fedavg


def test_robust_aggregation_damps_a_sign_flipped_client(honest_updates):
    weights, honest = honest_updates
    poisoned = _poison(honest, "flip")
    fedavg = _progress(weights, honest, poisoned, robust.mean)
    assert 0 < fedavg <= 2 * CLIP / (N_HONEST + 1) * (1 + 1e-4)
    assert _progress(weights, honest, poisoned, robust.median) < 0.2 * fedavg
    assert _progress(weights, honest, poisoned, robust.make_aggregator("trimmed-mean")) \
        < 0.75 * fedavg


@pytest.mark.parametrize("name", ["trimmed-mean", "median"])
def test_robust_statistics_stay_inside_the_honest_range_without_clipping(honest_updates, name):
    """Even unclipped, a huge update cannot drag a coordinate outside the honest clients'
    own range (the trimmed mean cuts at least one value from each end here); FedAvg can."""
    _, honest = honest_updates
    huge = _poison(honest, "huge")
    aggregate = robust.make_aggregator(name)(honest + [huge])
    inside = []
    for j, part in enumerate(aggregate):
        stacked = np.stack([u[j] for u in honest])
        inside.append(np.all((part >= stacked.min(0) - 1e-7) & (part <= stacked.max(0) + 1e-7)))
    assert all(inside)
    naive = robust.mean(honest + [huge])
    assert _norm(naive) > 100 * max(_norm(u) for u in honest)


def test_trimmed_mean_and_median_are_flowers_statistics():
    rng = np.random.default_rng(0)
    updates = [[rng.normal(size=(3, 4)).astype(np.float32)] for _ in range(10)]
    stacked = np.stack([u[0] for u in updates])
    assert np.allclose(robust.median(updates)[0], np.median(stacked, axis=0))
    ordered = np.sort(stacked, axis=0)[2:8]  # beta 0.2 of 10: two cut from each end
    assert np.allclose(robust.trimmed_mean(updates, 0.2)[0], ordered.mean(axis=0), atol=1e-6)
    assert robust.trimmed_per_side(10, 0.2) == 2


def test_robust_aggregation_cannot_run_under_secagg(honest_updates):
    weights, _ = honest_updates
    with pytest.raises(InputError, match="SecAgg"):
        make_strategy(FederationParams(secagg=True), weights,
                      aggregate=robust.make_aggregator("median"))


def test_bad_aggregator_settings_are_refused():
    with pytest.raises(InputError, match="unknown aggregator"):
        robust.make_aggregator("krum-ish")
    with pytest.raises(InputError, match="trimmed share"):
        robust.make_aggregator("trimmed-mean", beta=0.5)
    with pytest.raises(InputError, match="shape"):
        robust.mean([[np.zeros(3)], [np.zeros(4)]])
    with pytest.raises(InputError, match="no client update"):
        robust.median([])

