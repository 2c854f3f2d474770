"""Measuring what users judge: lip sync against known phoneme timings, and identity kept.

Lip sync is measured on the *output video*: landmarks are re-detected on every frame, the
inner-lip gap is compared with an "expected openness" series built from the phoneme timings.

Identity is SSIM against the input photo on the output's pixel grid, outside the mouth/jaw
region. Raw SSIM also counts the intended head motion as a difference (a 1° turn shifts a
textured face by a few pixels: face SSIM 0.6 for a pure 0.01-inter-ocular shift), so two
pose-compensated figures are reported beside it — does the face stay the person, beyond where
the head turned?
- aligned: each frame is registered back onto the photo by the rotation + translation that
  best matches the face (ECC image registration on the face oval outside the mouth/jaw).
  Re-detected landmarks were tried first and are unusable for this: their jitter (±1° of
  rotation, ±3 % of scale on a still head) misaligned still frames to SSIM 0.67. A 2-D
  alignment cannot undo the parallax of a 3-D turn (measured on rendered frames: yaw alone
  0.97, pitch alone 0.98), nor the intended brow and smile motion (0.97).
- head-matched: the reference is the photo moved by the frame's own head pose (the track's
  head channels rendered alone), so only expression and artefacts count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mouthpiece.face import LandmarkTracker
from mouthpiece.media import read_video_frames
from mouthpiece.topology import FACE_OVAL, NOSE_TIP, inter_ocular
from mouthpiece.types import CHANNEL_NAMES, HEAD_CHANNELS, FaceRig, MotionTrack, PhonemeSegment

# Expected jaw/lip opening per phone (0 closed … 1 widest), a coarse articulatory table.
OPENNESS: dict[str, float] = {
    "AA": 1.0, "AE": 0.85, "AH": 0.75, "AO": 0.85, "AW": 0.9, "AY": 0.9, "EH": 0.65, "ER": 0.45,
    "EY": 0.55, "IH": 0.45, "IY": 0.3, "OW": 0.6, "OY": 0.65, "UH": 0.4, "UW": 0.3,
    "P": 0.0, "B": 0.0, "M": 0.0, "F": 0.1, "V": 0.1, "W": 0.2, "TH": 0.2, "DH": 0.2,
    "S": 0.15, "Z": 0.15, "SH": 0.2, "ZH": 0.2, "CH": 0.2, "JH": 0.2, "T": 0.25, "D": 0.25,
    "N": 0.25, "L": 0.3, "R": 0.3, "Y": 0.3, "K": 0.3, "G": 0.3, "NG": 0.3, "HH": 0.4, "SIL": 0.0,
}
BILABIALS = frozenset({"P", "B", "M"})
# Inner-lip gap (mean of three inner-lip pairs) below which lips count as closed,
# in inter-ocular distances (≈ 3–4 mm on an adult face).
CLOSED_GAP_IOD = 0.04
INNER_LIP_PAIRS = ((82, 87), (13, 14), (312, 317))
SILENCE_MIN_S = 0.25  # only pauses at least this long count as silence
SILENCE_MARGIN_S = 0.08  # ignore this much at each edge of a pause (anticipation/release)
MAX_LAG_FRAMES = 5


@dataclass
class LipSyncReport:
    """Figures of the engine issue: correlation, best lag, bilabial and silence closure."""

    correlation: float  # Pearson r at lag 0
    best_lag_frames: int  # lag maximising r; positive = video late
    best_lag_correlation: float
    bilabial_closed: float  # share of p/b/m centres with closed lips
    bilabial_count: int
    silence_closed: float  # share of silent frames with closed lips
    silence_frames: int
    frames_with_face: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def mouth_openings(video_path: str | Path) -> np.ndarray:
    """Inner-lip gap per frame of a video, in inter-ocular distances; NaN where no face."""
    tracker = LandmarkTracker()
    gaps = []
    for frame in read_video_frames(video_path):
        marks = tracker.track(frame)
        if marks is None:
            gaps.append(np.nan)
            continue
        pts = marks.xy
        gap = np.mean([np.linalg.norm(pts[a] - pts[b]) for a, b in INNER_LIP_PAIRS])
        gaps.append(gap / inter_ocular(pts))
    return np.asarray(gaps, np.float64)


def expected_openness(segments: list[PhonemeSegment], n_frames: int, fps: float) -> np.ndarray:
    """Per-frame openness from phoneme timings; frame k shows time k / fps."""
    times = np.arange(n_frames) / fps  # seconds
    out = np.zeros(n_frames)
    for seg in segments:
        inside = (times >= seg.start_s) & (times < seg.end_s)
        out[inside] = OPENNESS.get(seg.phone, 0.3)
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return 0.0
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def lipsync_report(openings: np.ndarray, segments: list[PhonemeSegment], fps: float) -> LipSyncReport:
    """Compare a measured opening series with phoneme timings (see module docstring)."""
    n = len(openings)
    expected = expected_openness(segments, n, fps)
    lags = {}
    for lag in range(-MAX_LAG_FRAMES, MAX_LAG_FRAMES + 1):
        # opening[k + lag] against expected[k]
        if lag >= 0:
            lags[lag] = _pearson(openings[lag:], expected[: n - lag])
        else:
            lags[lag] = _pearson(openings[:lag], expected[-lag:])
    best = max(lags, key=lambda k: (lags[k], -abs(k)))
    closed = openings < CLOSED_GAP_IOD

    centres = [round((s.start_s + s.end_s) / 2 * fps) for s in segments if s.phone in BILABIALS]
    centres = [c for c in centres if c < n and np.isfinite(openings[c])]
    bilabial = float(np.mean([closed[c] for c in centres])) if centres else float("nan")

    silent = np.zeros(n, bool)
    times = np.arange(n) / fps
    for s in segments:
        if s.phone == "SIL" and s.duration_s >= SILENCE_MIN_S:
            silent |= (times >= s.start_s + SILENCE_MARGIN_S) & (times < s.end_s - SILENCE_MARGIN_S)
    silent &= np.isfinite(openings)
    silence = float(closed[silent].mean()) if silent.any() else float("nan")

    return LipSyncReport(
        correlation=lags[0], best_lag_frames=int(best), best_lag_correlation=lags[best],
        bilabial_closed=bilabial, bilabial_count=len(centres),
        silence_closed=silence, silence_frames=int(silent.sum()),
        frames_with_face=float(np.isfinite(openings).mean()) if n else 0.0,
    )



MOUTH_JAW_EXTRA = (98, 327, 2)  # nose wings and subnasale close the region at the top
MOUTH_JAW_DILATE = 15  # px
BACKGROUND_SCALE = 2.0  # the background is outside the face oval enlarged this much
ECC_CRITERIA = (3, 100, 1e-6)  # cv2.TERM_CRITERIA_COUNT | EPS: iterations, correlation change


@dataclass
class IdentityReport:
    """SSIM of output frames against the input photo, median (and min) over scored frames.

    `ssim_*`: the whole frame outside the mouth/jaw region, raw; `face_ssim_median`: the face
    oval outside the mouth/jaw, raw; `aligned_face_ssim_*`: the same region after registering
    each frame onto the photo; `head_matched_face_ssim_*`: the same region against the photo
    moved by the frame's own head pose (None without the track); `background_ssim_median`:
    raw, outside the head's reach (see the module docstring)."""

    ssim_median: float
    ssim_min: float
    face_ssim_median: float
    aligned_face_ssim_median: float
    aligned_face_ssim_min: float
    head_matched_face_ssim_median: float | None
    head_matched_face_ssim_min: float | None
    background_ssim_median: float
    frames_scored: int

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _ssim_map(reference: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of the grey levels (mean of RGB), 7×7 windows."""
    from skimage.metrics import structural_similarity

    a = reference.mean(axis=2) if reference.ndim == 3 else reference
    b = frame.mean(axis=2) if frame.ndim == 3 else frame
    _, ssim_map = structural_similarity(a, b, data_range=255.0, full=True)
    return ssim_map


def masked_ssim(reference: np.ndarray, frame: np.ndarray, keep: np.ndarray) -> float:
    """Mean SSIM over pixels where `keep` is true (grey level, 7×7 Gaussian-free windows)."""
    return float(_ssim_map(reference, frame)[keep].mean())


def identity_regions(points: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean masks on an (h, w) frame from the face's landmarks there ((468, 2+) px):
    `outside_mouth` (all but the mouth/jaw), `face` (face oval minus mouth/jaw), `background`
    (outside the face oval enlarged `BACKGROUND_SCALE`×)."""
    import cv2

    h, w = shape
    oval = points[list(FACE_OVAL), :2]
    # mouth/jaw: the face oval below the nose, closed by the nose wings, dilated a little
    lower = np.vstack([oval[oval[:, 1] >= points[NOSE_TIP, 1] - 0.02 * h],
                       points[list(MOUTH_JAW_EXTRA), :2]])

    def hull(xy: np.ndarray) -> np.ndarray:
        mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(xy).astype(np.int32)), 1)
        return mask

    mouth = cv2.dilate(hull(lower), np.ones((MOUTH_JAW_DILATE, MOUTH_JAW_DILATE), np.uint8)) > 0
    centre = oval.mean(axis=0)
    return {"outside_mouth": ~mouth, "face": (hull(oval) > 0) & ~mouth,
            "background": hull(centre + BACKGROUND_SCALE * (oval - centre)) == 0}


