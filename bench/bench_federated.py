"""Federated personalization benchmark: held-out-client motion error, DP, bytes, gradient inversion.

    .venv/bin/python bench/bench_federated.py [--rounds 10] [--epochs 5] [--dp 0.1 0.3 0.5 1.0]
        [--attack-records 6] [--attack-restarts 8] [--out outputs/bench_federated.json]

Population: `federated/population.py`'s 10 simulated people (cached under data/fl-population;
the first run renders and fits it, ≈ 10 min on two cores). In fold k (k = 0…4) clients 2k and
2k + 1 are **held out** (they never take part) and the other 8 federate, so every client is
held out once. A held-out client's clips 0–1 are its own training clips and clips 2–3 its
evaluation clips; every model is scored on the evaluation clips with `task.evaluate` (the
training loss: channel-weighted MSE of the 7 mouth channels + 2 × that of their
frame-to-frame changes; lower is better):
- base: the shipped checkpoint;
- federated: FedAvg over the 8 clients for R rounds of E local epochs (fl-core's in-process
  Flower simulation, no SecAgg, float32 updates clipped to C = 0.5);
- local-only: the base fine-tuned by the held-out client on its own training clips alone, for
  as many local epochs as a federated client runs in all rounds (R × E);
- federated + local: the federated model fine-tuned the same way (personalization).
Variants on fold 4 (clients 08, 09 held out): 8-bit updates, trimmed-mean aggregation, and
client-level DP at each z, mean of --dp-seeds runs (noise and client seeds) (ε from the accountant with every
client in every round, q = 1; also the ε the same noise would give if the 8 were sampled from
1000 clients).
Bytes: protobuf bytes each client uploads per round (WireLog), float32 vs 8-bit, plus one
SecAgg+ 8-bit round. Attack: `federated/attack.py` on 2-frame records of the population's
speech: success rate without protection, with clipping + noise (the smallest DP z), and under
SecAgg (sum of three clients' single-record updates) for an attacker searching one record or
three. Timings are wall seconds on a shared machine: compare them only within one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN_CLIENTS = 8  # per fold, 8 clients federate and 2 are held out
N_FOLDS = 5  # fold k holds out clients 2k and 2k + 1: every client is held out once
CLIP = 0.5  # the federation's default clip norm
ATTACK_FRAMES = 2


def _mean(values) -> float:
    return float(np.mean(list(values)))


class Bench:
    def __init__(self, args) -> None:
        from mouthpiece.federated.population import PopulationRecipe, build_population
        from mouthpiece.federated.task import get_weights
        from mouthpiece.motion.learned import LearnedMotionModel

        self.args = args
        started = time.perf_counter()
        self.population = build_population(PopulationRecipe(), args.population_cache,
                                           progress=lambda m: print(m, flush=True))
        self.population_s = time.perf_counter() - started
        self.model = LearnedMotionModel.load()
        self.base = get_weights(self.model)
        self.split(N_FOLDS - 1)
        self.last_fold = None  # (weights, result, seconds, wire) of the last fold's FedAvg

    def split(self, fold: int) -> list[str]:
        """Hold out clients 2·fold and 2·fold + 1; the other eight federate."""
        from mouthpiece.federated.task import ClientData

        clients = self.population.clients
        held = [2 * fold, 2 * fold + 1]
        self.train = [ClientData(c.examples) for i, c in enumerate(clients) if i not in held]
        self.held_train = [ClientData(clients[i].examples[:2]) for i in held]
        self.held_eval = [ClientData(clients[i].examples[2:]) for i in held]
        return [clients[i].style.client_id for i in held]

    def errors(self, weights) -> dict:
        from mouthpiece.federated.task import evaluate, set_weights

        set_weights(self.model, weights)
        held = [evaluate(self.model, d) for d in self.held_eval]
        return {"held_out": round(_mean(held), 5), "held_out_each": [round(e, 5) for e in held],
                "training_clients": round(_mean(evaluate(self.model, d) for d in self.train), 5)}

    def federate(self, label: str, aggregate=None, wire=None, **overrides):
        """FedAvg (variant) over the 8 training clients; (weights, result, wall seconds)."""
        from mouthpiece.federated.federation import simulate
        from mouthpiece.federated.server_app import FederationParams
        from mouthpiece.federated.task import set_weights

        params = FederationParams(**{
            "rounds": self.args.rounds, "min_clients": N_TRAIN_CLIENTS,
            "local_epochs": self.args.epochs, "lr": self.args.lr, "clip_norm": CLIP,
            "secagg": False, "seed": 0, **overrides})
        set_weights(self.model, self.base)
        np.random.seed(params.seed)  # Flower's DP noise draws from numpy's global generator
        started = time.perf_counter()
        result = simulate(self.train, self.model, params, aggregate=aggregate, wire=wire)
        seconds = time.perf_counter() - started
        print(f"  {label}: {params.rounds} rounds in {seconds:.0f} s", flush=True)
        return result.weights, result, seconds

    def fine_tune(self, start, data) -> list[np.ndarray]:
        from mouthpiece.federated.task import get_weights, local_train, set_weights

        set_weights(self.model, start)
        local_train(self.model, data, epochs=self.args.rounds * self.args.epochs,
                    lr=self.args.lr, seed=1)
        return get_weights(self.model)

    def personal_errors(self, start) -> dict:
        from mouthpiece.federated.task import evaluate, set_weights

        held = []
        for train, test in zip(self.held_train, self.held_eval):
            set_weights(self.model, self.fine_tune(start, train))
            held.append(evaluate(self.model, test))
        return {"held_out": round(_mean(held), 5), "held_out_each": [round(e, 5) for e in held]}


def upload_bytes(wire) -> float:
    """Mean protobuf bytes a client uploads in one round."""
    per = wire.upload_bytes_per_client_round()
    return float(np.mean(list(per.values())))


def gain_share(base: float, federated: float, variant: float) -> float:
    return round((base - variant) / (base - federated), 3) if base != federated else float("nan")


def run_folds(bench: Bench, args) -> dict:
    """Base vs federated vs local-only (vs both) on the held-out pair of every fold."""
    from mouthpiece.federated.simulation import WireLog

    folds = []
    for fold in range(N_FOLDS):
        held = bench.split(fold)
        wire = WireLog()
        fed, result, seconds = bench.federate(f"fold {fold} (held out {', '.join(held)}) "
                                              "FedAvg", wire=wire)
        bench.last_fold = (fed, result, seconds, wire)
        folds.append({"held_out": held, "base": bench.errors(bench.base)["held_out_each"],
                      "federated": bench.errors(fed)["held_out_each"],
                      "local_only": bench.personal_errors(bench.base)["held_out_each"],
                      "federated_then_local": bench.personal_errors(fed)["held_out_each"],
                      "wall_s": round(seconds, 1)})
    keys = ("base", "federated", "local_only", "federated_then_local")
    per_client = {k: [e for f in folds for e in f[k]] for k in keys}
    mean = {k: round(_mean(v), 5) for k, v in per_client.items()}
    wins = {f"{a}_beats_{b}": int(sum(x < y for x, y in zip(per_client[a], per_client[b])))
            for a, b in (("federated", "base"), ("local_only", "base"),
                         ("local_only", "federated"), ("federated_then_local", "local_only"))}
    return {"folds": folds, "mean_over_10_held_out_clients": mean, "wins_of_10": wins}


def run_federation(bench: Bench, args) -> dict:
    """Variants on the last fold (clients 8, 9 held out); needs `run_folds` first."""
    from mouthpiece.federated.privacy import ClientLevelAccountant, epsilon_for
    from mouthpiece.federated.robust import make_aggregator
    from mouthpiece.federated.simulation import WireLog

    bench.split(N_FOLDS - 1)
    out: dict = {"base": bench.errors(bench.base)}
    fed, fed_result, fed_s, wire32 = bench.last_fold  # FedAvg float32, run by `run_folds`
    wire8 = WireLog()
    out["federated"] = {**bench.errors(fed), "wall_s": round(fed_s, 1),
                        "rounds": [r.to_dict() for r in fed_result.rounds]}
    out["local_only"] = bench.personal_errors(bench.base)
    out["federated_then_local"] = bench.personal_errors(fed)
    q8, _, q8_s = bench.federate("FedAvg 8-bit", wire=wire8, quantize_bits=8)
    out["federated_8bit"] = {**bench.errors(q8), "wall_s": round(q8_s, 1)}
    trimmed, _, tm_s = bench.federate("trimmed mean", aggregate=make_aggregator("trimmed-mean"))
    out["federated_trimmed_mean"] = {**bench.errors(trimmed), "wall_s": round(tm_s, 1)}
    base_err, fed_err = out["base"]["held_out"], out["federated"]["held_out"]
    out["dp"] = []
    for z in args.dp:
        runs = [bench.federate(f"client-level DP z={z}, run seed {seed}", noise_multiplier=z,
                               population=N_TRAIN_CLIENTS, seed=seed)
                for seed in range(args.dp_seeds)]
        accountant = ClientLevelAccountant(N_TRAIN_CLIENTS)
        for _ in range(args.rounds):
            accountant.step(z, N_TRAIN_CLIENTS)
        errors = [bench.errors(weights) for weights, _, _ in runs]
        held = _mean(e["held_out"] for e in errors)
        out["dp"].append({
            "noise_multiplier": z, "clip_norm": CLIP, "delta": accountant.delta,
            "epsilon": round(runs[0][1].epsilon, 3),
            "epsilon_check": round(accountant.epsilon(), 3),
            # the same rounds, had the 8 been sampled from 1000 clients (q = 0.008)
            "epsilon_if_sampled_from_1000": round(epsilon_for(z, N_TRAIN_CLIENTS / 1000,
                                                              args.rounds), 3),
            "held_out": round(held, 5),
            "held_out_each": [round(_mean(e["held_out_each"][i] for e in errors), 5)
                              for i in range(len(bench.held_eval))],
            "held_out_per_seed": [e["held_out"] for e in errors],
            "training_clients": round(_mean(e["training_clients"] for e in errors), 5),
            "gain_kept": gain_share(base_err, fed_err, held),
            "gain_kept_per_seed": [gain_share(base_err, fed_err, e["held_out"]) for e in errors],
            "wall_s": round(sum(r[2] for r in runs), 1)})
    out["gain_kept_8bit"] = gain_share(base_err, fed_err, out["federated_8bit"]["held_out"])
    out["gain_kept_trimmed_mean"] = gain_share(base_err, fed_err,
                                               out["federated_trimmed_mean"]["held_out"])
    out["bytes_per_client_round"] = {"float32": upload_bytes(wire32), "int8": upload_bytes(wire8)}
    if args.secagg_round:
        wire = WireLog()
        _, _, seconds = bench.federate("SecAgg+ 8-bit, 1 round", wire=wire, rounds=1,
                                       secagg=True, quantize_bits=8)
        out["bytes_per_client_round"]["secagg_int8"] = upload_bytes(wire)
        out["secagg_round_wall_s"] = round(seconds, 1)
    return out


def attack_records(bench: Bench, n: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(client id, inputs, targets) of 2-frame records from speech in the middle of clip 2 of
    n different clients, plus two more (SecAgg partners)."""
    out = []
    for client in bench.population.clients[: n + 2]:
        ex = client.examples[2]
        x = bench.model.standardise(ex.inputs)
        start = len(x) // 2
        out.append((client.style.client_id, x[start: start + ATTACK_FRAMES],
                    ex.targets[start: start + ATTACK_FRAMES]))
    return out


