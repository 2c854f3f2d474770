"""`mouthpiece fl …`: federated personalization on Flower (thin adapter).

    fl client   --videos DIR [--opt-in --superlink HOST:PORT …] [--keep-local OUT --key KEY]
    fl simulate --clients N --rounds R [--videos DIR] [--dp Z] [--secagg] [--quantize] …
    fl server   --superlink HOST:PORT --key KEY --rounds R --min-clients K [--dp Z] …
    fl publish  --ref ID@VERSION [--alias canary]

Refusals raise `InputError` (→ exit 2). See docs/federated.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_DATA_DIR = Path("data")
EXIT_OK = 0


def register(subparsers) -> None:
    fl = subparsers.add_parser("fl", help="federated personalization (Flower): client, simulate, "
                                          "server, publish")
    sub = fl.add_subparsers(dest="fl_command", required=True)

    p = sub.add_parser("client", help="build private training data from your videos; optionally "
                                      "keep a personal checkpoint and/or join a federation")
    p.add_argument("--videos", required=True, help="folder of your talking videos (with audio)")
    p.add_argument("--opt-in", action="store_true",
                   help="join the federation (without it nothing is ever sent anywhere)")
    p.add_argument("--superlink", help="SuperLink Fleet API address HOST:PORT (with --opt-in)")
    p.add_argument("--keep-local", metavar="OUT_BUNDLE",
                   help="fine-tune locally and write a personal checkpoint bundle here")
    p.add_argument("--key", help="your signing key for --keep-local (KEYDIR/private.pem)")
    p.add_argument("--base", default="stable",
                   help="base model: registry alias / id@version, or a bundle path (default: stable, "
                        "else the shipped model)")
    p.add_argument("--epochs", type=int, default=3, help="local epochs for --keep-local")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate for --keep-local")
    p.add_argument("--dp-sgd-noise", type=float, default=0.0,
                   help="per-record DP-SGD noise multiplier inside this client (0 = off)")
    p.add_argument("--allow-plain", action="store_true",
                   help="also train for servers without SecAgg+ (your update is then visible to them)")
    p.add_argument("--root-certificates", help="CA certificate of the SuperLink (TLS)")
    p.add_argument("--insecure", action="store_true", help="no TLS (loopback tests only)")
    p.add_argument("--auth-key", help="this SuperNode's private key (node authentication)")
    p.add_argument("--port", type=int, help="local port of this SuperNode's ClientApp API")
    p.add_argument("--work-dir", help="private folder for the training pairs (default: "
                                      "DATA_DIR/fl-client)")
    _data_options(p)
    p.set_defaults(func=client_command)

    p = sub.add_parser("simulate", help="run a whole federation on this machine")
    p.add_argument("--clients", type=int, required=True, help="number of clients")
    p.add_argument("--rounds", type=int, required=True, help="federated rounds")
    p.add_argument("--videos", help="folder with one sub-folder of videos per client (default: "
                                    "the simulated population of styled speakers)")
    p.add_argument("--holdout", type=int, default=0,
                   help="clients kept out of training; their motion error is reported")
    p.add_argument("--engine", choices=("inprocess", "ray"), default="inprocess",
                   help="simulation engine (default inprocess; ray: Flower's Ray runtime)")
    p.add_argument("--base", default="stable", help="base model in the registry (default stable)")
    p.add_argument("--key", help="server signing key: publish every round into the registry")
    p.add_argument("--name", help="federation checkpoint id (default: <base id>-fed)")
    _federation_options(p)
    _data_options(p)
    p.set_defaults(func=simulate_command)

    p = sub.add_parser("server", help="run the federation on a SuperLink (real deployment)")
    p.add_argument("--superlink", required=True,
                   help="SuperLink Control API address HOST:PORT (same port as its Fleet API)")
    p.add_argument("--key", required=True, help="server signing key for the published rounds")
    p.add_argument("--rounds", type=int, required=True, help="rounds of the federation in total "
                                                             "(a restarted server does the rest)")
    p.add_argument("--min-clients", type=int, default=2, help="clients needed for a round")
    p.add_argument("--base", default="stable", help="base model in the registry (default stable)")
    p.add_argument("--name", help="federation checkpoint id (default: <base id>-fed)")
    p.add_argument("--root-certificates", help="CA certificate of the SuperLink (TLS)")
    p.add_argument("--insecure", action="store_true", help="no TLS (loopback tests only)")
    p.add_argument("--work-dir", help="folder for the Flower App and CLI config "
                                      "(default: DATA_DIR/fl-server)")
    _federation_options(p)
    _data_options(p)
    p.set_defaults(func=server_command)

    p = sub.add_parser("publish", help="admin: point an alias (canary) at a federated round")
    p.add_argument("--ref", required=True, help="published round, id@version")
    p.add_argument("--alias", default="canary", help="alias to move (default canary)")
    _data_options(p)
    p.set_defaults(func=publish_command)


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                   help="data folder: registry in DATA_DIR/checkpoints, trust in DATA_DIR/trust")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _federation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dp", type=float, metavar="Z", help="client-level DP noise multiplier")
    p.add_argument("--clip", type=float, default=0.5, help="L2 bound of each client update")
    p.add_argument("--population", type=int, help="clients that could take part (DP accounting)")
    p.add_argument("--secagg", action=argparse.BooleanOptionalAction, default=True,
                   help="SecAgg+ secure aggregation (default on)")
    p.add_argument("--quantize", action="store_true", help="8-bit updates")
    p.add_argument("--prox-mu", type=float, default=0.0, help="FedProx μ (0 = FedAvg)")
    p.add_argument("--epochs", type=int, default=1, help="local epochs per round")
    p.add_argument("--lr", type=float, default=1e-3, help="local learning rate")
    p.add_argument("--aggregator", choices=("mean", "trimmed-mean", "median"), default="mean",
                   help="robust aggregation (needs --no-secagg: the server must see each update)")
    p.add_argument("--threshold", type=float, default=0.6,
                   help="SecAgg+ reconstruction threshold (share of shares)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run")


def _require_flower() -> None:
    import importlib.util

    from mouthpiece.types import InputError

    if importlib.util.find_spec("flwr") is None or importlib.util.find_spec("opacus") is None:
        raise InputError("federated learning needs Flower and Opacus: pip install -e '.[fl]'")


def _params(args, rounds: int, min_clients: int):
    from mouthpiece.federated.server_app import FederationParams

    return FederationParams(rounds=rounds, min_clients=min_clients, local_epochs=args.epochs,
                            lr=args.lr, proximal_mu=args.prox_mu, clip_norm=args.clip,
                            noise_multiplier=args.dp, population=args.population,
                            secagg=args.secagg, quantize_bits=8 if args.quantize else None,
                            reconstruction_threshold=args.threshold, seed=args.seed)


def _registry(args):
    from mouthpiece.checkpoints import Registry, trust_dir_for

    return Registry(Path(args.data_dir) / "checkpoints", trust_dir_for(args.data_dir))


def _say(args, message: str) -> None:
    print(message, file=sys.stderr if args.json else sys.stdout)


def _base(args, registry):
    """(model, verified checkpoint, bundle folder) of --base."""
    from mouthpiece.checkpoints import CheckpointError, load_bundle
    from mouthpiece.motion.learned import ARCHITECTURE, DEFAULT_BUNDLE, LearnedMotionModel

    path = Path(args.base)
    if path.exists():
        loaded = load_bundle(path, registry.trust_dir, architecture=ARCHITECTURE)
    else:
        try:
            path = registry.resolve(args.base)
            loaded = registry.load(args.base, architecture=ARCHITECTURE)
        except CheckpointError:
            if args.base != "stable":
                raise
            path = DEFAULT_BUNDLE  # no registry yet: the shipped model (pinned by digest)
            loaded = load_bundle(path, registry.trust_dir, architecture=ARCHITECTURE)
    return LearnedMotionModel.from_checkpoint(loaded), loaded, path


def client_command(args) -> int:
    _require_flower()
    from mouthpiece.federated import owner
    from mouthpiece.federated.privacy import DpSgdParams
    from mouthpiece.types import InputError

    if args.opt_in and not args.superlink:
        raise InputError("--opt-in joins a federation: give its --superlink HOST:PORT")
    if args.keep_local and not args.key:
        raise InputError("--keep-local writes a signed checkpoint: give your --key")
    if args.dp_sgd_noise < 0:
        raise InputError("--dp-sgd-noise must be ≥ 0")
    registry = _registry(args)
    model, loaded, base_path = _base(args, registry)
    videos = owner.find_videos(args.videos)
    work = Path(args.work_dir) if args.work_dir else Path(args.data_dir) / "fl-client"
    _say(args, f"building training pairs from {len(videos)} video(s) (stays on this machine)")
    data, data_path = owner.prepare_client_data(videos, work)
    result = {"videos": len(videos), "data": data.summary(), "data_file": str(data_path),
              "base": loaded.summary(), "joined": False, "personal": None}
    dp = DpSgdParams(args.dp_sgd_noise) if args.dp_sgd_noise > 0 else None
    if args.keep_local:
        personal = owner.personalize(model, loaded, data, args.keep_local, args.key,
                                     epochs=args.epochs, lr=args.lr, dp=dp,
                                     command=["mouthpiece", *sys.argv[1:]])
        result["personal"] = {"bundle": str(personal.bundle), "key_id": personal.key_id,
                              "loss_before": personal.loss_before,
                              "loss_after": personal.loss_after, "epsilon": personal.epsilon}
        _say(args, f"personal checkpoint {personal.bundle} (motion error "
                   f"{personal.loss_before:.4f} → {personal.loss_after:.4f}), signed by "
                   f"{personal.key_id[:16]}…")
    if not args.opt_in:
        if args.superlink:
            _say(args, "not joining: --opt-in was not given (nothing was sent)")
        if args.json:
            print(json.dumps(result))
        return EXIT_OK
    cmd = owner.supernode_command(
        args.superlink, data_path=data_path.resolve(), base_path=Path(base_path).resolve(),
        trust_dir=Path(registry.trust_dir).resolve() if registry.trust_dir else None,
        require_secagg=not args.allow_plain, dp_sgd_noise=args.dp_sgd_noise,
        insecure=args.insecure,
        root_certificates=Path(args.root_certificates) if args.root_certificates else None,
        auth_key=Path(args.auth_key) if args.auth_key else None, port=args.port)
    _say(args, f"joining the federation at {args.superlink} (Ctrl-C to leave)")
    code = owner.run_supernode(cmd)
    result.update(joined=True, supernode_exit=code)
    if args.json:
        print(json.dumps(result))
    return EXIT_OK if code in (0, -2, 130) else 1


def _simulated_clients(args, n_total: int):
    from mouthpiece.federated.owner import find_videos
    from mouthpiece.federated.task import ClientData, build_client_data
    from mouthpiece.types import InputError

    if args.videos:
        folders = sorted(p for p in Path(args.videos).iterdir() if p.is_dir())
        if len(folders) < n_total:
            raise InputError(f"{args.videos} has {len(folders)} client folders, {n_total} needed")
        return [build_client_data(find_videos(f)) for f in folders[:n_total]]
    from mouthpiece.federated.population import PopulationRecipe, build_population

    population = build_population(PopulationRecipe(n_clients=n_total),
                                  Path(args.data_dir) / "fl-population",
                                  progress=lambda m: _say(args, m))
    return [ClientData(c.examples) for c in population.clients]


def simulate_command(args) -> int:
    _require_flower()
    import torch

    from mouthpiece.federated.federation import simulate
    from mouthpiece.federated.publish import RoundPublisher, default_name
    from mouthpiece.federated.task import evaluate, get_weights, set_weights
    from mouthpiece.types import InputError

    if args.holdout < 0 or args.clients - args.holdout < 1:
        raise InputError("--holdout must leave at least one training client")
    torch.set_num_threads(1)
    params = _params(args, args.rounds, args.clients - args.holdout)
    registry = _registry(args)
    model, loaded, _ = _base(args, registry)
    base_weights = get_weights(model)
    publisher = None
    if args.key:
        publisher = RoundPublisher(registry, args.key, args.name or default_name(loaded.id),
                                   model, loaded, ["mouthpiece", *sys.argv[1:]], params.to_dict())
    clients = _simulated_clients(args, args.clients)
    training, held_out = clients[: len(clients) - args.holdout], clients[len(clients) - args.holdout:]
    from mouthpiece.federated.deploy import aggregator_for

    result = simulate(training, model, params, publisher=publisher, engine=args.engine,
                      aggregate=aggregator_for(args.aggregator))
    out = {"params": params.to_dict(), "engine": args.engine, "base": loaded.summary(),
           **result.to_dict()}
    errors = {}
    for label, weights in (("base", base_weights), ("federated", result.weights)):
        set_weights(model, weights)
        errors[label] = {"training_clients": _mean([evaluate(model, c) for c in training]),
                         "held_out_clients": _mean([evaluate(model, c) for c in held_out])}
    out["motion_error"] = errors
    if args.json:
        print(json.dumps(out))
    else:
        for r in result.rounds:
            eps = f", ε={r.epsilon:.2f}" if r.epsilon is not None else ""
            print(f"round {r.round}: {r.clients} clients{eps}"
                  + (f" → {r.published}" if r.published else ""))
        print(f"motion error on training clients: {errors['base']['training_clients']} → "
              f"{errors['federated']['training_clients']}")
        if held_out:
            print(f"motion error on held-out clients: {errors['base']['held_out_clients']} → "
                  f"{errors['federated']['held_out_clients']}")
    return EXIT_OK


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def server_command(args) -> int:
    _require_flower()
    import subprocess

    from mouthpiece.federated import deploy
    from mouthpiece.federated.owner import flower_env
    from mouthpiece.types import InputError

    if not args.insecure and not args.root_certificates:
        raise InputError("give the SuperLink's CA certificate (--root-certificates), or "
                         "--insecure for a loopback test")
    params = _params(args, args.rounds, args.min_clients)  # validates the numbers
    if args.aggregator != "mean" and params.secagg:
        raise InputError("robust aggregation needs each client's update: add --no-secagg")
    from mouthpiece.federated.publish import default_name

    registry = _registry(args)
    name = args.name or default_name(registry.load(args.base).id)  # refuses a missing base
    key = Path(args.key)
    if not key.is_file():
        raise InputError(f"signing key {key} not found (create one: mouthpiece ckpt keygen)")
    work = Path(args.work_dir) if args.work_dir else Path(args.data_dir) / "fl-server"
    app = deploy.write_app_dir(work / "app")
    flwr_home = work / "flwr-home"
    deploy.write_connection(flwr_home, "mouthpiece", args.superlink, insecure=args.insecure,
                            root_certificates=args.root_certificates)
    run_config = {
        "data-dir": str(Path(args.data_dir).resolve()), "key": str(key.resolve()),
        "base": args.base, "name": name, "rounds": params.rounds,
        "min-clients": params.min_clients, "local-epochs": params.local_epochs, "lr": params.lr,
        "proximal-mu": params.proximal_mu, "clip-norm": params.clip_norm,
        "noise-multiplier": params.noise_multiplier or 0.0,
        "population": params.population or 0, "secagg": params.secagg,
        "quantize-bits": params.quantize_bits or 0,
        "reconstruction-threshold": params.reconstruction_threshold, "seed": params.seed,
        "command": " ".join(["mouthpiece", *sys.argv[1:]]), "aggregator": args.aggregator,
    }
    cmd = deploy.flwr_run_command(app, "mouthpiece", run_config)
    _say(args, f"submitting the federation to {args.superlink}")
    env = dict(flower_env(), FLWR_HOME=str(flwr_home.resolve()))
    code = subprocess.run(cmd, env=env, check=False,
                          stdout=sys.stderr if args.json else None).returncode
    rounds = [i.ref for i in registry.list() if i.id == name]
    if args.json:
        print(json.dumps({"exit": code, "federation": name, "published": rounds}))
    return EXIT_OK if code == 0 else 1


def publish_command(args) -> int:
    from mouthpiece.federated.publish import promote

    target = promote(_registry(args), args.ref, args.alias)
    if args.json:
        print(json.dumps({"alias": args.alias, "ref": target}))
    else:
        print(f"{args.alias} → {target}")
    return EXIT_OK
