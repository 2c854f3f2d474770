"""Whole federations on Flower's in-process runtime: SecAgg+, DP, 8-bit updates, published
rounds with lineage, resume, dropout, and what leaves a client."""

from __future__ import annotations

import numpy as np
import pytest

from mouthpiece.federated import task
from mouthpiece.federated.client_app import REPORTED_METRICS, ClientSettings
from mouthpiece.federated.federation import make_publisher, simulate
from mouthpiece.federated.server_app import FederationParams
from mouthpiece.federated.simulation import WireLog

from .conftest import synthetic_client


def _clients(n=3):
    return [synthetic_client(10 + i, style=1.0 + i) for i in range(n)]


def test_secagg_dp_int8_rounds_are_published_with_lineage_and_resume(registry, server_key):
    params = FederationParams(rounds=2, min_clients=3, secagg=True, quantize_bits=8,
                              noise_multiplier=0.3, clip_norm=0.5, population=30, lr=3e-3)
    base, publisher = make_publisher(registry, server_key.private_path, params=params,
                                     command=["pytest"])
    clients = _clients()
    result = simulate(clients, base, params, publisher=publisher)
    assert [r.round for r in result.rounds] == [1, 2]
    assert [r.clients for r in result.rounds] == [3, 3]
    assert result.rounds[0].epsilon < result.rounds[1].epsilon == result.epsilon
    refs = [r.published for r in result.rounds]
    assert refs == ["motion-tiny-fed@1.1.0", "motion-tiny-fed@1.2.0"]

    first, second = (registry.load(ref) for ref in refs)
    assert first.trusted and second.trusted  # signed by the server key the registry trusts
    stable = registry.load("stable")
    assert first.manifest["parent"]["sha256"] == stable.sha256
    assert second.manifest["parent"] == {"id": first.id, "version": first.version,
                                         "sha256": first.sha256, "release_id": first.release_id}
    lineage = second.manifest["recipe"]["federated"]
    assert lineage["round"] == 2 and lineage["clients"] == 3
    assert lineage["privacy"]["noise_multiplier"] == 0.3
    assert lineage["privacy"]["epsilon"] == pytest.approx(result.epsilon)
    assert lineage["secagg"]["protocol"] == "SecAgg+" and lineage["quantization_bits"] == 8
    assert lineage["base"]["sha256"] == stable.sha256
    from mouthpiece.motion.learned import LearnedMotionModel

    published = task.get_weights(LearnedMotionModel.from_checkpoint(second))
    assert all(np.allclose(a, b) for a, b in zip(published, result.weights))
    assert not np.allclose(published[0], task.get_weights(base)[0])  # the model moved
    assert registry.aliases() == {"stable": "motion-tiny@1.0.0"}  # canary is an admin step

    # A restarted server with a 3-round plan does only round 3, from round 2, same ledger.
    params3 = FederationParams(**{**params.to_dict(), "rounds": 3})
    base, publisher = make_publisher(registry, server_key.private_path, params=params3)
    resumed = simulate(clients, base, params3, publisher=publisher)
    assert resumed.resumed_from == "motion-tiny-fed@1.2.0" and resumed.start_round == 2
    assert [r.round for r in resumed.rounds] == [3]
    third = registry.load(resumed.rounds[0].published)
    assert third.manifest["parent"]["sha256"] == second.sha256
    assert third.manifest["recipe"]["federated"]["privacy"]["epsilon"] > result.epsilon


def _recorder(sent: list):
    """Outermost client mod: keep every reply exactly as it is serialised for the wire."""
    from flwr.common.serde import message_to_proto

    def mod(msg, ctxt, call_next):
        out = call_next(msg, ctxt)
        sent.append((out, message_to_proto(out).SerializeToString()))
        return out

    return mod


@pytest.mark.parametrize("secagg", [False, True], ids=["plain", "secagg"])
def test_only_updates_and_scalar_metrics_leave_a_client(secagg):
    from .conftest import tiny_model

    clients = _clients()

    model = tiny_model(0)
    shapes = [w.shape for w in task.get_weights(model)]
    n_weights = sum(int(np.prod(s)) for s in shapes)
    sent: list = []
    params = FederationParams(rounds=1, min_clients=3, secagg=secagg, clip_norm=0.5)
    simulate(clients, model, params, extra_mods=[_recorder(sent)])
    assert sent
    secagg_keys = {"pk1", "pk2", "dsts", "ctxts", "masked_params", "nids", "shares"}
    for message, wire in sent:
        content = message.content
        assert set(content.array_records) <= {"fitres.parameters"}
        for record in content.array_records.values():
            arrays = [a.numpy() for a in record.values()]
            assert not arrays or [a.shape for a in arrays] == shapes  # the update's shapes only
        for record in content.metric_records.values():
            assert dict(record) == {"num_examples": 1}  # every client weighs 1
        for name, record in content.config_records.items():
            if name == "fitres.metrics":  # the legacy API carries metrics as a config record
                assert set(record) <= set(REPORTED_METRICS)
                assert all(isinstance(v, (int, float)) for v in record.values())
            elif name == "fitres.status":
                assert dict(record) == {"code": 0, "message": "Success"}
            else:
                assert name == "secaggplus_configs" and set(record) <= secagg_keys, name
        assert len(wire) < 16 * n_weights + 4096  # no room for anything but an update
        for client in clients:  # no raw training data, in any byte of any message
            for ex in client.examples:
                for row in (ex.inputs[0], ex.inputs[-1], ex.targets[5]):
                    assert row.astype(np.float32).tobytes() not in wire
                    assert row.astype(np.float64).tobytes() not in wire
    if secagg:  # under SecAgg+ no reply carries an update in the clear
        assert all(not m.content.array_records or
                   all(len(r) == 0 for r in m.content.array_records.values()) for m, _ in sent)


