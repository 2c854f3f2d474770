"""Value types shared by every stage (media, face, speech, motion, render, engine).

Nothing here imports a stage; stages import this. Time-base constants live here once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000  # Hz; all analysis audio is mono float32 at this rate
N_LANDMARKS = 468  # MediaPipe FaceMesh topology


class InputError(ValueError):
    """A problem with what the user gave us (file, parameter, face): exit 2 / HTTP 4xx."""


@dataclass(frozen=True)
class Audio:
    """Mono analysis audio. `samples`: (N,) float32 in [-1, 1] at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class FaceBox:
    """A detected face in image pixels. `keypoints`: (6, 2) BlazeFace keypoints
    (right eye, left eye, nose tip, mouth centre, right ear, left ear — subject's sides)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    keypoints: np.ndarray

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


@dataclass(frozen=True)
class Landmarks:
    """468 FaceMesh points in pixel coordinates of the image they were found in.

    `points`: (468, 3) float32 — x, y in pixels; z in pixels, relative depth (smaller = nearer).
    `score`: face-presence confidence in [0, 1].
    """

    points: np.ndarray
    score: float = 1.0

    @property
    def xy(self) -> np.ndarray:
        return self.points[:, :2]


@dataclass(frozen=True)
class FaceRig:
    """Everything the renderer needs about one face, prepared once per generation.

    `image`: the full original photo, (H, W, 3) uint8 RGB.
    `crop_box`: (x0, y0, x1, y1) integer box of the animated crop in `image` pixels
        (always inside the image: shifted back in, clipped only when larger than the photo).
    `crop_image`: the crop resized to the working resolution, (h, w, 3) uint8 RGB,
        short side = min_resolution.
    `scale`: working pixels per original pixel (crop_image size / crop_box size).
    `landmarks`: landmarks in `crop_image` pixel coordinates.
    `full_landmarks`: the same landmarks in original `image` pixels.
    """

    image: np.ndarray
    crop_box: tuple[int, int, int, int]
    crop_image: np.ndarray
    scale: float
    landmarks: Landmarks
    full_landmarks: Landmarks


@dataclass(frozen=True)
class PhonemeSegment:
    """One phone with its time span. `phone`: ARPAbet without stress digits, upper case
    (e.g. "AA", "P", "M"), or "SIL" for silence/pause. Times in seconds from audio start."""

    phone: str
    start_s: float
    end_s: float
    confidence: float = 1.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


# Channel name → (min, max, meaning). Mouth channels are articulatory (JALI-like: jaw and lips
# separate); head angles are degrees, translations are fractions of the inter-ocular distance.
MOTION_CHANNELS: dict[str, tuple[float, float, str]] = {
    "jaw_open": (0.0, 1.0, "jaw drop; 1 = wide open vowel (AA)"),
    "lip_wide": (0.0, 1.0, "lip corners spread (IY, EH)"),
    "lip_round": (0.0, 1.0, "lips rounded and protruded (UW, OW, W)"),
    "lip_press": (0.0, 1.0, "lips pressed shut (P, B, M)"),
    "upper_lip_up": (0.0, 1.0, "upper lip raised, teeth shown (F, V, SH)"),
    "lower_lip_tuck": (0.0, 1.0, "lower lip tucked under upper teeth (F, V)"),
    "smile": (0.0, 1.0, "corners up and back"),
    "blink_l": (0.0, 1.0, "subject's left eyelid; 1 = closed"),
    "blink_r": (0.0, 1.0, "subject's right eyelid; 1 = closed"),
    "brow_up": (0.0, 1.0, "brows raised"),
    "head_yaw": (-30.0, 30.0, "degrees, positive = subject turns to their left"),
    "head_pitch": (-20.0, 20.0, "degrees, positive = chin down (nod)"),
    "head_roll": (-20.0, 20.0, "degrees, positive = clockwise in the image"),
    "head_tx": (-0.5, 0.5, "horizontal shift, inter-ocular distances"),
    "head_ty": (-0.5, 0.5, "vertical shift, inter-ocular distances"),
}
CHANNEL_NAMES: tuple[str, ...] = tuple(MOTION_CHANNELS)
MOUTH_CHANNELS: tuple[str, ...] = (
    "jaw_open", "lip_wide", "lip_round", "lip_press", "upper_lip_up", "lower_lip_tuck", "smile",
)
HEAD_CHANNELS: tuple[str, ...] = (
    "head_yaw", "head_pitch", "head_roll", "head_tx", "head_ty",
)


@dataclass
class MotionTrack:
    """T frames × named channels at `fps`. The hinge between audio analysis and rendering.

    `values`: (T, C) float32, column order = `channels`.
    """

    fps: float
    values: np.ndarray
    channels: tuple[str, ...] = CHANNEL_NAMES
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        if self.values.ndim != 2 or self.values.shape[1] != len(self.channels):
            raise ValueError(
                f"values must be (T, {len(self.channels)}), got {self.values.shape}"
            )
        unknown = set(self.channels) - set(MOTION_CHANNELS)
        if unknown:
            raise ValueError(f"unknown motion channels: {sorted(unknown)}")

    @classmethod
    def zeros(cls, n_frames: int, fps: float) -> "MotionTrack":
        return cls(fps=fps, values=np.zeros((n_frames, len(CHANNEL_NAMES)), np.float32))

    @property
    def n_frames(self) -> int:
        return self.values.shape[0]

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[:, self.channels.index(name)]

    def __setitem__(self, name: str, series: np.ndarray) -> None:
        self.values[:, self.channels.index(name)] = series

    def clipped(self) -> "MotionTrack":
        """A copy with every channel clipped to its documented range."""
        lo = np.array([MOTION_CHANNELS[c][0] for c in self.channels], np.float32)
        hi = np.array([MOTION_CHANNELS[c][1] for c in self.channels], np.float32)
        return MotionTrack(self.fps, np.clip(self.values, lo, hi), self.channels, dict(self.meta))

    def to_dict(self) -> dict:
        return {
            "format": "mouthpiece.motion_track/1",
            "fps": self.fps,
            "n_frames": self.n_frames,
            "channels": {c: [round(float(v), 5) for v in self[c]] for c in self.channels},
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "MotionTrack":
        if data.get("format") != "mouthpiece.motion_track/1":
            raise InputError("not a mouthpiece motion track (missing format tag)")
        names = tuple(data["channels"])
        cols = [np.asarray(data["channels"][c], np.float32) for c in names]
        if len({len(c) for c in cols}) > 1:
            raise InputError("motion track channels have different lengths")
        values = np.stack(cols, axis=1) if cols else np.zeros((0, 0), np.float32)
        return cls(float(data["fps"]), values, names, dict(data.get("meta", {})))

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load_json(cls, path: str | Path) -> "MotionTrack":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read motion track {path}: {exc}") from exc
        return cls.from_dict(data)


@dataclass(frozen=True)
class AudioFeatures:
    """Per-video-frame acoustic measurements, computed once by `speech`, read by `motion`.

    `fps`: frames per second of the series (the output video's fps). Sample k summarises the
        audio interval [k/fps, (k+1)/fps): its centre is (k + 0.5)/fps, half a frame after the
        video frame time k/fps (motion.frame_series relies on this convention).
    `series`: name → (T,) float32. Keys provided by speech.features.frame_features:
        "loudness" (0..1, speech-normalised level), "voiced" (0..1 voicing probability),
        "speech" (0..1 speech-activity probability), "open" (0..1 acoustic openness estimate from
        F1 / spectral balance), "round" (0..1 rounding estimate), "spread" (0..1),
        "closure" (0..1 probability of a lip closure/stop at that frame).
    `mel`: optional (T, n_mels) log-mel frames aligned with the series (for learned models).
    """

    fps: float
    series: dict[str, np.ndarray]
    mel: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return len(next(iter(self.series.values()))) if self.series else 0
