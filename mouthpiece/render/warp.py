"""Dense image warp driven by landmark displacements, precomputed once per face.

Two forward displacement fields on the crop, both linear in what drives them:
- expression (mouth, jaw, lids, brows): piecewise-linear interpolation of the landmark
  displacements over a Delaunay mesh of the landmarks (inner-lip and eye contours densified
  so the mesh follows them), closed by a ring of fixed points around the face. Precomputed as
  sparse (pixels × 468) matrices over the ring's bounding box only: nothing outside it moves.
- head: the 3-D rigid motion of `HeadFrame.head_motion` per pixel, with a depth map
  interpolated from the landmarks' z, weighted by a mask that is 1 on the head and falls
  smoothly to 0 towards the neck, shoulders and crop border — so the border never moves and
  the crop pastes back into the photo without a seam.

`cv2.remap` needs the BACKWARD map (which source pixel each output pixel shows): solved by
fixed-point iteration src = y − d(src). The fields are smooth, so the head is inverted on a 4×
coarser grid and the expression on a 2× coarser one, then upsampled; only the mouth, where
the lips tear apart, is solved at full resolution, separately for each lip (see `MouthSolver`).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import scipy.sparse as sparse
from scipy import ndimage
from scipy.spatial import Delaunay

from mouthpiece.render.deform import INNER_LIP_PAIRS, FaceDeformer
from mouthpiece.topology import (
    CHIN,
    FACE_OVAL,
    FOREHEAD,
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    LIPS_INNER_LOWER,
    LIPS_INNER_UPPER,
    LIPS_OUTER,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
)
from mouthpiece.types import N_LANDMARKS

log = logging.getLogger(__name__)

HEAD_STEP = 4  # head field grid step, crop px
EXPR_STEP = 2  # expression field grid step outside the mouth, crop px
MIN_LIP_GAP = 1.0  # px: closed lips are split this far apart in the mesh so both stay vertices
RING_SCALE = 1.3  # fixed ring around the face, × face-oval radius (more below the chin)
RING_SCALE_CHIN = 1.6
_DENSIFIED = (LIPS_INNER_UPPER, LIPS_INNER_LOWER, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER,
              LEFT_EYE_UPPER, LEFT_EYE_LOWER)
_NO_BOX = (0, 0, 0, 0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _sorted(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(xs)
    return xs[order], ys[order]


def _cell_centres(n_cells: int, n_px: int) -> np.ndarray:
    """Crop-px centres of `n_cells` cells covering `n_px` pixels, as cv2.resize places them."""
    return (np.arange(n_cells) + 0.5) * (n_px / n_cells) - 0.5


def _barycentric_matrix(tri: Delaunay, pix: np.ndarray) -> sparse.csr_matrix:
    """(n, V) weights interpolating mesh vertices at points `pix` (0 outside the mesh)."""
    simplex = tri.find_simplex(pix)
    inside = simplex >= 0
    trans = tri.transform[simplex[inside]]  # (m, 3, 2)
    b2 = np.einsum("mij,mj->mi", trans[:, :2], pix[inside] - trans[:, 2])
    bary = np.c_[b2, 1 - b2.sum(axis=1)]  # (m, 3)
    rows = np.repeat(np.flatnonzero(inside), 3)
    cols = tri.simplices[simplex[inside]].ravel()
    return sparse.csr_matrix((bary.ravel(), (rows, cols)), shape=(len(pix), tri.npoints))


def _remap(field: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Bilinear samples of `field` at (…, 2) index coordinates; zero outside."""
    return cv2.remap(field, coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)