def align_to_reference(frame: np.ndarray, reference: np.ndarray, region: np.ndarray
                       ) -> np.ndarray:
    """`frame` moved by the rotation + translation that best registers it onto `reference`
    within `region` (ECC on grey levels; Lanczos resampling). Unchanged if ECC fails."""
    import cv2

    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(reference.mean(axis=2).astype(np.float32),
                                       frame.mean(axis=2).astype(np.float32), warp,
                                       cv2.MOTION_EUCLIDEAN, ECC_CRITERIA,
                                       region.astype(np.uint8), 5)
    except cv2.error:  # did not converge: score the frame as it is
        return frame
    h, w = frame.shape[:2]
    return cv2.warpAffine(frame, warp, (w, h), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def identity_report(rig: FaceRig, video_path: str | Path, *, full_frame: bool = True,
                    track: MotionTrack | None = None, every: int = 5) -> IdentityReport:
    """Identity figures of a video made from `rig`'s photo (every `every`-th frame and the
    first are scored). With the generation's `track`, the head-matched figure too."""
    from mouthpiece.render import Renderer

    renderer = Renderer(rig, full_frame=full_frame)
    reference = renderer.render(np.zeros(len(CHANNEL_NAMES)))  # the photo on the output grid
    points = _output_points(renderer, rig.landmarks.points)
    regions = identity_regions(points, reference.shape[:2])
    head = [CHANNEL_NAMES.index(c) for c in HEAD_CHANNELS]
    raw, face, aligned, matched, background = [], [], [], [], []
    for index, frame in enumerate(read_video_frames(video_path)):
        if index % every:
            continue
        ssim = _ssim_map(reference, frame)
        raw.append(ssim[regions["outside_mouth"]].mean())
        face.append(ssim[regions["face"]].mean())
        background.append(ssim[regions["background"]].mean())
        back = align_to_reference(frame, reference, regions["face"])
        aligned.append(_ssim_map(reference, back)[regions["face"]].mean())
        if track is not None:
            pose = np.zeros(len(CHANNEL_NAMES))
            pose[head] = track.values[index, head]
            posed = renderer.render(pose)
            moved = identity_regions(_output_points(renderer, renderer.deformer.deform(pose)),
                                     reference.shape[:2])
            matched.append(_ssim_map(posed, frame)[moved["face"]].mean())
    return IdentityReport(
        ssim_median=float(np.median(raw)), ssim_min=float(np.min(raw)),
        face_ssim_median=float(np.median(face)),
        aligned_face_ssim_median=float(np.median(aligned)),
        aligned_face_ssim_min=float(np.min(aligned)),
        head_matched_face_ssim_median=float(np.median(matched)) if matched else None,
        head_matched_face_ssim_min=float(np.min(matched)) if matched else None,
        background_ssim_median=float(np.median(background)), frames_scored=len(raw),
    )


def _output_points(renderer, crop_points: np.ndarray) -> np.ndarray:
    """(468, 2) crop px → output-frame px (pasted into the photo for full frames)."""
    xy = np.asarray(crop_points, np.float64)[:, :2]
    if renderer.compositor is None:
        return xy
    return xy * renderer.compositor.shrink + renderer.compositor.origin
