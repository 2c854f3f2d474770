"""Flower ClientApp: a thin adapter from Flower messages to `task` (local fine-tuning).

Outgoing path of a training reply, innermost first:
    local_train → full weights
    fixedclipping_mod   (Flower) clip the update (weights − global) to the round's norm C
    update_encoding_mod (ours)   send the clipped update instead of weights: as float arrays
                                 of the model's shapes, as 8-bit levels of the rotated update
                                 (plain federation), or as the rotated float vector that
                                 SecAgg+ quantizes to 8 bits on its shared grid
    secagg_mod          (ours, around Flower's secaggplus_mod) SecAgg+ when the server runs
                                 it: quantize, add pairwise + private masks, so nothing but
                                 masked integers leaves; a client that requires SecAgg+
                                 refuses a plain request
Only weight-shaped arrays (or their encodings) and the scalar metrics in REPORTED_METRICS are
ever put in a reply; the client's videos, audio, landmarks and training windows stay local.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mouthpiece.federated import compression
from mouthpiece.federated.privacy import DpSgdParams, epsilon_of
from mouthpiece.federated.task import (
    ClientData, evaluate, get_weights, local_train, set_weights, update_of,
)
from mouthpiece.motion.learned import Audio2MouthConfig, LearnedMotionModel, build_network

log = logging.getLogger(__name__)

# Round config keys (sent by the server strategy in every FitIns).
KEY_EPOCHS, KEY_LR, KEY_PROX_MU, KEY_SEED = "local-epochs", "lr", "proximal-mu", "seed"
KEY_ENCODING, KEY_ROTATION_SEED, KEY_QUANT_RANGE, KEY_QUANT_BITS = (
    "encoding", "rotation-seed", "quant-range", "quant-bits")
ENCODING_DELTA = "delta"  # float32 update, the model's shapes
ENCODING_DELTA_INT8 = "delta-int8"  # one vector of 8-bit levels of the rotated update
ENCODING_ROTATED = "rotated"  # one float vector: the rotated update (SecAgg+ quantizes it)
ENCODINGS = (ENCODING_DELTA, ENCODING_DELTA_INT8, ENCODING_ROTATED)
REPORTED_METRICS = ("loss_before", "loss_after", "steps", "epsilon")  # scalars a client sends
LEDGER_RECORD = "dp-sgd-ledger"  # node state (never sent): this client's DP-SGD history


@dataclass(frozen=True)
class ClientSettings:
    """What the data owner decides for their own client."""

    secagg: bool = True  # refuse to train for a server that does not run SecAgg+
    dp_sgd: DpSgdParams | None = None  # per-record DP-SGD on top of the federation's DP
    batch: int = 8


class MotionClient:
    """NumPyClient over one owner's data: fit = fine-tune from the global weights."""

    def __init__(self, model: LearnedMotionModel, data: ClientData, settings: ClientSettings,
                 client_seed: int = 0, ledger: dict | None = None) -> None:
        self.model, self.data, self.settings, self.client_seed = model, data, settings, client_seed
        # Per-record DP-SGD steps of every round so far, {"z": […], "q": […], "steps": […]},
        # kept in the node's own state so `epsilon` covers all rounds this client trained.
        self.ledger = ledger if ledger is not None else {}

    def get_parameters(self, config) -> list[np.ndarray]:
        return get_weights(self.model)

    def fit(self, parameters, config):
        set_weights(self.model, parameters)
        report = local_train(
            self.model, self.data, epochs=int(config.get(KEY_EPOCHS, 1)),
            lr=float(config.get(KEY_LR, 1e-3)), prox_mu=float(config.get(KEY_PROX_MU, 0.0)),
            global_weights=parameters, dp=self.settings.dp_sgd,
            seed=int(config.get(KEY_SEED, 0)) * 1000 + self.client_seed,
            batch=self.settings.batch)
        metrics = {k: v for k, v in report.metrics().items() if k in REPORTED_METRICS}
        if report.epsilon is not None:  # ε of all this client's DP-SGD rounds together
            for key, value in (("z", report.dp_noise_multiplier), ("q", report.dp_sample_rate),
                               ("steps", report.steps)):
                self.ledger[key] = list(self.ledger.get(key, [])) + [value]
            metrics["epsilon"] = epsilon_of(
                list(zip(self.ledger["z"], self.ledger["q"], self.ledger["steps"])),
                self.settings.dp_sgd.delta)
        # Weight 1 for every client: an unweighted mean (client-level DP needs each client's
        # influence bounded by the clip, and the example count would leak data volume).
        return get_weights(self.model), 1, metrics

    def evaluate(self, parameters, config):
        set_weights(self.model, parameters)
        return float(evaluate(self.model, self.data)), 1, {}


def update_encoding_mod(msg, ctxt, call_next):
    """Flower mod: turn the (clipped) trained weights of a TRAIN reply into the encoded update
    the round asks for (KEY_ENCODING in the round config)."""
    from flwr.app.message_type import MessageType
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat

    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, ctxt)
    fit_ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    encoding = str(fit_ins.config.get(KEY_ENCODING, ENCODING_DELTA))
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown update encoding {encoding!r}")
    global_weights = parameters_to_ndarrays(fit_ins.parameters)
    out = call_next(msg, ctxt)
    if out.has_error():
        return out
    fit_res = compat.recorddict_to_fitres(out.content, keep_input=True)
    update = update_of(parameters_to_ndarrays(fit_res.parameters), global_weights)
    arrays = encode(update, encoding, fit_ins.config)
    fit_res.parameters = ndarrays_to_parameters(arrays)
    out.content = compat.fitres_to_recorddict(fit_res, keep_input=True)
    return out