def _dropout_mod(partition: int, stage: str):
    """A client that vanishes at `stage` of the SecAgg+ protocol (its node stops answering)."""
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key

    def mod(msg, ctxt, call_next):
        configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
        if (int(ctxt.node_config["partition-id"]) == partition and configs is not None
                and configs.get(Key.STAGE) == stage):
            raise ConnectionError(f"client {partition} dropped out at {stage}")
        return call_next(msg, ctxt)

    return mod


@pytest.mark.parametrize("stage", ["collect_masked_vectors", "unmask"])
def test_secagg_round_survives_a_third_of_the_clients_dropping_out(stage):
    from .conftest import tiny_model

    model = tiny_model(0)
    start = task.get_weights(model)
    params = FederationParams(rounds=1, min_clients=3, secagg=True, quantize_bits=8,
                              noise_multiplier=0.1, clip_norm=0.5, population=3)
    result = simulate(_clients(), model, params, extra_mods=[_dropout_mod(1, stage)])
    [record] = result.rounds
    expected = 2 if stage == "collect_masked_vectors" else 3  # after masking it still counts
    assert record.clients == expected
    assert task.update_norm(task.update_of(result.weights, start)) > 0
    assert result.epsilon is not None and result.epsilon > 0


def test_a_poisoned_client_is_bounded_by_clipping_without_secagg():
    """A client that skips its own clipping and sends a huge, sign-flipped update: the server
    clips every update it can see, so one client's pull stays within clip_norm / n."""
    from .conftest import tiny_model

    def poison(msg, ctxt, call_next):
        out = call_next(msg, ctxt)
        if int(ctxt.node_config["partition-id"]) == 0 and out.content.array_records:
            for record in out.content.array_records.values():
                for key in list(record):
                    record[key] = type(record[key])(-1e6 * record[key].numpy())
        return out

    params = FederationParams(rounds=1, min_clients=3, secagg=False, clip_norm=0.5)
    clean = simulate(_clients(), tiny_model(0), params)
    poisoned = simulate(_clients(), tiny_model(0), params, extra_mods=[poison])
    # Its update went from u (‖u‖ ≤ C) to at most C the other way: the mean of 3 moves ≤ 2C/3.
    shift = task.update_norm(task.update_of(poisoned.weights, clean.weights))
    assert 0 < shift <= 2 * 0.5 / 3 + 1e-4


def test_wire_bytes_per_client_round_float32_vs_int8():
    from .conftest import tiny_model

    sizes = {}
    for bits in (None, 8):
        wire = WireLog()
        params = FederationParams(rounds=1, min_clients=3, secagg=False, quantize_bits=bits)
        simulate(_clients(), tiny_model(0), params, wire=wire)
        per_client = wire.upload_bytes_per_client_round()
        assert len(per_client) == 3
        sizes[bits] = max(per_client.values())
    assert sizes[None] > 3.0 * sizes[8]


def test_secagg_8_bit_aggregate_matches_the_plain_float_average():
    """Same clients, same seeds: the SecAgg+ round (8-bit grid, masked, packed uint16 field)
    lands where the plain float32 average lands, up to quantization error."""
    from .conftest import tiny_model

    start = task.get_weights(tiny_model(0))
    results = {}
    for secagg, bits in ((False, None), (True, 8)):
        wire = WireLog()
        params = FederationParams(rounds=1, min_clients=3, secagg=secagg, quantize_bits=bits,
                                  clip_norm=0.5, lr=3e-3)
        results[secagg] = (simulate(_clients(), tiny_model(0), params, wire=wire), wire)
    plain, secure = results[False][0], results[True][0]
    step = task.update_norm(task.update_of(plain.weights, start))
    assert step > 0
    assert task.update_norm(task.update_of(secure.weights, plain.weights)) < 0.05 * step
    # SecAgg+ costs four messages a round; the masked vector is 2 bytes per coordinate.
    uploads = results[True][1].upload_bytes_per_client_round()
    n = sum(w.size for w in start)
    from mouthpiece.federated.compression import padded_size

    assert all(2 * padded_size(n) < size < 2 * padded_size(n) + 8192 for size in uploads.values())


def test_a_client_that_requires_secagg_refuses_a_plain_server():
    from .conftest import tiny_model

    sent: list = []
    model = tiny_model(0)
    start = task.get_weights(model)
    params = FederationParams(rounds=1, min_clients=3, secagg=False)
    result = simulate(_clients(), model, params, settings=ClientSettings(secagg=True),
                      extra_mods=[_recorder(sent)])
    assert result.rounds == []  # every client refused: no update, no new model
    assert all(np.array_equal(a, b) for a, b in zip(result.weights, start))
    assert sent == []  # the refusal happens before any reply is built


def test_dp_sgd_clients_report_their_cumulative_epsilon():
    """Per-record DP-SGD inside each client: the ε a client reports covers all its rounds."""
    from mouthpiece.federated.privacy import DpSgdParams

    from .conftest import tiny_model

    params = FederationParams(rounds=2, min_clients=3, secagg=True, clip_norm=0.5)
    settings = ClientSettings(secagg=True, dp_sgd=DpSgdParams(noise_multiplier=1.0), batch=2)
    result = simulate(_clients(), tiny_model(0), params, settings=settings)
    first, second = (r.metrics["epsilon"] for r in result.rounds)
    assert 0 < first < second
