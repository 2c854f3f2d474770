"""Flower ServerApp: FedAvg (optionally FedProx) rounds over the registry's `stable` model,
with SecAgg+, client-level DP and a signed, lineage-carrying bundle published per round.

    DefaultWorkflow(fit_workflow=PublishingFitWorkflow(SecAggPlusWorkflow(...) | default))
      └ LegacyContext(strategy = dp_strategy(UpdateFedAvg(...)) | UpdateFedAvg(...))

Clients send updates (see client_app), never weights; `UpdateFedAvg` decodes them, averages
(or hands them to a robust aggregator when SecAgg is off), and adds the mean to the global
weights. After every round that produced a model, `PublishingFitWorkflow` publishes it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mouthpiece.federated import compression
from mouthpiece.federated.client_app import (
    ENCODING_DELTA, ENCODING_DELTA_INT8, ENCODING_ROTATED, KEY_ENCODING, KEY_EPOCHS, KEY_LR,
    KEY_PROX_MU, KEY_QUANT_BITS, KEY_QUANT_RANGE, KEY_ROTATION_SEED, KEY_SEED,
)
from mouthpiece.federated.privacy import ClientDpParams, ClientLevelAccountant
from mouthpiece.federated.task import apply_update, clip_update
from mouthpiece.types import InputError

log = logging.getLogger(__name__)

KEY_CLIPPING_NORM = "clipping_norm"  # the key Flower's fixedclipping_mod reads
SECAGG_QUANT_RANGE_FLOAT = 1 << 22  # Flower's default grid when updates are not 8-bit
Aggregator = Callable[[list[list[np.ndarray]]], list[np.ndarray]]


@dataclass(frozen=True)
class FederationParams:
    """Per-run knobs of the server, validated once."""

    rounds: int = 3
    min_clients: int = 2  # clients needed to start a round (and trained per round)
    fraction_fit: float = 1.0  # share of the available clients asked each round
    local_epochs: int = 1
    lr: float = 1e-3
    proximal_mu: float = 0.0  # FedProx μ (0 = FedAvg)
    clip_norm: float = 0.5  # L2 bound of every client update
    noise_multiplier: float | None = None  # client-level DP (z); None = no DP noise
    dp_delta: float = 1e-5
    population: int | None = None  # clients that could take part (accounting); None = min_clients
    secagg: bool = True
    quantize_bits: int | None = None  # 8: 8-bit updates; None: float32 (SecAgg: 22-bit grid)
    num_shares: float = 1.0  # SecAgg+: share of the sampled clients each key is shared with
    reconstruction_threshold: float = 0.6  # SecAgg+: share of shares needed to unmask
    secagg_timeout_s: float | None = 120.0  # SecAgg+: wait per stage before counting dropouts
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise InputError(f"rounds must be ≥ 1, got {self.rounds}")
        if self.min_clients < (2 if self.secagg else 1):
            raise InputError("SecAgg+ needs at least 2 clients per round"
                             if self.secagg else "a round needs at least 1 client")
        if not 0 < self.fraction_fit <= 1:
            raise InputError(f"fraction_fit must be within (0, 1], got {self.fraction_fit}")
        if not self.clip_norm > 0:
            raise InputError(f"clip_norm must be > 0, got {self.clip_norm}")
        if self.quantize_bits not in (None, 8):
            raise InputError("quantization supports 8 bits (or none)")
        if not 0 < self.reconstruction_threshold <= 1:
            raise InputError("reconstruction_threshold must be within (0, 1]")
        if self.population is not None and self.population < self.min_clients:
            raise InputError("population must be at least min_clients")
        self.dp  # validates the DP numbers

    @property
    def dp(self) -> ClientDpParams | None:
        if self.noise_multiplier is None:
            return None
        return ClientDpParams(self.noise_multiplier, self.clip_norm, self.dp_delta)

    @property
    def encoding(self) -> str:
        if self.quantize_bits is None:
            return ENCODING_DELTA
        return ENCODING_ROTATED if self.secagg else ENCODING_DELTA_INT8

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class RoundRecord:
    """What one round produced (kept by the server; published in the bundle's lineage)."""

    round: int
    clients: int
    failures: int
    epsilon: float | None
    update_norm: float
    metrics: dict = field(default_factory=dict)
    published: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def rotation_seed(run_seed: int, server_round: int) -> int:
    """Public per-round seed of the shared rotation (any value works; fresh per round)."""
    return int(np.random.default_rng([run_seed, server_round, 0x726F74]).integers(2**31))


def _strategy_class():
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvg

    class UpdateFedAvg(FedAvg):
        """FedAvg over client *updates*: decode, clip again (plain path), average (or robust
        aggregation), add to the global weights. Every client weighs 1."""

        def __init__(self, params: FederationParams, weights: list[np.ndarray],
                     round_offset: int = 0, aggregate: Aggregator | None = None) -> None:
            super().__init__(fraction_fit=params.fraction_fit, fraction_evaluate=0.0,
                             min_fit_clients=params.min_clients, min_evaluate_clients=1,
                             min_available_clients=params.min_clients,
                             initial_parameters=ndarrays_to_parameters(weights),
                             accept_failures=True)
            self.params = params
            self.round_offset = round_offset
            self.aggregate = aggregate
            self.shapes = [w.shape for w in weights]
            self.n_params = int(sum(w.size for w in weights))
            self.current = [np.asarray(w, np.float32) for w in weights]
            self.last: RoundRecord | None = None

        def round_config(self, server_round: int) -> dict:
            p = self.params
            config = {KEY_EPOCHS: p.local_epochs, KEY_LR: p.lr, KEY_PROX_MU: p.proximal_mu,
                      KEY_SEED: p.seed * 100003 + self.round_offset + server_round,
                      KEY_CLIPPING_NORM: float(p.clip_norm), KEY_ENCODING: p.encoding,
                      KEY_ROTATION_SEED: rotation_seed(p.seed, self.round_offset + server_round)}
            if p.quantize_bits:
                spec = self.quantization()
                config.update({KEY_QUANT_RANGE: spec.range, KEY_QUANT_BITS: spec.bits})
            return config

        def quantization(self) -> compression.QuantizationSpec:
            return compression.QuantizationSpec.for_clip_norm(
                self.params.clip_norm, self.n_params, self.params.quantize_bits or 8)

        def configure_fit(self, server_round, parameters, client_manager):
            self.current = parameters_to_ndarrays(parameters)
            instructions = super().configure_fit(server_round, parameters, client_manager)
            config = self.round_config(server_round)
            for _, fit_ins in instructions:
                fit_ins.config.update(config)
            return instructions

        def aggregate_fit(self, server_round, results, failures):
            self.last = None
            if not results:
                log.warning("round %d: no client update arrived (%d failures)", server_round,
                            len(failures))
                return None, {}
            seed = rotation_seed(self.params.seed, self.round_offset + server_round)
            decoded = [self._decode(parameters_to_ndarrays(res.parameters), seed)
                       for _, res in results]
            if self.params.secagg:  # SecAgg+ already summed: every result holds the mean
                mean = decoded[0]
            else:  # the server sees each update: bound it here too (a client may skip its clip)
                updates = [clip_update(u, self.params.clip_norm)[0] for u in decoded]
                mean = (self.aggregate or _mean)(updates)
            new = apply_update(self.current, mean)
            metrics = _mean_metrics([res.metrics for _, res in results])
            self.last = RoundRecord(
                round=self.round_offset + server_round, clients=len(results),
                failures=len(failures), epsilon=None,
                update_norm=float(np.sqrt(sum(float(np.sum(m.astype(np.float64) ** 2))
                                              for m in mean))),
                metrics=metrics)
            return ndarrays_to_parameters(new), dict(metrics, clients=len(results))

        def _decode(self, arrays: list[np.ndarray], seed: int) -> list[np.ndarray]:
            encoding = self.params.encoding
            if encoding == ENCODING_DELTA:
                if [a.shape for a in arrays] != self.shapes:
                    raise InputError("a client update does not have the model's shapes")
                return [np.asarray(a, np.float32) for a in arrays]
            vector = arrays[0]
            if len(arrays) != 1 or vector.shape != (compression.padded_size(self.n_params),):
                raise InputError("a client update does not have the encoded update's length")
            if encoding == ENCODING_ROTATED:
                return compression.decode_rotated(vector, self.shapes, seed)
            assert encoding == ENCODING_DELTA_INT8
            return compression.decode_level_sum(vector.astype(np.int64), 1, self.shapes,
                                                self.quantization(), seed)

    return UpdateFedAvg


def _mean(updates: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [np.mean(np.stack(parts), axis=0).astype(np.float32) for parts in zip(*updates)]


def _mean_metrics(all_metrics: list[dict]) -> dict:
    keys = set().union(*all_metrics) if all_metrics else set()
    out = {}
    for key in sorted(keys):
        values = [float(m[key]) for m in all_metrics if key in m]
        out[key] = float(np.mean(values))
    return out


def make_strategy(params: FederationParams, weights: list[np.ndarray], *,
                  round_offset: int = 0, aggregate: Aggregator | None = None):
    """(outer strategy given to Flower, inner UpdateFedAvg). With DP, the outer one is the
    dropout-tolerant client-side fixed-clipping wrapper (`privacy.dp_strategy`)."""
    if aggregate is not None and params.secagg:
        raise InputError("robust aggregation needs each client's update; it cannot run under "
                         "SecAgg+ (turn secure aggregation off to use it)")
    inner = _strategy_class()(params, weights, round_offset, aggregate)
    outer = inner
    if params.dp is not None:
        from mouthpiece.federated.privacy import dp_strategy

        sampled = max(params.min_clients, math.ceil(params.fraction_fit * params.min_clients))
        outer = dp_strategy(inner, params.dp, sampled)
    return outer, inner


def secagg_workflow(params: FederationParams, n_params: int):
    """Flower's SecAgg+ fit workflow on the grid the update encoding needs: 8-bit levels over
    [−r, r] of the rotated update (a 2^16 field holds sums of ≤ 257 clients), or Flower's
    22-bit grid over [−C, C] for float updates."""
    from flwr.server.workflow import SecAggPlusWorkflow

    if params.quantize_bits:
        spec = compression.QuantizationSpec.for_clip_norm(params.clip_norm, n_params,
                                                          params.quantize_bits)
        clipping_range, quant_range = spec.range, spec.levels
        modulus = compression.field_modulus(spec.bits, 257)
    else:  # each coordinate of an update clipped to norm C lies in [−C, C]
        clipping_range, quant_range, modulus = float(params.clip_norm), SECAGG_QUANT_RANGE_FLOAT, 1 << 32
    return SecAggPlusWorkflow(
        num_shares=params.num_shares, reconstruction_threshold=params.reconstruction_threshold,
        max_weight=1.0, clipping_range=clipping_range, quantization_range=quant_range,
        modulus_range=modulus, timeout=params.secagg_timeout_s)


class PublishingFitWorkflow:
    """A fit workflow (Flower's default or SecAgg+) followed by bookkeeping: account the round's
    privacy cost and hand the new global weights to `on_round` (e.g. publish a bundle)."""

    def __init__(self, fit_workflow, inner_strategy, params: FederationParams,
                 accountant: ClientLevelAccountant | None,
                 on_round: Callable[[RoundRecord, list[np.ndarray]], str | None] | None,
                 history: list[RoundRecord]) -> None:
        self.fit_workflow, self.strategy, self.params = fit_workflow, inner_strategy, params
        self.accountant, self.on_round, self.history = accountant, on_round, history

    def __call__(self, grid, context) -> None:
        from flwr.compat.common import recorddict_compat as compat
        from flwr.common import parameters_to_ndarrays
        from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

        self.strategy.last = None
        self.fit_workflow(grid, context)
        record = self.strategy.last
        if record is None:  # the round produced nothing (too few clients, SecAgg halted)
            log.warning("a round ended without a new model; nothing published")
            return
        if self.params.dp is not None and self.accountant is not None:
            record.epsilon = self.accountant.step(self.params.noise_multiplier, record.clients)
        weights = parameters_to_ndarrays(compat.arrayrecord_to_parameters(
            context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True))
        if self.on_round is not None:
            record.published = self.on_round(record, weights)
        self.history.append(record)
        log.info("round %d: %d clients, ε=%s, published %s", record.round, record.clients,
                 record.epsilon, record.published)


def run_rounds(grid, context, params: FederationParams, weights: list[np.ndarray], *,
               round_offset: int = 0, accountant: ClientLevelAccountant | None = None,
               on_round=None, history: list[RoundRecord] | None = None,
               aggregate: Aggregator | None = None) -> list[RoundRecord]:
    """The body of the ServerApp: `params.rounds` rounds from `weights` on `grid` (rounds are
    numbered after `round_offset`, for a resumed run). Returns one RoundRecord a round."""
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.workflow import DefaultWorkflow
    from flwr.server.workflow.default_workflows import default_fit_workflow

    history = history if history is not None else []
    if params.dp is not None and accountant is None:
        accountant = ClientLevelAccountant(params.population or params.min_clients,
                                           params.dp_delta)
    outer, inner = make_strategy(params, weights, round_offset=round_offset, aggregate=aggregate)
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=params.rounds),
                           strategy=outer)
    fit = secagg_workflow(params, inner.n_params) if params.secagg else default_fit_workflow
    DefaultWorkflow(fit_workflow=PublishingFitWorkflow(fit, inner, params, accountant,
                                                       on_round, history))(grid, legacy)
    return history


def make_server_app(params: FederationParams, weights: list[np.ndarray], **kwargs):
    """A ServerApp running `run_rounds(…, params, weights, **kwargs)`."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        run_rounds(grid, context, params, weights, **kwargs)

    return app


__all__ = [
    "Aggregator", "FederationParams", "PublishingFitWorkflow", "RoundRecord", "make_server_app",
    "make_strategy", "rotation_seed", "run_rounds", "secagg_workflow",
]
