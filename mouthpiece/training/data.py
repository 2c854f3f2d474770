"""Training examples: (per-frame network inputs, per-frame mouth targets) built offline.

Synthetic: a seeded plan of (voice, text, augmentation) → TTS with exact phone timings →
targets from the viseme rules (`motion.build.mouth_curves`, the same curves `build_track`
uses) computed on the *clean* audio, inputs from the *augmented* audio. Every example draws
from its own `np.random.default_rng([seed, index])`, so the set does not depend on order or
on how many examples were asked for before it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from mouthpiece.motion.build import frame_series, mouth_curves
from mouthpiece.motion.learned import CUES, N_MELS, raw_inputs
from mouthpiece.speech import frame_features
from mouthpiece.training import augment
from mouthpiece.training.corpus import utterances
from mouthpiece.training.voices import PIPER_VOICE, Voice, piper_available, synthesize
from mouthpiece.types import SAMPLE_RATE, Audio, PhonemeSegment

log = logging.getLogger(__name__)

FPS = 25.0  # frames per second of every training example (the model's rate)
ESPEAK_LANGUAGES = {  # espeak voice → corpus language
    "en-us": "en", "en": "en", "en-gb-scotland": "en", "en-029": "en", "en-us-nyc": "en",
    "de": "de", "fr": "fr", "es": "es", "it": "it", "pt": "pt", "nl": "nl", "pl": "pl",
}
TRAIN_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4", "klatt", "klatt2", "klatt4",
    "Alex", "Andy", "anika", "benjamin", "caleb", "david", "ed", "edward", "iven", "john",
    "linda", "max", "michel", "norbert", "paul", "rob", "robert", "steph", "travis", "victor",
    "zac", "Annie", "belinda", "aunty", "grandma", "grandpa", "Lee", "Jacky", "marcelo",
)
# Never used for training: the held-out synthetic set speaks with these.
HELD_OUT_VARIANTS = ("m7", "f5", "klatt3", "shelby", "quincy", "Mike", "m8", "Gene")
HELD_OUT_FESTIVAL = "cmu_us_slt_arctic_hts"


@dataclass
class Example:
    """One utterance. `inputs`: (T, n_mels + cues) raw network inputs at FPS;
    `targets`: (T, 7) mouth channels (MOUTH_CHANNELS order); `source`: what it came from."""

    inputs: np.ndarray
    targets: np.ndarray
    source: str


@dataclass(frozen=True)
class DataRecipe:
    """How many utterances of which kind; saved in the checkpoint manifest."""

    seed: int = 0
    n_espeak: int = 900
    n_piper: int = 120
    n_festival: int = 0  # festival's voice is held out by default (the unseen-voice test)
    foreign_share: float = 0.3  # espeak utterances in a language other than English
    augment: bool = True
    variants: tuple[str, ...] = TRAIN_VARIANTS

    def to_dict(self) -> dict:
        data = asdict(self)
        data["variants"] = list(self.variants)
        return data


def plan_voice(recipe: DataRecipe, rng: np.random.Generator, engine: str) -> Voice:
    if engine == "festival":
        return Voice("festival", HELD_OUT_FESTIVAL)
    if engine == "piper":
        return Voice("piper", PIPER_VOICE, speed=int(rng.integers(80, 131)))
    english = [k for k, v in ESPEAK_LANGUAGES.items() if v == "en"]
    foreign = [k for k, v in ESPEAK_LANGUAGES.items() if v != "en"]
    base = str(rng.choice(foreign if rng.random() < recipe.foreign_share else english))
    variant = str(rng.choice(recipe.variants))
    return Voice("espeak", f"{base}+{variant}", ESPEAK_LANGUAGES[base],
                 pitch=int(rng.integers(20, 86)), speed=int(rng.integers(120, 236)))


def targets_for(samples: np.ndarray, segments: list[PhonemeSegment], n_frames: int,
                fps: float = FPS) -> np.ndarray:
    """(T, 7) rule mouth for known phones (the same curves `build_track` uses)."""
    features = frame_features(Audio(samples), fps, n_frames)
    series = frame_series(features, n_frames, fps)
    return np.clip(mouth_curves(segments, series, n_frames, fps, 1.0, smoothing=True), 0, 1)


def inputs_for(samples: np.ndarray, n_frames: int, fps: float = FPS) -> np.ndarray:
    return raw_inputs(frame_features(Audio(samples), fps, n_frames), N_MELS, CUES)


def augmented(samples, segments, rng: np.random.Generator):
    """(clean samples, segments) after the time-changing augmentations, and the heard
    samples after the time-preserving ones."""
    if rng.random() < 0.5:
        samples, segments = augment.speed_perturb(samples, segments, rng.uniform(0.88, 1.12))
    if rng.random() < 0.25:
        samples, segments = augment.time_stretch(samples, segments, rng.uniform(0.8, 1.25))
    clean = samples
    heard = samples
    if rng.random() < 0.3:
        heard = augment.pitch_shift(heard, rng.uniform(-4.0, 4.0))
    if rng.random() < 0.4:
        heard = augment.vocal_tract_length(heard, rng.uniform(0.85, 1.15))
    if rng.random() < 0.4:
        heard = augment.reverberate(heard, rng, rng.uniform(0.15, 0.8))
    if rng.random() < 0.2:
        heard = augment.band_limit(heard, rng.uniform(80, 300), rng.uniform(3400, 7500))
    if rng.random() < 0.6:
        heard = augment.add_noise(heard, rng, rng.uniform(5.0, 40.0))
    heard = augment.set_level(heard, rng.uniform(-40.0, -12.0))
    return clean, segments, heard


def example_from_speech(samples: np.ndarray, segments: list[PhonemeSegment],
                        rng: np.random.Generator, *, augment_audio: bool, source: str) -> Example:
    """Pad with silence, augment, and build (inputs, targets) at FPS."""
    lead, tail = rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.6)  # seconds of silence
    samples = np.concatenate([np.zeros(int(lead * SAMPLE_RATE), np.float32), samples,
                              np.zeros(int(tail * SAMPLE_RATE), np.float32)])
    segments = augment.shift_segments(segments, lead, len(samples) / SAMPLE_RATE)
    if augment_audio:
        clean, segments, heard = augmented(samples, segments, rng)
    else:
        clean = heard = augment.set_level(samples, -20.0)
    n_frames = max(1, int(round(len(clean) / SAMPLE_RATE * FPS)))
    return Example(inputs_for(heard, n_frames).astype(np.float32),
                   targets_for(clean, segments, n_frames).astype(np.float32), source)


def make_example(recipe: DataRecipe, index: int, engine: str) -> Example:
    """The `index`-th utterance of `engine` in `recipe` (deterministic given the seed)."""
    engine_id = {"espeak": 0, "piper": 1, "festival": 2}[engine]
    rng = np.random.default_rng([recipe.seed, engine_id, index])
    voice = plan_voice(recipe, rng, engine)
    text = utterances(voice.language, rng, 1)[0]
    utt = synthesize(text, voice)
    return example_from_speech(utt.samples, utt.segments, rng, augment_audio=recipe.augment,
                               source=f"{voice.label}|{text}")


def held_out_voices() -> list[Voice]:
    """Unseen speakers: festival's HTS voice and espeak variants never used in training."""
    voices = [Voice("festival", HELD_OUT_FESTIVAL)]
    voices += [Voice("espeak", f"en-us+{v}", "en", pitch=50 + 7 * (i % 3 - 1), speed=165)
               for i, v in enumerate(HELD_OUT_VARIANTS)]
    return voices


