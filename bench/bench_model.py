"""Learned motion model benchmark: size, CPU inference time, rules-vs-model lip-sync figures.

    .venv/bin/python bench/bench_model.py [--bundle DIR] [--eval] [--out bench/results/model.json]

Default bundle: the shipped `mouthpiece/assets/motion-default`. Inference time is CPU time per
second of audio on one thread (the engine's budget is 20 ms), for the network alone and with
the log-mel/cue features it needs; `--eval` adds the held-out-voice and recorded-speech figures
(the same ones `mouthpiece train` writes into the manifest).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = ROOT / "mouthpiece" / "assets" / "motion-default"


def cpu_ms_per_audio_second(fn, audio_s: float, repeats: int = 5) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return 1000.0 * best / audio_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=str(DEFAULT_BUNDLE))
    parser.add_argument("--eval", action="store_true", help="also run the rules-vs-model figures")
    parser.add_argument("--out", help="write the JSON result here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from mouthpiece.checkpoints import load_bundle
    from mouthpiece.motion.learned import LearnedMotionModel
    from mouthpiece.speech import frame_features
    from mouthpiece.types import Audio

    loaded = load_bundle(args.bundle)
    model = LearnedMotionModel.from_checkpoint(loaded)
    weights = sum(p.stat().st_size for p in Path(args.bundle).glob("*.safetensors"))
    rng = np.random.default_rng(0)
    result = {"bundle": args.bundle, "checkpoint": loaded.summary(),
              "parameters": model.n_parameters, "weights_mb": round(weights / 1e6, 3),
              "bundle_mb": round(sum(p.stat().st_size for p in Path(args.bundle).iterdir()) / 1e6, 3)}
    for seconds in (10.0, 60.0):
        audio = Audio((rng.standard_normal(int(seconds * 16000)) * 0.05).astype(np.float32))
        n = int(seconds * 25)
        features = frame_features(audio, 25, n)
        result[f"predict_ms_per_audio_s_{int(seconds)}s"] = round(
            cpu_ms_per_audio_second(lambda: model.predict(features), seconds), 3)
        result[f"features_ms_per_audio_s_{int(seconds)}s"] = round(
            cpu_ms_per_audio_second(lambda: frame_features(audio, 25, n), seconds, 2), 3)
    if args.eval:
        from mouthpiece.training.pipeline import evaluate_model

        result["evaluation"] = evaluate_model(model, ROOT / "samples" / "portrait.jpg", 0)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
