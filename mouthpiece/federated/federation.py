"""Running a federation: base model → rounds → published bundles, in simulation or for real.

`simulate` runs the ServerApp and one ClientApp per client on this machine (see
`simulation`). `server_setup` prepares what a deployed ServerApp needs (base `stable` from the
registry, resume point, publisher, accountant) — the same pieces, so a simulated and a
deployed federation publish identical lineage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mouthpiece.checkpoints import Registry
from mouthpiece.federated.client_app import ClientSettings, make_client_app
from mouthpiece.federated.privacy import ClientLevelAccountant
from mouthpiece.federated.publish import RoundPublisher, default_name
from mouthpiece.federated.server_app import Aggregator, FederationParams, RoundRecord, run_rounds
from mouthpiece.federated.simulation import WireLog
from mouthpiece.federated.simulation import run as run_engine
from mouthpiece.federated.task import ClientData, get_weights
from mouthpiece.motion.learned import ARCHITECTURE, LearnedMotionModel
from mouthpiece.types import InputError

log = logging.getLogger(__name__)


@dataclass
class FederationResult:
    """What a run produced: the final global weights and one record per completed round."""

    weights: list[np.ndarray]
    rounds: list[RoundRecord] = field(default_factory=list)
    start_round: int = 0  # rounds already published before this run (resume)
    resumed_from: str | None = None
    epsilon: float | None = None
    wire: WireLog | None = None

    def to_dict(self) -> dict:
        return {"start_round": self.start_round, "resumed_from": self.resumed_from,
                "rounds": [r.to_dict() for r in self.rounds], "epsilon": self.epsilon,
                "published": [r.published for r in self.rounds if r.published]}


@dataclass
class ServerSetup:
    """Everything a ServerApp needs for one (possibly resumed) run."""

    weights: list[np.ndarray]
    round_offset: int
    rounds_left: int
    accountant: ClientLevelAccountant | None
    publisher: RoundPublisher | None
    resumed_from: str | None


def server_setup(params: FederationParams, base: LearnedMotionModel, *,
                 publisher: RoundPublisher | None = None) -> ServerSetup:
    """Start from `base`, or from the publisher's last round (params.rounds counts all rounds
    of the federation, so a restarted run only does the ones left)."""
    weights, offset, resumed, ledger = get_weights(base), 0, None, None
    point = publisher.resume_point() if publisher is not None else None
    if point is not None:
        weights, offset, resumed = get_weights(point.model), point.round, point.ref
        ledger = (point.lineage.get("privacy") or {}).get("accountant")
        log.info("resuming federation from %s (round %d)", point.ref, point.round)
    accountant = None
    if params.dp is not None:
        accountant = ClientLevelAccountant(params.population or params.min_clients,
                                           params.dp_delta)
        if ledger:
            accountant = ClientLevelAccountant.from_dict(ledger)
    return ServerSetup(weights, offset, max(0, params.rounds - offset), accountant, publisher,
                       resumed)


def round_lineage(params: FederationParams, record: RoundRecord,
                  accountant: ClientLevelAccountant | None) -> dict:
    """The `recipe.federated` section of a round's bundle (lineage)."""
    privacy = None
    if params.dp is not None and accountant is not None:
        privacy = {"level": "client", "noise_multiplier": params.noise_multiplier,
                   "clip_norm": params.clip_norm, "delta": params.dp_delta,
                   "epsilon": record.epsilon, "population": accountant.population,
                   "accountant": accountant.to_dict(), "accounting": "RDP (Opacus)"}
    return {"round": record.round, "clients": record.clients, "failures": record.failures,
            "clip_norm": params.clip_norm, "privacy": privacy,
            "secagg": ({"protocol": "SecAgg+", "num_shares": params.num_shares,
                        "reconstruction_threshold": params.reconstruction_threshold}
                       if params.secagg else None),
            "quantization_bits": params.quantize_bits, "proximal_mu": params.proximal_mu,
            "local_epochs": params.local_epochs, "lr": params.lr,
            "metrics": record.metrics}


def server_main(params: FederationParams, setup: ServerSetup, *,
                history: list[RoundRecord], last: dict, aggregate: Aggregator | None = None):
    """The ServerApp's main(grid, context) for `setup`; `last["weights"]` follows the newest
    global weights, `history` receives the rounds."""
    remaining = FederationParams(**{**params.to_dict(), "rounds": max(1, setup.rounds_left)})

    def on_round(record: RoundRecord, weights: list[np.ndarray]) -> str | None:
        last["weights"] = weights
        if setup.publisher is None:
            return None
        return setup.publisher.publish(record.round, weights,
                                       round_lineage(params, record, setup.accountant))

    def main(grid, context) -> None:
        if setup.rounds_left == 0:
            log.info("federation already has its %d rounds; nothing to do", setup.round_offset)
            return
        run_rounds(grid, context, remaining, setup.weights, round_offset=setup.round_offset,
                   accountant=setup.accountant, on_round=on_round, history=history,
                   aggregate=aggregate)

    return main


def deployed_main(params: FederationParams, base: LearnedMotionModel,
                  publisher: RoundPublisher | None, *, aggregate: Aggregator | None = None):
    """main(grid, context) of a deployed ServerApp (resumes from the publisher's last round)."""
    setup = server_setup(params, base, publisher=publisher)
    return server_main(params, setup, history=[], last={"weights": setup.weights},
                       aggregate=aggregate)


def simulate(clients: list[ClientData], base: LearnedMotionModel, params: FederationParams, *,
             settings: ClientSettings | None = None, publisher: RoundPublisher | None = None,
             engine: str = "inprocess", aggregate: Aggregator | None = None,
             extra_mods: list | None = None, wire: WireLog | None = None) -> FederationResult:
    """A whole federation on this machine: client i (partition-id i) trains on `clients[i]`.
    `settings` default: SecAgg+ required exactly when `params.secagg`."""
    if len(clients) < params.min_clients:
        raise InputError(f"{len(clients)} clients cannot fill rounds of {params.min_clients}")
    settings = settings or ClientSettings(secagg=params.secagg)
    setup = server_setup(params, base, publisher=publisher)
    history: list[RoundRecord] = []
    last = {"weights": setup.weights}
    result = FederationResult(setup.weights, history, setup.round_offset, setup.resumed_from,
                              wire=wire)
    if setup.rounds_left == 0:
        log.info("federation already has %d rounds; nothing to do", setup.round_offset)
        return result
    from flwr.serverapp import ServerApp

    server = ServerApp()
    server.main()(server_main(params, setup, history=history, last=last, aggregate=aggregate))
    client = make_client_app(lambda context: clients[int(context.node_config["partition-id"])],
                             base.config, settings, extra_mods=extra_mods)
    run_engine(server, client, len(clients), engine, wire)
    result.weights = last["weights"]
    result.epsilon = setup.accountant.epsilon() if setup.accountant is not None else None
    return result


def open_base(registry: Registry, ref: str = "stable"):
    """(model, verified checkpoint) of the registry's `ref` (default: the `stable` alias)."""
    loaded = registry.load(ref, architecture=ARCHITECTURE)
    return LearnedMotionModel.from_checkpoint(loaded), loaded


def make_publisher(registry: Registry, key: str | Path, base_ref: str = "stable", *,
                   name: str | None = None, command: list[str] | None = None,
                   params: FederationParams | None = None):
    """(base model, publisher) for a federation over `base_ref` in `registry`."""
    model, loaded = open_base(registry, base_ref)
    publisher = RoundPublisher(registry, key, name or default_name(loaded.id), model, loaded,
                               command or [], params.to_dict() if params else {})
    return model, publisher
