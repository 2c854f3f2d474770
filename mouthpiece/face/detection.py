"""Face detection with MediaPipe's BlazeFace models (short range + full range).

The models output raw SSD regressions against a fixed anchor grid; the anchors, the decoding
and the weighted non-maximum suppression below follow the parameters of MediaPipe's
face_detection graphs (SsdAnchorsCalculator / TensorsToDetectionsCalculator options).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from mouthpiece.face.runtime import get_model
from mouthpiece.types import FaceBox

N_KEYPOINTS = 6  # right eye, left eye, nose tip, mouth centre, right ear, left ear
SCORE_CLIP = 100.0  # raw logits are clipped to ±this before the sigmoid
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold for faces
NESTED = 0.6  # a weaker box this much inside a stronger one (or around it) is suppressed


@dataclass(frozen=True)
class DetectorSpec:
    """One BlazeFace variant: model file, input size, anchor strides, anchors per layer rule."""

    model: str
    input_size: int  # px, square input
    strides: tuple[int, ...]
    two_anchors_per_layer: bool  # interpolated_scale_aspect_ratio 1.0 → 2 anchors, 0.0 → 1
    min_score: float


SHORT_RANGE = DetectorSpec(
    "face_detection_short_range.tflite", 128, (8, 16, 16, 16), True, 0.5
)
FULL_RANGE = DetectorSpec(
    "face_detection_full_range_sparse.tflite", 192, (4,), False, 0.6
)


@lru_cache(maxsize=None)
def ssd_anchors(input_size: int, strides: tuple[int, ...], two_per_layer: bool) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1] (fixed anchor size: width = height = 1).

    Consecutive layers with the same stride share one grid, as in MediaPipe's
    SsdAnchorsCalculator; each layer contributes 1 or 2 anchors per cell there.
    """
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        per_cell = 0
        while layer < len(strides) and strides[layer] == stride:
            per_cell += 2 if two_per_layer else 1
            layer += 1
        cells = int(np.ceil(input_size / stride))
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))  # (cells² · per_cell, 2)
    anchors = np.concatenate(centres).astype(np.float32)
    anchors.flags.writeable = False  # shared through the cache
    return anchors


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Fit `image` into a black size×size square, keeping its aspect ratio.

    Returns the (size, size, 3) uint8 square and (factor, off_x, off_y) such that
    image px = (square px − off) / factor.
    """
    h, w = image.shape[:2]
    factor = size / max(h, w)
    rw, rh = max(1, round(w * factor)), max(1, round(h * factor))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (rw, rh), interpolation=interp)
    square = np.zeros((size, size, 3), np.uint8)
    off_x, off_y = (size - rw) // 2, (size - rh) // 2
    square[off_y:off_y + rh, off_x:off_x + rw] = resized
    # exact per-axis factors after rounding are within 0.5 px; one factor keeps boxes square
    return square, factor, float(off_x), float(off_y)


def _decode(spec: DetectorSpec, square: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run one detector on a square uint8 input → (boxes (N, 4) x0 y0 x1 y1, keypoints
    (N, 6, 2)) in input px and scores (N,), only those above the spec's threshold."""
    model = get_model(spec.model)
    size = spec.input_size
    tensor = square.astype(np.float32) * (2.0 / 255.0) - 1.0  # BlazeFace expects [-1, 1]
    outputs = model.run(tensor)
    raw = next(o for o in outputs if o.shape[-1] == 16).reshape(-1, 16)  # (N, 16)
    logits = next(o for o in outputs if o.shape[-1] == 1).reshape(-1)  # (N,)
    logits = np.clip(logits.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = scores >= spec.min_score
    if not keep.any():
        return np.zeros((0, 4 + 2 * N_KEYPOINTS), np.float32), np.zeros(0, np.float64)
    anchors = ssd_anchors(size, spec.strides, spec.two_anchors_per_layer)[keep] * size  # px
    raw = raw[keep]
    cx, cy = raw[:, 0] + anchors[:, 0], raw[:, 1] + anchors[:, 1]
    half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    kps = raw[:, 4:4 + 2 * N_KEYPOINTS].reshape(-1, N_KEYPOINTS, 2) + anchors[:, None, :]
    return np.concatenate([boxes, kps.reshape(-1, 2 * N_KEYPOINTS)], axis=1), scores[keep]


def _overlaps(box: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU of `box` with each of `others`, and intersection / smaller area (containment)."""
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    iou = inter / np.maximum(area + areas - inter, 1e-9)
    return iou, inter / np.maximum(np.minimum(area, areas), 1e-9)


def weighted_nms(dets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: each kept detection is the score-weighted mean of
    the detections overlapping it (IoU > NMS_IOU), with the best score of the group.

    Weaker boxes mostly containing or contained in a kept one are dropped too: a face seen
    at too coarse a scale comes out as a misplaced, oversized box around the real one.
    """
    order = np.argsort(-scores, kind="stable")
    dets, scores = dets[order], scores[order]
    kept, kept_scores = [], []
    remaining = np.ones(len(dets), bool)
    for i in range(len(dets)):
        if not remaining[i]:
            continue
        iou, containment = _overlaps(dets[i], dets)
        group = remaining & (iou > NMS_IOU)
        group[i] = True
        weights = scores[group][:, None]
        kept.append((dets[group] * weights).sum(0) / weights.sum())
        kept_scores.append(scores[i])
        remaining &= ~group & ~(containment > NESTED)
    return np.array(kept, np.float32).reshape(-1, dets.shape[1]), np.array(kept_scores)


TILE = 768  # px of the photo; full-range tiles this size find faces down to ~1/16 of it
TILE_OVERLAP = 0.25  # of the tile side: faces up to this size lie whole inside some tile
EDGE_MARGIN = 0.1  # of a box's size: tile detections this close to an inner tile edge are cut
# Below this size (px at the model input) a box is unreliable: kept only from the finest pass
# (the smallest faces are seen larger, and correctly sized, in a finer tiling).
MIN_COARSE_BOX = 16


def blazeface_detect(image: np.ndarray) -> list[FaceBox]:
    """Raw BlazeFace detections in an (H, W, 3) uint8 RGB image, largest first, image px.

    Both variants run on the letterboxed image: short range finds faces that fill much of
    the frame, full range smaller ones. In photos larger than `TILE`, full range also runs on
    overlapping tiles of an image pyramid (tiles of TILE, 2·TILE, … photo px, each seen at
    the model's 192 px), so faces of ~64 px are found in a 4000-px photo. Detections are
    merged by weighted NMS.
    """
    image = as_rgb(image)
    h, w = image.shape[:2]
    tiled = max(h, w) > TILE
    found = [
        _detect_whole(SHORT_RANGE, image),
        _detect_whole(FULL_RANGE, image, MIN_COARSE_BOX if tiled else 0),
    ]
    tile, level = TILE, image
    while tile < max(h, w):
        factor = FULL_RANGE.input_size / tile  # level px per photo px
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        level = cv2.resize(level, size, interpolation=cv2.INTER_AREA)  # pyramid, coarser
        dets, scores = _detect_tiled(level, MIN_COARSE_BOX if tile > TILE else 0)
        dets = dets.reshape(-1, 2 + N_KEYPOINTS, 2) / [size[0] / w, size[1] / h]  # photo px
        found.append((dets.reshape(-1, 4 + 2 * N_KEYPOINTS).astype(np.float32), scores))
        tile *= 2
    dets = np.concatenate([d for d, _ in found])
    scores = np.concatenate([s for _, s in found])
    if not len(dets):
        return []
    dets, scores = weighted_nms(dets, scores)
    faces = [
        FaceBox(
            float(d[0]), float(d[1]), float(d[2]), float(d[3]), float(s),
            d[4:].reshape(N_KEYPOINTS, 2).astype(np.float32),
        )
        for d, s in zip(dets, scores)
    ]
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


def _detect_whole(
    spec: DetectorSpec, image: np.ndarray, min_box: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Detections of one model on the letterboxed image whose box is at least `min_box` px at
    the model input: (N, 16) boxes + keypoints in image px, and (N,) scores."""
    square, factor, off_x, off_y = letterbox(image, spec.input_size)
    dets, scores = _decode(spec, square)
    keep = _box_size(dets) >= min_box
    dets = dets[keep].reshape(-1, 2 + N_KEYPOINTS, 2)  # (N, 8, 2): box corners + keypoints
    dets = (dets - [off_x, off_y]) / factor
    return dets.reshape(-1, 4 + 2 * N_KEYPOINTS).astype(np.float32), scores[keep]


def _detect_tiled(level: np.ndarray, min_box: float) -> tuple[np.ndarray, np.ndarray]:
    """Full-range detections on overlapping model-sized tiles of a pyramid level, in level
    px. Boxes touching a tile edge inside the level are dropped: that face is cut there and
    lies whole in a neighbouring tile."""
    size = FULL_RANGE.input_size
    h, w = level.shape[:2]
    all_dets, all_scores = [], []
    for x0, y0 in _tile_origins(w, h, size):
        part = level[y0:y0 + size, x0:x0 + size]
        square = np.zeros((size, size, 3), np.uint8)  # level edges shorter than a tile
        square[:part.shape[0], :part.shape[1]] = part
        dets, scores = _decode(FULL_RANGE, square)
        keep = (_box_size(dets) >= min_box) & _away_from_inner_edges(
            dets, (x0, y0), w, h
        )
        dets = dets[keep].reshape(-1, 2 + N_KEYPOINTS, 2) + [x0, y0]
        all_dets.append(dets.reshape(-1, 4 + 2 * N_KEYPOINTS))
        all_scores.append(scores[keep])
    return np.concatenate(all_dets), np.concatenate(all_scores)


def _box_size(dets: np.ndarray) -> np.ndarray:
    return np.minimum(dets[:, 2] - dets[:, 0], dets[:, 3] - dets[:, 1])


def _tile_origins(width: int, height: int, tile: int) -> list[tuple[int, int]]:
    """Top-left corners of tiles of side `tile` covering the image with TILE_OVERLAP."""
    stride = tile * (1 - TILE_OVERLAP)

    def starts(length: int) -> np.ndarray:
        if length <= tile:
            return np.zeros(1, int)
        n = int(np.ceil((length - tile) / stride)) + 1
        return np.linspace(0, length - tile, n).round().astype(int)

    return [(int(x), int(y)) for y in starts(height) for x in starts(width)]


def _away_from_inner_edges(
    dets: np.ndarray, origin: tuple[int, int], width: int, height: int
) -> np.ndarray:
    """(N,) bool: boxes (tile px) clear of every tile edge that lies inside the level."""
    size = FULL_RANGE.input_size
    x0, y0 = origin
    margin_x = (dets[:, 2] - dets[:, 0]) * EDGE_MARGIN
    margin_y = (dets[:, 3] - dets[:, 1]) * EDGE_MARGIN
    ok = np.ones(len(dets), bool)
    if x0 > 0:
        ok &= dets[:, 0] - margin_x > 0
    if y0 > 0:
        ok &= dets[:, 1] - margin_y > 0
    if x0 + size < width:
        ok &= dets[:, 2] + margin_x < size
    if y0 + size < height:
        ok &= dets[:, 3] + margin_y < size
    return ok


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Accept (H, W, 3) RGB, (H, W) grey or (H, W, 4) RGBA uint8; return (H, W, 3) uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise TypeError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    return image
