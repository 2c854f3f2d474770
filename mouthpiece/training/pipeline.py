"""`mouthpiece train` end to end: data → training → evaluation → signed bundle."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from mouthpiece.motion.learned import ARCHITECTURE, Audio2MouthConfig, LearnedMotionModel
from mouthpiece.training.data import DataRecipe, Dataset, generate_dataset
from mouthpiece.training.loop import TrainParams, train
from mouthpiece.types import InputError

log = logging.getLogger(__name__)

CHECKPOINT_ID = "motion-audio2mouth"


@dataclass
class TrainingRun:
    """Everything `mouthpiece train` needs; `command` is recorded in the manifest."""

    out: Path
    command: list[str]
    recipe: DataRecipe = field(default_factory=DataRecipe)
    params: TrainParams = field(default_factory=TrainParams)
    config: Audio2MouthConfig = field(default_factory=Audio2MouthConfig)
    videos: list[Path] = field(default_factory=list)
    data_cache: Path | None = None
    evaluate: bool = True
    eval_face: Path | None = None
    version: str = "1.0.0"
    key: Path | None = None


@dataclass
class TrainingResult:
    bundle: Path
    model: LearnedMotionModel
    report: dict


def load_or_generate(recipe: DataRecipe, cache: Path | None, progress=None) -> Dataset:
    """The synthetic dataset of `recipe`, read from `cache` when it was made by the same
    recipe (the cache file name carries the recipe's hash)."""
    import hashlib
    import json

    if cache is None:
        return generate_dataset(recipe, progress)
    digest = hashlib.sha256(json.dumps(recipe.to_dict(), sort_keys=True).encode()).hexdigest()
    path = Path(cache) / f"synthetic-{digest[:16]}.npz"
    if path.is_file():
        log.info("reusing cached training data %s", path)
        return Dataset.load(path)
    data = generate_dataset(recipe, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    data.save(path)
    return data


def run(job: TrainingRun, progress=None) -> TrainingResult:
    """Generate data, train, evaluate, write (and sign) the bundle `job.out`."""
    import torch

    from mouthpiece.checkpoints import build_bundle, sign_bundle

    if job.out.exists():
        raise InputError(f"{job.out} already exists; bundles are written once, to a new folder")
    torch.set_num_threads(1)  # reproducible, and leaves the other core to the machine
    say = progress or (lambda message: None)
    started = time.perf_counter()
    data = load_or_generate(job.recipe, job.data_cache,
                            lambda k, n: say(f"data {k}/{n}"))
    if job.videos:
        from mouthpiece.training.video import build_examples_from_video

        for video in job.videos:
            data.examples.extend(build_examples_from_video(video))
    data_s = time.perf_counter() - started
    say(f"data: {data.summary()} in {data_s:.0f} s")
    model, history = train(data, job.params, job.config,
                           progress=lambda e: say(f"step {e['step']} loss {e['train_loss']}"))
    report = {"data_s": round(data_s, 1), "train": history, "parameters": model.n_parameters}
    if job.evaluate:
        report["evaluation"] = evaluate_model(model, job.eval_face, job.recipe.seed)
    summary = data.summary()
    summary["videos"] = [Path(v).name for v in job.videos]
    recipe = {"command": job.command, "seed": job.recipe.seed, "data": summary,
              "data_recipe": job.recipe.to_dict(), "train_params": job.params.to_dict(),
              "wall_s": round(time.perf_counter() - started, 1),
              "evaluation": report.get("evaluation")}
    bundle = build_bundle(job.out, model.network.state_dict(), model.config.to_dict(),
                          architecture=ARCHITECTURE, version=job.version, recipe=recipe,
                          name=CHECKPOINT_ID)
    if job.key is not None:
        sign_bundle(bundle, job.key)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    return TrainingResult(bundle, model, report)


def evaluate_model(model: LearnedMotionModel, face_image: Path | None, seed: int) -> dict:
    """Rules vs model on unseen synthetic voices and on the recorded speech found offline."""
    from mouthpiece.face import build_rig
    from mouthpiece.media import load_image
    from mouthpiece.training.evaluate import alsa_speech_clips, compare, held_out_clips

    if face_image is None or not Path(face_image).is_file():
        raise InputError("evaluation needs a portrait: pass --eval-face IMAGE (or --no-eval)")
    face = build_rig(load_image(face_image), min_resolution=256).landmarks
    out = {"held_out_synthetic": compare(held_out_clips(), model, face, seed)}
    real = alsa_speech_clips()
    if real:
        out["real_speech"] = compare(real, model, face, seed)
        out["real_speech_source"] = "alsa-utils voice prompts (/usr/share/sounds/alsa)"
    return out
