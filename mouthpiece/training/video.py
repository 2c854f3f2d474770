"""Real talking videos as training data: landmarks per frame → fitted mouth channels.

Fitting is the inverse of rendering. The rest face is the median shape of the frames with the
most closed mouths; each frame's landmarks are brought into the rest face's frame by a 2-D
similarity fitted on rigid points (eyes, brow line, nose bridge, temples), which removes
position, scale and in-plane roll; then head yaw and pitch plus the 7 mouth channels are fitted
by bounded least squares so that `FaceDeformer(rest).deform(values)` matches the observed
lips, chin and rigid points. Each frame starts from the previous frame's solution.
The federated client reuses exactly `fit_track_to_video` / `build_examples_from_video`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mouthpiece.face import LandmarkTracker
from mouthpiece.media import load_audio, probe_video, read_video_frames
from mouthpiece.render.deform import FaceDeformer
from mouthpiece.topology import (
    FOREHEAD, LEFT_EYE_INNER, LEFT_EYE_OUTER, LIPS_INNER, LIPS_OUTER, RIGHT_EYE_INNER,
    RIGHT_EYE_OUTER, inter_ocular,
)
from mouthpiece.training.data import FPS, Example, inputs_for
from mouthpiece.types import CHANNEL_NAMES, MOUTH_CHANNELS, InputError, Landmarks, MotionTrack

log = logging.getLogger(__name__)

RIGID = [RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_OUTER, LEFT_EYE_INNER, FOREHEAD,
         6, 168, 197, 127, 356, 70, 300, 105, 334]  # eye corners, bridge, temples, brows
JAW_LINE = (152, 148, 176, 149, 150, 377, 400, 378, 379, 175, 199, 200)
MOUTH_POINTS = sorted(set(LIPS_OUTER + LIPS_INNER + JAW_LINE))
FITTED = ("head_yaw", "head_pitch") + MOUTH_CHANNELS
INNER_GAP_PAIRS = ((82, 87), (13, 14), (312, 317))
REST_SHARE = 0.1  # the rest face = median of this share of frames with the smallest gap


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares 2-D similarity (Umeyama) mapping src (N, 2) onto dst: (scale, R, t)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, s, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, d])
    rot = u @ fix @ vt
    scale = float((s * np.diag(fix)).sum() / max((a**2).sum(), 1e-12))
    return scale, rot, mu_d - scale * rot @ mu_s


def _gap(points: np.ndarray) -> float:
    return float(np.mean([np.linalg.norm(points[a, :2] - points[b, :2])
                          for a, b in INNER_GAP_PAIRS]) / inter_ocular(points))


def rest_landmarks(marks: list[Landmarks]) -> Landmarks:
    """Median shape (aligned on the rigid points) of the frames with the most closed lips."""
    gaps = np.array([_gap(m.points) for m in marks])
    count = max(1, int(np.ceil(REST_SHARE * len(marks))))
    chosen = [marks[i].points for i in np.argsort(gaps)[:count]]
    ref = chosen[0]
    aligned = []
    for pts in chosen:
        scale, rot, t = similarity(pts[RIGID, :2], ref[RIGID, :2])
        out = pts.copy()
        out[:, :2] = scale * pts[:, :2] @ rot.T + t
        out[:, 2] = scale * pts[:, 2]
        aligned.append(out)
    return Landmarks(np.median(np.stack(aligned), axis=0).astype(np.float32))


class TrackFitter:
    """Fits channel values to observed landmarks of one face, relative to its rest shape."""

    def __init__(self, rest: Landmarks):
        self.rest = rest
        self.deformer = FaceDeformer(rest.points)
        self.iod = inter_ocular(rest.points)
        self._cols = [CHANNEL_NAMES.index(c) for c in FITTED]
        self._idx = np.array(RIGID + MOUTH_POINTS)
        self._w = np.concatenate([np.full(len(RIGID), 1.0), np.full(len(MOUTH_POINTS), 2.0)])
        lo = [-30.0, -20.0] + [0.0] * len(MOUTH_CHANNELS)
        hi = [30.0, 20.0] + [1.0] * len(MOUTH_CHANNELS)
        self.bounds = (np.array(lo), np.array(hi))

    def _row(self, params: np.ndarray) -> np.ndarray:
        row = np.zeros(len(CHANNEL_NAMES))
        row[self._cols] = params
        return row

    def fit(self, observed: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
        """(468, 2|3) observed landmarks → fitted values of FITTED (head_yaw, head_pitch,
        then the mouth channels)."""
        from scipy.optimize import least_squares

        rest_xy = self.rest.points[:, :2].astype(np.float64)
        scale, rot, t = similarity(observed[RIGID, :2], rest_xy[RIGID])
        target = (scale * observed[:, :2] @ rot.T + t)[self._idx]  # in rest-image px

        def residual(params):
            moved = self.deformer.deform(self._row(params))[self._idx]
            return ((moved - target) * self._w[:, None]).ravel() / self.iod

        # Start strictly inside the bounds: from a bound the solver may not move at all.
        x0 = start if start is not None else np.zeros(len(FITTED))
        x0 = np.clip(x0, self.bounds[0] + 0.01, self.bounds[1] - 0.01)
        # deform() returns float32 px: finite differences need steps well above its precision.
        result = least_squares(residual, x0, bounds=self.bounds, diff_step=1e-3, max_nfev=40)
        return result.x


def video_landmarks(video_path: str | Path) -> tuple[list[Landmarks | None], float]:
    tracker = LandmarkTracker()
    marks = [tracker.track(frame) for frame in read_video_frames(video_path)]
    return marks, float(probe_video(video_path)["fps"])


def fit_track_to_video(video_path: str | Path, rest: Landmarks | None = None) -> MotionTrack:
    """MotionTrack (at the video's fps) whose mouth channels (and head yaw/pitch) reproduce
    the face in `video_path`. Frames without a face repeat the last fit (or rest).
    `rest`: the neutral face (e.g. the portrait a rendered video came from); default: the
    median of the video's most closed-mouth frames. `meta["fit_rms_iod"]`: mean residual."""
    marks, fps = video_landmarks(video_path)
    found = [m for m in marks if m is not None]
    if not found:
        raise InputError(f"{video_path}: no face found in any frame")
    if len(found) < 0.5 * len(marks):
        log.warning("%s: a face was found in only %d of %d frames", video_path, len(found),
                    len(marks))
    fitter = TrackFitter(rest if rest is not None else rest_landmarks(found))
    track = MotionTrack.zeros(len(marks), fps)
    previous = None
    residuals = []
    for k, m in enumerate(marks):
        if m is not None:
            previous = fitter.fit(m.points, previous)
            moved = fitter.deformer.deform(fitter._row(previous))
            scale, rot, t = similarity(m.points[RIGID, :2], fitter.rest.points[RIGID, :2])
            aligned = scale * m.points[:, :2] @ rot.T + t
            residuals.append(float(np.sqrt(np.mean(
                np.sum((moved[MOUTH_POINTS] - aligned[MOUTH_POINTS]) ** 2, 1))))
                / fitter.iod)
        if previous is not None:
            for name, value in zip(FITTED, previous):
                track[name] = np.where(np.arange(len(marks)) == k, value, track[name])
    track.meta.update(source="fitted-video", video=str(video_path),
                      frames_with_face=len(found), fit_rms_iod=round(float(np.mean(residuals)), 4))
    return track


def build_examples_from_video(video_path: str | Path, rest: Landmarks | None = None
                              ) -> list[Example]:
    """Training examples from a real talking video: the fitted mouth channels (resampled to
    the model's FPS) as targets, the video's own audio track as input."""
    track = fit_track_to_video(video_path, rest)
    audio = load_audio(video_path)
    n = max(1, int(round(track.duration_s * FPS)))
    times = np.arange(n) / FPS  # seconds
    src = np.arange(track.n_frames) / track.fps
    targets = np.stack([np.interp(times, src, track[c]) for c in MOUTH_CHANNELS], axis=1)
    return [Example(inputs_for(audio.samples, n).astype(np.float32),
                    np.clip(targets, 0, 1).astype(np.float32), f"video:{Path(video_path).name}")]
