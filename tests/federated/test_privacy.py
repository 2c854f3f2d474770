"""Privacy accounting: client-level DP over rounds (RDP), DP parameters validated."""

from __future__ import annotations

import pytest

from mouthpiece.federated.privacy import (
    ClientDpParams, ClientLevelAccountant, DpSgdParams, epsilon_for, noise_for_epsilon,
)
from mouthpiece.types import InputError


def test_client_level_dp_needs_many_clients():
    # 10 clients, all in every round, z = 1, 50 rounds: no sampling amplification.
    assert 50 < epsilon_for(1.0, sample_rate=1.0, steps=50) < 60
    assert 4.2 < noise_for_epsilon(8.0, sample_rate=1.0, steps=50) < 4.7
    # 100 clients sampled at q = 0.1 for 100 rounds.
    assert 7.0 < epsilon_for(1.0, sample_rate=0.1, steps=100) < 8.5


def test_epsilon_grows_every_round_and_survives_a_restart():
    accountant = ClientLevelAccountant(population=20, delta=1e-5)
    values = [accountant.step(1.5, n_clients=5) for _ in range(4)]
    assert values == sorted(values) and values[0] > 0
    assert values[-1] == pytest.approx(epsilon_for(1.5, sample_rate=0.25, steps=4))
    accountant.step(1.5, n_clients=4)  # a round with a dropout: another sampling rate
    restored = ClientLevelAccountant.from_dict(accountant.to_dict())
    assert restored.rounds == 5 and restored.epsilon() == pytest.approx(accountant.epsilon())
    assert restored.history == [(1.5, 0.25, 4), (1.5, 0.2, 1)]


def test_dp_parameters_are_validated():
    assert ClientDpParams(1.0, 0.5).noise_std(10) == pytest.approx(0.05)
    for bad in (lambda: ClientDpParams(0.0, 1.0), lambda: ClientDpParams(1.0, -1.0),
                lambda: ClientDpParams(1.0, 1.0, delta=1.0), lambda: DpSgdParams(-1.0),
                lambda: ClientLevelAccountant(population=0)):
        with pytest.raises(InputError):
            bad()