class FaceWarp:
    """Precomputed warp of one crop. `backward_map` turns landmark displacements and a head
    motion into remap coordinates for a region of the crop."""

    def __init__(self, deformer: FaceDeformer, size: tuple[int, int]):
        self.width, self.height = size
        points = deformer.points  # (468, 3) crop px
        self.frame = deformer.frame
        self.rest_xy = points[:, :2].astype(np.float32)
        vertices, mixing = self._mesh_vertices(points[:, :2])
        self._mesh = Delaunay(vertices)
        if len(getattr(self._mesh, "coplanar", [])):
            log.warning("%d landmarks coincide and were left out of the warp mesh",
                        len(self._mesh.coplanar))
        self._mixing = mixing  # (V, 468)
        self._build_local(vertices)
        self._build_head(points)
        self.mouth = MouthSolver(self, points)
        ly0, ly1, lx0, lx1 = self.local_box
        hy0, hy1, hx0, hx1 = self.head_box
        s = EXPR_STEP
        ry0, rx0 = min(ly0, hy0) // s * s, min(lx0, hx0) // s * s
        ry1 = min(-(-max(ly1, hy1) // s) * s, self.height - self.height % s)
        rx1 = min(-(-max(lx1, hx1) // s) * s, self.width - self.width % s)
        self.region = (ry0, ry1, rx0, rx1)
        ys, xs = np.mgrid[ry0:ry1:s, rx0:rx1:s].astype(np.float32)
        self._region_coarse_grid = np.dstack([xs, ys]) + (s - 1) / 2
        ys, xs = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        self.grid = np.dstack([xs, ys])  # (h, w, 2) pixel coordinates

    # ---- precomputation ---------------------------------------------------------------------
    def _mesh_vertices(self, xy: np.ndarray) -> tuple[np.ndarray, sparse.csr_matrix]:
        """Mesh vertices (V, 2) and the (V, 468) matrix giving each vertex's displacement from
        the landmarks' (virtual contour points interpolate, ring points stay put)."""
        xy = xy.astype(np.float64).copy()
        down = self.frame.axes[:2, 1] / np.linalg.norm(self.frame.axes[:2, 1])
        for up, lo in INNER_LIP_PAIRS:
            if up == lo:
                continue
            gap = float(np.dot(xy[lo] - xy[up], down))
            if gap < MIN_LIP_GAP:
                shift = (MIN_LIP_GAP - gap) / 2 * down
                xy[up] -= shift
                xy[lo] += shift
        rows = [sparse.identity(N_LANDMARKS, format="csr")]
        extra = []
        for contour in _DENSIFIED:
            for a, b in zip(contour[:-1], contour[1:]):
                for t in (1 / 3, 2 / 3):
                    extra.append((1 - t) * xy[a] + t * xy[b])
                    rows.append(sparse.csr_matrix(
                        ([1 - t, t], ([0, 0], [a, b])), shape=(1, N_LANDMARKS)))
        oval = xy[list(FACE_OVAL)]
        centre = oval.mean(axis=0)
        chin_side = np.dot(oval - centre, down) > 0.3 * np.dot(xy[CHIN] - centre, down)
        scale = np.where(chin_side, RING_SCALE_CHIN, RING_SCALE)[:, None]
        ring = centre + scale * (oval - centre)
        ring = np.clip(ring, [0, 0], [self.width - 1, self.height - 1])
        self._ring = ring
        rows.append(sparse.csr_matrix((len(ring), N_LANDMARKS)))
        vertices = np.vstack([xy, np.array(extra), ring])
        return vertices, sparse.vstack(rows, format="csr")

    def field_matrix(self, xs: np.ndarray, ys: np.ndarray) -> sparse.csr_matrix:
        """(n, 468) sparse matrix: landmark offsets → expression displacement at the points."""
        pix = np.c_[np.ravel(xs), np.ravel(ys)].astype(np.float64)
        return (_barycentric_matrix(self._mesh, pix) @ self._mixing).astype(np.float32).tocsr()

    def _build_local(self, vertices: np.ndarray) -> None:
        # The local box, aligned to the coarse grid so coarse cells tile it exactly.
        lo = np.floor(self._ring.min(axis=0)).astype(int)
        hi = np.ceil(self._ring.max(axis=0)).astype(int) + 1
        s = EXPR_STEP
        x0, y0 = (np.maximum(lo, 0) // s) * s
        x1 = min(-(-hi[0] // s) * s, self.width - self.width % s)
        y1 = min(-(-hi[1] // s) * s, self.height - self.height % s)
        self.local_box = (int(y0), int(y1), int(x0), int(x1))
        self._local_coarse_shape = ((y1 - y0) // s, (x1 - x0) // s)
        ys, xs = np.mgrid[0:self._local_coarse_shape[0], 0:self._local_coarse_shape[1]]
        cx = x0 + xs * s + (s - 1) / 2
        cy = y0 + ys * s + (s - 1) / 2
        self._local_matrix = self.field_matrix(cx, cy)  # (n_coarse, 468)
        self._local_coarse_grid = np.dstack([cx, cy]).astype(np.float32)

    def _build_head(self, points: np.ndarray) -> None:
        h, w = self.height, self.width
        hc, wc = -(-h // HEAD_STEP), -(-w // HEAD_STEP)
        gx, gy = np.meshgrid(_cell_centres(wc, w), _cell_centres(hc, h))
        # Depth: the landmarks' z inside the face, continued outwards, smoothed.
        pix = np.c_[gx.ravel(), gy.ravel()]
        weights = _barycentric_matrix(Delaunay(points[:, :2]), pix)
        inside = np.asarray(weights.sum(axis=1)).ravel() > 0.5
        z = np.where(inside, weights @ points[:, 2], np.nan).reshape(hc, wc)
        missing = np.isnan(z)
        if missing.any():
            idx = ndimage.distance_transform_edt(missing, return_distances=False,
                                                 return_indices=True)
            z = z[idx[0], idx[1]]
        unit_c = self.frame.unit / (w / wc)
        z = ndimage.gaussian_filter(z, sigma=max(0.08 * unit_c, 0.5))

        # Head mask in 2-D face coordinates (u across, v down, inter-ocular units): an
        # ellipse from just under the chin to the top of the skull, soft edge, 0 at the border.
        ax = self.frame.axes[:2, :2] * self.frame.unit  # columns: head x, y in px
        origin = self.frame.origin[:2]
        u, v = np.linalg.solve(ax, pix.T - origin[:, None]).reshape(2, hc, wc)
        face = np.linalg.solve(ax, (points[list(FACE_OVAL), :2] - origin).T)
        u_mid = (face[0].min() + face[0].max()) / 2
        half_w = (face[0].max() - face[0].min()) / 2 * 1.3
        v_low = np.linalg.solve(ax, points[CHIN, :2] - origin)[1] + 0.08
        v_top = np.linalg.solve(ax, points[FOREHEAD, :2] - origin)[1] - 0.9
        v_mid, half_h = (v_low + v_top) / 2, (v_low - v_top) / 2
        r = np.hypot((u - u_mid) / half_w, (v - v_mid) / half_h)
        mask = 1.0 - _smoothstep((r - 1.0) / 0.45)
        border = np.minimum.reduce([gx, gy, (w - 1) - gx, (h - 1) - gy]) / min(h, w)
        mask *= _smoothstep((border - 0.02) / 0.08)
        self._head_mask = mask.astype(np.float32)  # (hc, wc)
        self._head_depth = z.astype(np.float32)
        self._head_planes = np.stack([gx, gy, z, np.ones_like(gx)]).astype(np.float32)
        support = np.argwhere(mask > 0)
        if len(support):
            (ry0, rx0), (ry1, rx1) = support.min(0) - 1, support.max(0) + 2
            self.head_box = (max(int(ry0 * h / hc), 0), min(int(np.ceil(ry1 * h / hc)), h),
                             max(int(rx0 * w / wc), 0), min(int(np.ceil(rx1 * w / wc)), w))
        else:
            self.head_box = self.local_box

    # ---- per frame --------------------------------------------------------------------------
    def head_displacement_at(self, xy: np.ndarray, matrix: np.ndarray,
                             offset: np.ndarray) -> np.ndarray:
        """(N, 2) forward head displacement at crop points `xy` — the field the warp uses."""
        hc, wc = self._head_mask.shape
        coords = np.stack([(xy[:, 1] + 0.5) * (hc / self.height) - 0.5,
                           (xy[:, 0] + 0.5) * (wc / self.width) - 0.5])
        mask = ndimage.map_coordinates(self._head_mask, coords, order=1, mode="nearest")
        z = ndimage.map_coordinates(self._head_depth, coords, order=1, mode="nearest")
        p = np.c_[xy, z]
        return ((p @ matrix.T + offset)[:, :2] - xy) * mask[:, None]

    def _head_backward(self, matrix: np.ndarray, offset: np.ndarray,
                       iterations: int = 3) -> np.ndarray:
        """(hc, wc, 2) coarse backward displacement of the head: output y shows y − b(y)."""
        coeff = np.c_[matrix[:2] - np.eye(3)[:2], offset[:2]].astype(np.float32)  # (2, 4)
        forward = np.einsum("ck,kyx->yxc", coeff, self._head_planes)
        forward *= self._head_mask[..., None]  # (hc, wc, 2) px
        hc, wc = self._head_mask.shape
        cells = self._head_planes[:2].transpose(1, 2, 0)  # (hc, wc, 2) crop px
        scale = np.array([wc / self.width, hc / self.height], np.float32)
        back = forward
        for _ in range(iterations):
            back = _remap(forward, (cells - back + 0.5) * scale - 0.5)
        return back

    def _expression_backward(self, offsets: np.ndarray, iterations: int = 2) -> np.ndarray:
        """(hL, wL, 2) coarse backward displacement of the expression over `local_box`."""
        field = (self._local_matrix @ offsets).reshape(*self._local_coarse_shape, 2)
        y0, _, x0, _ = self.local_box
        s = EXPR_STEP
        to_cells = self._local_coarse_grid - np.array([x0, y0], np.float32)
        to_cells = (to_cells - (s - 1) / 2) / s  # coarse index of each cell centre
        back = field
        for _ in range(iterations):
            back = _remap(field, to_cells - back / s)
        return back

    def head_backward_at(self, coarse: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Coarse head backward displacement `coarse` sampled at (…, 2) crop points."""
        hc, wc = self._head_mask.shape
        scale = np.array([wc / self.width, hc / self.height], np.float32)
        return _remap(coarse, (xy + 0.5) * scale - 0.5)

    def backward_map(self, offsets: np.ndarray | None,
                     head: tuple[np.ndarray, np.ndarray] | None
                     ) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """Remap coordinates (absolute crop px) for the pixels of a region of the crop.

        `offsets`: (468, 2) expression displacements in px, or None.
        `head`: (matrix, offset) from `HeadFrame.head_motion`, or None for a still head.
        Returns (region (y0, y1, x0, x1), map (rh, rw, 2) float32)."""
        offsets = None if offsets is None else np.ascontiguousarray(offsets, np.float32)
        s = EXPR_STEP
        ly0, _, lx0, _ = self.local_box
        head_coarse = None
        if head is None:
            region = self.local_box
            cells = self._local_coarse_grid  # (hL, wL, 2) crop px
            back = self._expression_backward(offsets)
        else:
            region = self.region
            cells = self._region_coarse_grid
            head_coarse = self._head_backward(*head)
            back = self.head_backward_at(head_coarse, cells)
            if offsets is not None:
                # Compose: the expression's backward displacement where y − b_head(y) falls.
                expr = self._expression_backward(offsets)
                where = (cells - back - np.array([lx0, ly0], np.float32) - (s - 1) / 2) / s
                back += _remap(expr, where)
        y0, y1, x0, x1 = region
        # Absolute coordinates are linear in position, so they upsample like displacements.
        src = cv2.resize(cells - back, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        if offsets is not None:
            self.mouth.solve(src, region, offsets, head_coarse)
        return region, src


class MouthSolver:
    """Full-resolution backward map around the mouth, where the lips tear apart.

    Two tear-free versions of the expression field: `low` continues the lower lip's
    displacement up across the lip line, `up` continues the upper lip's down. Output pixels
    below the deformed lip line invert the first, the others the second, so the fixed-point
    iteration never has to cross the tear (where it would oscillate)."""

    def __init__(self, warp: FaceWarp, points: np.ndarray):
        xy = points[:, :2].astype(np.float64)
        unit = warp.frame.unit
        ex = warp.frame.axes[:2, 0] / np.linalg.norm(warp.frame.axes[:2, 0])
        self.axes = (ex, np.array([-ex[1], ex[0]]))  # along the mouth, down the face
        right, left = xy[INNER_LIP_PAIRS[0][0]], xy[INNER_LIP_PAIRS[-1][0]]
        self.centre = (right + left) / 2
        self.half = max(float(np.linalg.norm(left - right)) / 2, 1.0)
        self.pair_up = np.array([u for u, _ in INNER_LIP_PAIRS])
        self.pair_lo = np.array([low for _, low in INNER_LIP_PAIRS])
        self.rest_xy = warp.rest_xy
        self.warp = warp
        outer = xy[list(LIPS_OUTER)]
        by0, by1, bx0, bx1 = warp.local_box
        # Source box: the lips and where the jaw can take them.
        x0 = int(max(np.floor(outer[:, 0].min() - 0.15 * unit), bx0))
        x1 = int(min(np.ceil(outer[:, 0].max() + 0.15 * unit), bx1))
        y0 = int(max(np.floor(outer[:, 1].min() - 0.12 * unit), by0))
        y1 = int(min(np.ceil(outer[:, 1].max() + 0.45 * unit), by1))
        self.box = (y0, y1, x0, x1)
        self.size = (width, height) = (x1 - x0, y1 - y0)
        self.crop_size = (warp.width, warp.height)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        self.matrix = warp.field_matrix(xs, ys)  # (n, 468)
        u, v = self.mouth_coords(xs, ys)
        cu, cv = self.mouth_coords(xy[self.pair_up, 0], xy[self.pair_up, 1])
        v_up = np.interp(u, *_sorted(cu, cv))
        cu, cv = self.mouth_coords(xy[self.pair_lo, 0], xy[self.pair_lo, 1])
        v_lo = np.interp(u, *_sorted(cu, cv))
        span = np.abs(u) <= 1.3  # a little past the corners, where the lips also part
        ey = self.axes[1]

        def flat_index(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            cx = np.clip(np.round(px) - x0, 0, width - 1).astype(np.int64)
            cy = np.clip(np.round(py) - y0, 0, height - 1).astype(np.int64)
            return cy * width + cx

        here = flat_index(xs, ys)
        # low: pixels above the lower lip's inner edge take the value 1 px below it; up: the
        # pixels below the upper lip's inner edge take the value 1 px above it.
        sel = span & (v < v_lo + 0.5)
        step = v_lo + 1.0 - v
        self.low_dst, self.low_src = here[sel], flat_index(xs + step * ey[0], ys + step * ey[1])[sel]
        sel = span & (v > v_up - 0.5)
        step = v_up - 1.0 - v
        self.up_dst, self.up_src = here[sel], flat_index(xs + step * ey[0], ys + step * ey[1])[sel]

    def mouth_coords(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u, v): u across the mouth (−1…1 between the inner corners), v px down the face."""
        ex, ey = self.axes
        rx, ry = xs - self.centre[0], ys - self.centre[1]
        return (rx * ex[0] + ry * ex[1]) / self.half, rx * ey[0] + ry * ey[1]

    def solve(self, src: np.ndarray, region: tuple[int, int, int, int], offsets: np.ndarray,
              head_coarse: np.ndarray | None, iterations: int = 3) -> None:
        """Overwrite `src` (the map of `region`) around the mouth with the exact solution."""
        y0, y1, x0, x1 = self.box
        field = (self.matrix @ offsets).reshape(y1 - y0, x1 - x0, 2)
        flat = field.reshape(-1, 2)
        both = np.concatenate([field, field], axis=2)  # (h, w, 4): low lip, upper lip
        both.reshape(-1, 4)[self.low_dst, :2] = flat[self.low_src]
        both.reshape(-1, 4)[self.up_dst, 2:] = flat[self.up_src]
        # Output box: the source box, moved with the head at the mouth.
        shift = np.zeros(2)
        if head_coarse is not None:
            centre = np.array([[(x0 + x1) / 2, (y0 + y1) / 2]], np.float32)
            # backward displacement at y ≈ forward displacement of its source
            shift = np.round(self.warp.head_backward_at(head_coarse, centre[None])[0, 0])
        ry0, ry1, rx0, rx1 = region
        oy0 = int(np.clip(y0 + shift[1], ry0, ry1))
        oy1 = int(np.clip(y1 + shift[1], ry0, ry1))
        ox0 = int(np.clip(x0 + shift[0], rx0, rx1))
        ox1 = int(np.clip(x1 + shift[0], rx0, rx1))
        if oy1 <= oy0 or ox1 <= ox0:
            return
        q = self.warp.grid[oy0:oy1, ox0:ox1]
        if head_coarse is not None:
            q = q - self.warp.head_backward_at(head_coarse, q)
        # Which lip each point belongs to: on or below the deformed lower lip it follows the
        # lower lip; above it (the opening included) the upper lip, so whatever the photo
        # shows between the lips (teeth) stays attached to the upper jaw.
        deformed = self.rest_xy + offsets
        cu, cv = self.mouth_coords(deformed[self.pair_lo, 0], deformed[self.pair_lo, 1])
        u, v = self.mouth_coords(q[..., 0], q[..., 1])
        below = (v > np.interp(u, *_sorted(cu, cv)) - 0.5)[..., None]
        origin = np.array([x0, y0], np.float32)
        x = q
        for _ in range(iterations):
            sampled = cv2.remap(both, x - origin, None, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
            x = q - np.where(below, sampled[..., :2], sampled[..., 2:])
        src[oy0 - ry0:oy1 - ry0, ox0 - rx0:ox1 - rx0] = x