@dataclass
class Dataset:
    examples: list[Example] = field(default_factory=list)

    def summary(self) -> dict:
        frames = sum(len(e.targets) for e in self.examples)
        engines: dict[str, int] = {}
        for e in self.examples:
            key = e.source.split(":", 1)[0]
            engines[key] = engines.get(key, 0) + 1
        return {"examples": len(self.examples), "frames": frames,
                "hours": round(frames / FPS / 3600, 3), "by_source": engines}

    def save(self, path) -> None:
        np.savez_compressed(
            path, inputs=np.concatenate([e.inputs for e in self.examples]),
            targets=np.concatenate([e.targets for e in self.examples]),
            lengths=np.array([len(e.targets) for e in self.examples]),
            sources=np.array([e.source for e in self.examples]))

    @classmethod
    def load(cls, path) -> "Dataset":
        with np.load(path) as data:  # each key access decompresses: read every array once
            inputs, targets = data["inputs"], data["targets"]
            lengths, sources = data["lengths"], data["sources"]
        ends = np.cumsum(lengths)
        return cls([Example(inputs[b - n:b], targets[b - n:b], str(s))
                    for n, b, s in zip(lengths, ends, sources)])


def generate_dataset(recipe: DataRecipe, progress=None) -> Dataset:
    """All synthetic examples of `recipe`, in a fixed order."""
    plan = [("espeak", i) for i in range(recipe.n_espeak)]
    if recipe.n_piper and piper_available():
        plan += [("piper", i) for i in range(recipe.n_piper)]
    elif recipe.n_piper:
        log.warning("piper voice not installed: skipping %d piper utterances", recipe.n_piper)
    plan += [("festival", i) for i in range(recipe.n_festival)]
    data = Dataset()
    for k, (engine, index) in enumerate(plan):
        data.examples.append(make_example(recipe, index, engine))
        if progress is not None and (k % 50 == 0 or k == len(plan) - 1):
            progress(k + 1, len(plan))
    return data


__all__ = ["DataRecipe", "Dataset", "Example", "FPS", "generate_dataset", "held_out_voices",
           "make_example"]