def run_attack(bench: Bench, args) -> dict:
    from mouthpiece.federated import attack
    from mouthpiece.federated.privacy import add_gaussian_noise
    from mouthpiece.federated.task import clip_update, set_weights

    set_weights(bench.model, bench.base)
    params = attack.AttackParams(restarts=args.attack_restarts)
    records = attack_records(bench, args.attack_records)
    targets, partners = records[: args.attack_records], records[args.attack_records:]
    z = min(args.dp) if args.dp else 1.0
    rng = np.random.default_rng(0)

    def baseline(client_id, truth):
        others = [bench.model.standardise(ex.inputs)[s: s + ATTACK_FRAMES]
                  for c in bench.population.clients if c.style.client_id != client_id
                  for ex in c.examples for s in range(0, len(ex.inputs) - ATTACK_FRAMES, 10)]
        return attack.random_guess_baseline(truth, others)

    settings = {"none": [], "clip_noise": [], "secagg_1_record_attacker": [],
                "secagg_3_record_attacker": []}
    details = []
    started = time.perf_counter()
    for client_id, x, y in targets:
        guess = baseline(client_id, x)
        update = attack.single_record_update(bench.model, x, y)
        clipped, _ = clip_update(update, CLIP)
        noisy = add_gaussian_noise(clipped, z * CLIP, rng)
        group = [update] + [attack.single_record_update(bench.model, px, py)
                            for _, px, py in partners]
        total = [sum(parts) for parts in zip(*group)]
        row = {"client": client_id, "baseline": guess}
        for name, observed, n_records in (("none", update, 1), ("clip_noise", noisy, 1),
                                          ("secagg_1_record_attacker", total, 1),
                                          ("secagg_3_record_attacker", total, 3)):
            result = attack.invert_update(bench.model, observed, ATTACK_FRAMES,
                                          n_records=n_records, params=params)
            score = attack.best_match(result, x)
            success = attack.is_reconstructed(score, guess)
            settings[name].append(success)
            row[name] = {**{k: round(v, 3) for k, v in score.items()}, "success": success,
                         "match_loss": round(result.match_loss, 4)}
        details.append(row)
        print(f"  attack on {client_id}: " + ", ".join(
            f"{k} {row[k]['cosine']:.2f}{'✓' if row[k]['success'] else '✗'}" for k in settings),
            flush=True)
    return {"frames": ATTACK_FRAMES, "restarts": args.attack_restarts, "noise_multiplier": z,
            "clip_norm": CLIP, "secagg_clients": 1 + len(partners),
            "success_rate": {k: round(_mean(v), 3) for k, v in settings.items()},
            "records": details, "wall_s": round(time.perf_counter() - started, 1)}