def encode(update: list[np.ndarray], encoding: str, config) -> list[np.ndarray]:
    """The arrays a client sends for `update` under `encoding` (see ENCODING_*)."""
    if encoding == ENCODING_DELTA:
        return update
    seed = int(config[KEY_ROTATION_SEED])
    if encoding == ENCODING_ROTATED:
        return [compression.rotate_update(update, seed)]
    spec = compression.QuantizationSpec(float(config[KEY_QUANT_RANGE]),
                                        int(config[KEY_QUANT_BITS]))
    return [compression.encode_update(update, spec, seed, np.random.default_rng())]


def secagg_mod(required: Callable[[object], bool]):
    """Flower mod: run SecAgg+ (Flower's `secaggplus_mod`) when the server asks for it; when it
    does not and `required(context)` holds, refuse the request — a client that insists on
    secure aggregation never sends an update in the clear."""
    from flwr.app.message_type import MessageType
    from flwr.client.mod import secaggplus_mod
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

    def mod(msg, ctxt, call_next):
        if msg.metadata.message_type != MessageType.TRAIN:
            return call_next(msg, ctxt)
        if RECORD_KEY_CONFIGS in msg.content.config_records:
            return compact_masked_vectors(secaggplus_mod(msg, ctxt, call_next), ctxt)
        if required(ctxt):
            raise PermissionError("this client only trains under SecAgg+ and the server sent "
                                  "a plain training request; nothing was sent")
        return call_next(msg, ctxt)

    return mod


def compact_masked_vectors(reply, ctxt):
    """Send SecAgg+'s masked vectors as the smallest unsigned integers that hold the field
    (uint16 for the 2^16 field of 8-bit updates) instead of Flower's int64.

    Masked values are field elements in [0, modulus); the server adds the vectors element-wise
    and reduces with `& (modulus − 1)`, so sums that wrap at 2^16 (or 2^32) are still exact
    modulo the power-of-two field. Cuts the upload 4× (8-bit) or 2× (float updates)."""
    from flwr.common import bytes_to_ndarray, ndarray_to_bytes
    from flwr.common.secure_aggregation.secaggplus_constants import (
        RECORD_KEY_CONFIGS, RECORD_KEY_STATE, Key,
    )

    if reply.has_error():
        return reply
    configs = reply.content.config_records.get(RECORD_KEY_CONFIGS)
    if configs is None or Key.MASKED_PARAMETERS not in configs:
        return reply
    modulus = int(ctxt.state.config_records[RECORD_KEY_STATE]["mod_range"])
    dtype = next((t for t in (np.uint8, np.uint16, np.uint32)
                  if modulus - 1 <= np.iinfo(t).max), None)
    if dtype is None:
        return reply
    configs[Key.MASKED_PARAMETERS] = [
        ndarray_to_bytes(bytes_to_ndarray(b).astype(dtype)) for b in configs[Key.MASKED_PARAMETERS]]
    return reply


def make_client_app(data_for: Callable[[object], ClientData], config: Audio2MouthConfig,
                    settings: ClientSettings = ClientSettings(), *,
                    extra_mods: list | None = None):
    """A ClientApp whose client trains on `data_for(context)` (the data of the node that runs
    it). `extra_mods` go outermost (e.g. a recorder of outgoing messages in tests)."""
    return client_app_for(lambda context: (data_for(context), config, settings),
                          lambda context: settings.secagg, extra_mods=extra_mods)


def client_app_for(setup: Callable[[object], tuple[ClientData, Audio2MouthConfig, ClientSettings]],
                   secagg_required: Callable[[object], bool], *, extra_mods: list | None = None):
    """A ClientApp whose node's (data, model config, settings) come from `setup(context)`."""
    from flwr.client.mod import fixedclipping_mod
    from flwr.clientapp import ClientApp

    def client_fn(context):
        from flwr.app import ConfigRecord

        data, config, settings = setup(context)
        model = LearnedMotionModel(config, build_network(config))
        seed = int(context.node_config.get("partition-id", context.node_id % 100003))
        if LEDGER_RECORD not in context.state.config_records:
            context.state.config_records[LEDGER_RECORD] = ConfigRecord()
        return _as_client(model, data, settings, seed,
                          context.state.config_records[LEDGER_RECORD])

    mods = list(extra_mods or []) + [secagg_mod(secagg_required), update_encoding_mod,
                                     fixedclipping_mod]
    return ClientApp(client_fn=client_fn, mods=mods)


def _as_client(model, data, settings, seed, ledger):
    """Wrap MotionClient as a Flower NumPyClient (Flower imported on call only)."""
    from flwr.client import NumPyClient

    class _Client(NumPyClient):
        def __init__(self):
            self.inner = MotionClient(model, data, settings, seed, ledger)

        def get_parameters(self, config):
            return self.inner.get_parameters(config)

        def fit(self, parameters, config):
            return self.inner.fit(parameters, config)

        def evaluate(self, parameters, config):
            return self.inner.evaluate(parameters, config)

    return _Client().to_client()
