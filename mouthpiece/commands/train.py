"""`mouthpiece train`: build training data offline, train the audio→mouth model, evaluate it
against the rules, write a (signed) checkpoint bundle (thin adapter over mouthpiece.training)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def register(sub) -> None:
    """Add `train` to the top-level sub-parsers."""
    p = sub.add_parser("train", help="train the learned audio→motion model into a checkpoint bundle")
    p.add_argument("--out", required=True, help="bundle folder to create (must not exist)")
    p.add_argument("--seed", type=int, default=0, help="seed for data, augmentation and training")
    p.add_argument("--steps", type=int, default=4000, help="optimiser steps")
    p.add_argument("--batch", type=int, default=24, help="crops per step")
    p.add_argument("--espeak", type=int, default=900, help="espeak-ng utterances (many voices and languages)")
    p.add_argument("--piper", type=int, default=120, help="piper utterances (if the voice is installed)")
    p.add_argument("--festival", type=int, default=0,
                   help="festival utterances (0: its voice is the held-out test voice)")
    p.add_argument("--no-augment", action="store_true", help="train on clean TTS audio only")
    p.add_argument("--video", action="append", default=[],
                   help="a real talking video to add as data (repeatable)")
    p.add_argument("--data-cache", help="folder to keep/reuse the generated data (keyed by its recipe)")
    p.add_argument("--key", help="Ed25519 private key (PEM) to sign the bundle with")
    p.add_argument("--version", default="1.0.0", help="semantic version of the checkpoint")
    p.add_argument("--eval-face", default="samples/portrait.jpg",
                   help="portrait whose landmarks the rules-vs-model figures are measured on")
    p.add_argument("--no-eval", action="store_true", help="skip the rules-vs-model evaluation")
    p.add_argument("--time-limit", type=float, help="stop training after this many seconds")
    p.add_argument("--json", action="store_true", help="print one JSON result object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mouthpiece.training.data import DataRecipe
    from mouthpiece.training.loop import TrainParams
    from mouthpiece.training.pipeline import TrainingRun, run as run_training
    from mouthpiece.types import InputError

    for name in ("seed", "steps", "batch", "espeak", "piper", "festival"):
        if getattr(args, name) < 0:
            raise InputError(f"--{name} must be ≥ 0")
    if args.steps < 1 or args.batch < 1:
        raise InputError("--steps and --batch must be ≥ 1")
    if args.espeak + args.piper + args.festival + len(args.video) == 0:
        raise InputError("no training data: give --espeak, --piper, --festival or --video")
    for video in args.video:
        if not Path(video).is_file():
            raise InputError(f"--video {video}: no such file")
    if args.key and not Path(args.key).is_file():
        raise InputError(f"--key {args.key}: no such file")
    job = TrainingRun(
        out=Path(args.out), command=["mouthpiece", "train", *_argv_tail()],
        recipe=DataRecipe(seed=args.seed, n_espeak=args.espeak, n_piper=args.piper,
                          n_festival=args.festival, augment=not args.no_augment),
        params=TrainParams(steps=args.steps, batch=args.batch, seed=args.seed,
                           time_limit_s=args.time_limit),
        videos=[Path(v) for v in args.video],
        data_cache=Path(args.data_cache) if args.data_cache else None,
        evaluate=not args.no_eval, eval_face=Path(args.eval_face),
        version=args.version, key=Path(args.key) if args.key else None,
    )
    result = run_training(job, progress=lambda message: print(message, file=sys.stderr, flush=True))
    out = {"bundle": str(result.bundle), "parameters": result.model.n_parameters,
           "wall_s": result.report["wall_s"], "signed": job.key is not None,
           "evaluation": result.report.get("evaluation"),
           "train": {k: v for k, v in result.report["train"].items() if k != "history"}}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


def _argv_tail() -> list[str]:
    """The arguments after `train`, as typed (recorded in the manifest for reproduction)."""
    argv = sys.argv[1:]
    tail = argv[argv.index("train") + 1:] if "train" in argv else argv
    return [shlex.quote(a) if " " in a else a for a in tail]