def print_table(result: dict) -> None:
    folds = result["folds"]
    print("\nheld-out-client motion error, 5 folds × 2 held-out clients (lower is better)")
    print(f"{'fold / held out':34s} {'base':>15s} {'federated':>15s} {'local-only':>15s} "
          f"{'fed + local':>15s}")
    for k, f in enumerate(folds["folds"]):
        cells = [" ".join(f"{e:.4f}" for e in f[key])
                 for key in ("base", "federated", "local_only", "federated_then_local")]
        print(f"{k} {', '.join(f['held_out']):32s} " + " ".join(f"{c:>15s}" for c in cells))
    mean = folds["mean_over_10_held_out_clients"]
    print(f"{'mean of 10':34s} " + " ".join(f"{mean[key]:15.4f}" for key in
                                             ("base", "federated", "local_only",
                                              "federated_then_local")))
    print("wins (of 10 clients): " + ", ".join(f"{k} {v}" for k, v in folds["wins_of_10"].items()))
    fed = result["federation"]
    rows = [("base (shipped)", fed["base"]), ("federated (FedAvg)", fed["federated"]),
            ("local-only fine-tune", fed["local_only"]),
            ("federated + local fine-tune", fed["federated_then_local"]),
            ("federated, 8-bit updates", fed["federated_8bit"]),
            ("federated, trimmed mean", fed["federated_trimmed_mean"])]
    rows += [(f"federated, DP z={d['noise_multiplier']} (ε={d['epsilon']:.3g}; "
              f"{d['epsilon_if_sampled_from_1000']:.3g} if q=0.008)", d) for d in fed["dp"]]
    print("\nfold 4 (clients 08, 09 held out): variants")
    print(f"{'model':56s} {'held-out':>9s} {'each':>18s} {'training clients':>17s}")
    for label, r in rows:
        each = " ".join(f"{e:.4f}" for e in r["held_out_each"])
        train = f"{r['training_clients']:.4f}" if "training_clients" in r else "—"
        print(f"{label:56s} {r['held_out']:9.4f} {each:>18s} {train:>17s}")
    print("\nshare of the federated gain kept: 8-bit "
          f"{fed['gain_kept_8bit']}, trimmed mean {fed['gain_kept_trimmed_mean']}, "
          + ", ".join(f"DP z={d['noise_multiplier']} (ε={d['epsilon']:.3g}) {d['gain_kept']} "
                      f"(seeds: {', '.join(str(g) for g in d['gain_kept_per_seed'])})"
                      for d in fed["dp"]))
    print("bytes per client per round: " + ", ".join(
        f"{k} {v:,.0f}" for k, v in fed["bytes_per_client_round"].items()))
    if "attack" in result:
        rates = result["attack"]["success_rate"]
        print("gradient inversion success rate: " + ", ".join(f"{k} {v:.2f}"
                                                             for k, v in rates.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5, help="local epochs per round")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dp", type=float, nargs="*", default=[0.1, 0.3, 0.5, 1.0],
                        help="client-level DP noise multipliers to try")
    parser.add_argument("--dp-seeds", type=int, default=2,
                        help="runs (noise draws and client seeds) per DP setting")
    parser.add_argument("--attack-records", type=int, default=6)
    parser.add_argument("--attack-restarts", type=int, default=8)
    parser.add_argument("--no-attack", action="store_true")
    parser.add_argument("--no-secagg-round", dest="secagg_round", action="store_false")
    parser.add_argument("--population-cache", default=str(ROOT / "data" / "fl-population"))
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench_federated.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("flwr").setLevel(logging.WARNING)  # one INFO line per message otherwise

    import torch

    from mouthpiece.federated.population import fit_correlation

    torch.set_num_threads(1)
    started = time.perf_counter()
    bench = Bench(args)
    result = {"population": {**bench.population.summary(), "clients": [
                  {**c.style.to_dict(), "voice": c.style.voice.label.rsplit("/", 1)[-1],
                   "seconds": round(sum(len(e.targets) for e in c.examples) / 25, 1),
                   "fit_r": {k: round(v, 2) for k, v in fit_correlation(c).items()}}
                  for c in bench.population.clients]},
              "population_wall_s": round(bench.population_s, 1),
              "setup": {"train_clients": N_TRAIN_CLIENTS,
                        "held_out_clients": len(bench.held_eval), "rounds": args.rounds,
                        "local_epochs": args.epochs, "lr": args.lr, "clip_norm": CLIP,
                        "folds": N_FOLDS,
                        "held_out_split": "per held-out client: clips 0-1 its own training "
                                          "clips, clips 2-3 its evaluation clips",
                        "metric": "task.evaluate: weighted MSE of the 7 mouth channels + 2 x "
                                  "weighted MSE of their frame-to-frame changes"}}
    print("held-out folds", flush=True)
    result["folds"] = run_folds(bench, args)
    print("federation variants (fold 4)", flush=True)
    result["federation"] = run_federation(bench, args)
    if not args.no_attack:
        print("gradient inversion", flush=True)
        result["attack"] = run_attack(bench, args)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
