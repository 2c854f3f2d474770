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
iteration src = y − d(src) on coarse grids, since the fields are smooth: the head by Newton's
method on an 8× coarser grid, the expression by fixed-point iteration on a 4× coarser one, and
the mouth, where the lips tear apart, on a 4× coarser grid too but separately for each lip, on
fields continued smoothly across the opening (see `MouthSolver`); only the choice of lip is made
per pixel. The composed map is upsampled once and applied in fixed point (`cv2.convertMaps`),
only where it moves the image by more than `MOVE_EPS`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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

# Grid steps of the smooth fields, crop px per 512 px of crop: the cost per frame then
# grows with the crop's area only for the final remap and the mouth.
HEAD_STEP = 8  # head field (a rigid motion × a soft mask: very smooth)
# Expression field, and the two tear-free lip fields. Measured at 512 on a 14 s talking track:
# 4 px instead of 2 px cells render 28 % faster (5.8 → 4.2 ms per frame) for a mean change of
# 0.03 grey levels (frame SSIM ≥ 0.9995), invisible at the lips and lids.
EXPR_STEP = 4
NEWTON_TOL = 0.05  # px: the head's Newton iteration stops once its steps are this small
FIXED_POINT_TOL = 0.02  # px: expression cells whose last fixed-point step was smaller stop
TEAR_EPS = 0.05  # px: lips that part less than this need no separate solve
MOVE_EPS = 0.02  # px: pixels the map moves less than this are copied, not resampled
STRIP = 32  # px per 512 of crop: rows of the final remap share a column range
MIN_LIP_GAP = 1.0  # px: closed lips are split this far apart in the mesh so both stay vertices
RING_SCALE = 1.3  # fixed ring around the face, × face-oval radius (more below the chin)
RING_SCALE_CHIN = 1.6
_DENSIFIED = (LIPS_INNER_UPPER, LIPS_INNER_LOWER, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER,
              LEFT_EYE_UPPER, LEFT_EYE_LOWER)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _sorted(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(xs)
    return xs[order], ys[order]


def _barycentric_matrix(tri: Delaunay, pix: np.ndarray) -> sparse.csr_matrix:
    """(n, V) weights interpolating mesh vertices at points `pix` (0 outside the mesh).

    The points are pixel centres of a regular grid: the triangles are first drawn into an
    index image (fast), and only points whose drawn triangle does not contain them (edge
    pixels) are located exactly."""
    origin = pix.min(axis=0)
    step = float(min(np.diff(np.unique(pix[:, k])).min(initial=1.0) for k in (0, 1)))
    cells = np.round((pix - origin) / step).astype(np.int64)  # (n, 2) grid index
    index = np.full((int(cells[:, 1].max()) + 1, int(cells[:, 0].max()) + 1), -1, np.int32)
    corners = np.round((tri.points[tri.simplices] - origin) / step * 16).astype(np.int32)
    for t, triangle in enumerate(corners):  # once per face, ~1000 triangles
        cv2.fillConvexPoly(index, triangle, t, lineType=cv2.LINE_8, shift=4)
    simplex = index[cells[:, 1], cells[:, 0]].astype(np.int64)

    def barycentric(which: np.ndarray, points: np.ndarray) -> np.ndarray:
        trans = tri.transform[which]  # (m, 3, 2)
        d = points - trans[:, 2]
        b0 = trans[:, 0, 0] * d[:, 0] + trans[:, 0, 1] * d[:, 1]
        b1 = trans[:, 1, 0] * d[:, 0] + trans[:, 1, 1] * d[:, 1]
        return np.stack([b0, b1, 1 - b0 - b1], axis=1)  # (m, 3)

    drawn = np.flatnonzero(simplex >= 0)
    wrong = drawn[barycentric(simplex[drawn], pix[drawn]).min(axis=1) < -1e-6]
    if len(wrong):
        simplex[wrong] = tri.find_simplex(pix[wrong], bruteforce=True)
    inside = simplex >= 0
    bary = barycentric(simplex[inside], pix[inside])
    rows = np.repeat(np.flatnonzero(inside), 3)
    cols = tri.simplices[simplex[inside]].ravel()
    return sparse.csr_matrix((bary.ravel(), (rows, cols)), shape=(len(pix), tri.npoints))


def _padded_cells(box: tuple[int, int, int, int], s: int) -> np.ndarray:
    """(rows + 2, cols + 2, 2) crop-px centres of the `s`-px cells tiling `box`, plus one
    cell on every side."""
    y0, y1, x0, x1 = box
    ys, xs = np.mgrid[y0 - s:y1 + s:s, x0 - s:x1 + s:s].astype(np.float32)
    return np.dstack([xs, ys]) + np.float32((s - 1) / 2)


def _upsample(coarse: np.ndarray, s: int) -> np.ndarray:
    """Full-resolution view of a field on padded `s`-px cells (see `_padded_cells`): bilinear
    like the cells' positions, so absolute coordinates stay exact."""
    if s == 1:
        return coarse[1:-1, 1:-1]
    h, w = coarse.shape[:2]
    fine = cv2.resize(coarse, (w * s, h * s), interpolation=cv2.INTER_LINEAR)
    return fine[s:-s, s:-s]


def _remap(field: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Bilinear samples of `field` at (…, 2) index coordinates; zero outside."""
    return cv2.remap(field, coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)


class FaceWarp:
    """Precomputed warp of one crop. `backward_map` turns landmark displacements and a head
    motion into remap coordinates for a region of the crop."""

    def __init__(self, deformer: FaceDeformer, size: tuple[int, int]):
        self.width, self.height = size
        per_512 = max(1, round(min(size) / 512))
        self.head_step = HEAD_STEP * per_512
        self.expr_step = EXPR_STEP * per_512
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
        # The region that can move: the head mask's support and the local box, on whole head
        # cells at its top left (so the head grid's cells upsample onto the expression's).
        ly0, ly1, lx0, lx1 = self.local_box
        hy0, hy1, hx0, hx1 = self.head_box
        s, hs = self.expr_step, self.head_step
        ry0, rx0 = min(ly0, hy0) // hs * hs, min(lx0, hx0) // hs * hs
        ry1 = min(-(-max(ly1, hy1) // s) * s, self.height - self.height % s)
        rx1 = min(-(-max(lx1, hx1) // s) * s, self.width - self.width % s)
        self.region = (ry0, ry1, rx0, rx1)
        self.strip = STRIP * per_512 // s  # coarse rows per strip of the final remap
        self._build_region_grids()

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
        # CSC: scipy's product with an (n, 2) block is ~3× faster than with CSR.
        return (_barycentric_matrix(self._mesh, pix) @ self._mixing).astype(np.float32).tocsc()

    def _build_local(self, vertices: np.ndarray) -> None:
        # The local box, aligned to the coarse grid so coarse cells tile it exactly.
        lo = np.floor(self._ring.min(axis=0)).astype(int)
        hi = np.ceil(self._ring.max(axis=0)).astype(int) + 1
        s = self.expr_step
        x0, y0 = (np.maximum(lo, 0) // s) * s
        x1 = min(-(-hi[0] // s) * s, self.width - self.width % s)
        y1 = min(-(-hi[1] // s) * s, self.height - self.height % s)
        self.local_box = (int(y0), int(y1), int(x0), int(x1))
        self._local_coarse_shape = ((y1 - y0) // s, (x1 - x0) // s)
        ys, xs = np.mgrid[0:self._local_coarse_shape[0], 0:self._local_coarse_shape[1]]
        cx = x0 + xs * s + (s - 1) / 2
        cy = y0 + ys * s + (s - 1) / 2
        # Cells on the box's edge (at or outside the fixed ring, up to ~1 % of a landmark's
        # offset) are held at 0, so sampling beyond the box may replicate the edge.
        inner = np.zeros(self._local_coarse_shape)
        inner[1:-1, 1:-1] = 1
        self._local_matrix = (sparse.diags(inner.ravel().astype(np.float32))
                              @ self.field_matrix(cx, cy)).astype(np.float32).tocsc()

    def _build_head(self, points: np.ndarray) -> None:
        """Depth and head mask on a grid of `head_step` cells aligned to the crop's origin,
        one cell beyond it on every side."""
        h, w, hs = self.height, self.width, self.head_step
        hc, wc = -(-h // hs) + 2, -(-w // hs) + 2
        gx, gy = np.meshgrid(np.arange(wc) * hs - hs + (hs - 1) / 2,
                             np.arange(hc) * hs - hs + (hs - 1) / 2)
        # Depth: the landmarks' z inside the face, continued outwards, smoothed.
        pix = np.c_[gx.ravel(), gy.ravel()]
        weights = _barycentric_matrix(Delaunay(points[:, :2]), pix)
        inside = np.asarray(weights.sum(axis=1)).ravel() > 0.5
        z = np.where(inside, weights @ points[:, 2], np.nan).reshape(hc, wc)
        missing = np.isnan(z)
        unit_c = self.frame.unit / hs  # coarse cells per inter-ocular distance
        if missing.any():
            # Outside the face (hair, ears, neck) continue the edge depth, very smoothly:
            # ridges in the depth would show as waves when the head turns.
            dist, idx = ndimage.distance_transform_edt(missing, return_indices=True)
            z_far = ndimage.gaussian_filter(z[idx[0], idx[1]], sigma=max(0.4 * unit_c, 1.0))
            blend = _smoothstep(dist / max(0.3 * unit_c, 1.0))
            z = np.where(missing, z_far, z)
            z = z + (z_far - z) * blend
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
        # The forward field is coeff (2, 4) @ mask·(x, y, z, 1): keep those four planes and
        # their x, y derivatives, so a frame's field and Jacobian are one matrix product.
        planes = np.stack([gx, gy, z, np.ones_like(gx)]) * mask  # (4, hc, wc)
        self._head_planes = np.concatenate([planes, np.gradient(planes, axis=2) / hs,
                                            np.gradient(planes, axis=1) / hs])  # (12, hc, wc)
        self._head_cells_all = np.dstack([gx, gy]).astype(np.float32)  # (hc, wc, 2) crop px
        support = np.argwhere(mask > 0)
        if len(support):
            (ry0, rx0), (ry1, rx1) = (support.min(0) - 2) * hs, (support.max(0) + 1) * hs
            self.head_box = (max(int(ry0), 0), min(int(ry1), h),
                             max(int(rx0), 0), min(int(rx1), w))
        else:
            self.head_box = self.local_box

    def _build_region_grids(self) -> None:
        """Per-frame grids over the region: head cells (one beyond it on every side), the
        expression cells (likewise), and where one maps onto the other."""
        ry0, ry1, rx0, rx1 = self.region
        s, hs = self.expr_step, self.head_step
        j0, i0 = ry0 // hs, rx0 // hs
        nj, ni = -(-(ry1 - ry0) // hs) + 2, -(-(rx1 - rx0) // hs) + 2
        planes = self._head_planes[:, j0:j0 + nj, i0:i0 + ni]
        self._head_basis = np.ascontiguousarray(planes.reshape(12, -1).T, np.float32)
        self._head_cells = np.ascontiguousarray(self._head_cells_all[j0:j0 + nj, i0:i0 + ni])
        self._head_origin = self._head_cells[0, 0].copy()  # crop px of head cell (0, 0)
        self._head_origins = np.broadcast_to(self._head_origin, self._head_cells.shape).copy()
        del self._head_planes, self._head_cells_all
        # Head cells upsampled ×k fall on the expression cells, k − 1 of them before the
        # region's padded grid.
        k = hs // s
        self._head_upsample = (ni * k, nj * k)
        self._cells = _padded_cells(self.region, s)  # (rh + 2, rw + 2, 2)
        self._head_crop = (slice(k - 1, k - 1 + self._cells.shape[0]),
                           slice(k - 1, k - 1 + self._cells.shape[1]))
        ly0, _, lx0, _ = self.local_box
        corner = np.array([lx0, ly0], np.float32) + np.float32((s - 1) / 2)
        self._cells_in_local = (self._cells - corner) / np.float32(s)  # local coarse index

    # ---- per frame --------------------------------------------------------------------------
    def head_field(self, matrix: np.ndarray, offset: np.ndarray,
                   iterations: int = 3) -> "HeadField":
        """One frame's rigid head motion (from `HeadFrame.head_motion`) on the head grid: the
        forward field with its Jacobian, and the backward field solved by Newton's method
        (where the head mask fades the field can stretch more than 1:1, and plain fixed-point
        iteration would ripple there)."""
        coeff = np.c_[matrix[:2] - np.eye(3)[:2], offset[:2]].astype(np.float32)  # (2, 4)
        mix = np.zeros((12, 6), np.float32)  # planes → (fx, fy, ∂x fx, ∂y fx, ∂x fy, ∂y fy)
        mix[0:4, 0], mix[0:4, 1] = coeff
        mix[4:8, 2], mix[8:12, 3] = coeff[0], coeff[0]
        mix[4:8, 4], mix[8:12, 5] = coeff[1], coeff[1]
        cells = self._head_cells
        texture = (self._head_basis @ mix).reshape(*cells.shape[:2], 6)
        x = cells - texture[..., :2]
        for _ in range(iterations):
            f = _remap(texture, self._head_index(x))
            rx = x[..., 0] + f[..., 0] - cells[..., 0]
            ry = x[..., 1] + f[..., 1] - cells[..., 1]
            a, b = 1 + f[..., 2], f[..., 3]
            c, d = f[..., 4], 1 + f[..., 5]
            det = a * d - b * c
            det = np.where(np.abs(det) < 0.05, np.copysign(np.float32(0.05), det), det)
            step_x, step_y = (d * rx - b * ry) / det, (a * ry - c * rx) / det
            x[..., 0] -= step_x
            x[..., 1] -= step_y
            if max(np.abs(step_x).max(), np.abs(step_y).max()) < NEWTON_TOL:
                break
        return HeadField(texture, cells - x)

    def _head_index(self, xy: np.ndarray) -> np.ndarray:
        """Head-grid index coordinates of (…, 2) crop points."""
        if xy.shape == self._head_cells.shape:  # same-shape arithmetic is much faster in numpy
            return (xy - self._head_origins) * np.float32(1 / self.head_step)
        return (xy - self._head_origin) * np.float32(1 / self.head_step)

    def head_displacement_at(self, xy: np.ndarray, head: "HeadField") -> np.ndarray:
        """(N, 2) forward head displacement at crop points `xy` — the field the warp uses."""
        coords = self._head_index(np.asarray(xy, np.float32))[None]  # (1, N, 2)
        return _remap(head.texture, coords)[0, :, :2].astype(np.float64)

    def head_backward_at(self, head: "HeadField", xy: np.ndarray) -> np.ndarray:
        """The head's backward displacement sampled at (…, 2) crop points."""
        return _remap(head.backward, self._head_index(xy))

    def backward_map(self, offsets: np.ndarray | None, head: "HeadField | None") -> "WarpMap":
        """Remap coordinates (absolute crop px) for the pixels of the region.

        `offsets`: (468, 2) expression displacements in px, or None.
        `head`: the frame's `head_field`, or None for a still head."""
        s, cells = self.expr_step, self._cells
        if head is None:
            head_back = np.zeros_like(cells)
        else:
            up = cv2.resize(head.backward, self._head_upsample, interpolation=cv2.INTER_LINEAR)
            head_back = up[self._head_crop]  # (rh + 2, rw + 2, 2) at the expression cells
        src = cells - head_back
        if offsets is not None:
            offsets = np.ascontiguousarray(offsets, np.float32)
            self._compose_expression(src, head_back, offsets)
        shift = np.abs(src - cells)
        moved = (shift[..., 0] > MOVE_EPS) | (shift[..., 1] > MOVE_EPS)  # (rh + 2, rw + 2)
        fine = _upsample(src, s)  # (rh, rw, 2)
        if offsets is not None and self.mouth.tears(offsets):
            self.mouth.solve(fine, self, cells, head_back, offsets, head)
        return WarpMap(self.region, fine, self._spans(moved))

    def _compose_expression(self, src: np.ndarray, head_back: np.ndarray,
                            offsets: np.ndarray, iterations: int = 3) -> None:
        """Subtract the expression's backward displacement in place: src = z − e(src), where
        z = y − b_head(y), by fixed-point iteration on the cells the local box can reach."""
        field = (self._local_matrix @ offsets).reshape(*self._local_coarse_shape, 2)
        s = self.expr_step
        reach = int(np.ceil(np.abs(head_back).max() / s)) + 1 if head_back.any() else 1
        ly0, ly1, lx0, lx1 = self.local_box
        ry0, _, rx0, _ = self.region
        rows, cols = src.shape[:2]
        sub = (slice(max((ly0 - ry0) // s + 1 - reach, 0), min((ly1 - ry0) // s + 1 + reach, rows)),
               slice(max((lx0 - rx0) // s + 1 - reach, 0), min((lx1 - rx0) // s + 1 + reach, cols)))
        inv_s = np.float32(1 / s)
        z = self._cells_in_local[sub] - head_back[sub] * inv_s  # local coarse index
        # The field is 0 on the local box's edge (the fixed ring), so replicating the edge
        # is the same as zero outside — and cv2's replicate path is the faster one.
        def step(part: tuple[slice, slice], back: np.ndarray) -> np.ndarray:
            return cv2.remap(field, z[part] - back[part] * inv_s, None, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)

        everywhere = (slice(None), slice(None))
        before = cv2.remap(field, z, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        back = step(everywhere, before)
        for _ in range(iterations - 2):
            # Later steps only where the last one still moved (mostly mouth and jaw).
            change = np.abs(back - before)
            busy = (change[..., 0] > FIXED_POINT_TOL) | (change[..., 1] > FIXED_POINT_TOL)
            rows, cols = np.flatnonzero(busy.any(axis=1)), np.flatnonzero(busy.any(axis=0))
            if not len(rows):
                break
            part = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            before = back.copy()
            back[part] = step(part, back)
        src[sub] -= back

    def _spans(self, moved: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Boxes (y0, y1, x0, x1), region px, covering every moved pixel: one per strip of
        rows, spanning the columns of its moved cells (a moved cell's neighbours included,
        since upsampling spreads it)."""
        s, n = self.expr_step, self.strip
        dilated = moved[:-2] | moved[1:-1] | moved[2:]  # (rh, rw + 2)
        dilated = dilated[:, :-2] | dilated[:, 1:-1] | dilated[:, 2:]  # (rh, rw)
        rh, rw = dilated.shape
        n_strips = -(-rh // n)
        per_strip = np.zeros((n_strips * n, rw), bool)
        per_strip[:rh] = dilated
        per_strip = per_strip.reshape(n_strips, n, rw).any(axis=1)  # (n_strips, rw)
        first = per_strip.argmax(axis=1)
        last = rw - per_strip[:, ::-1].argmax(axis=1)
        return [(i * n * s, min((i + 1) * n, rh) * s, int(first[i]) * s, int(last[i]) * s)
                for i in np.flatnonzero(per_strip.any(axis=1))]

    @staticmethod
    def apply(frame: np.ndarray, image: np.ndarray, warp_map: "WarpMap") -> None:
        """Resample `image` into `frame` (same size) through `warp_map`, where it moves."""
        y0, _, x0, _ = warp_map.region
        fixed, frac = cv2.convertMaps(warp_map.src, None, cv2.CV_16SC2)
        for sy0, sy1, sx0, sx1 in warp_map.spans:
            frame[y0 + sy0:y0 + sy1, x0 + sx0:x0 + sx1] = cv2.remap(
                image, fixed[sy0:sy1, sx0:sx1], frac[sy0:sy1, sx0:sx1], cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class HeadField:
    """One frame's head motion on the coarse head grid (see `FaceWarp.head_field`)."""

    texture: np.ndarray  # (hc, wc, 6): forward field (2) and its Jacobian (4), crop px
    backward: np.ndarray  # (hc, wc, 2) crop px: output y shows y − backward(y)


@dataclass(frozen=True)
class WarpMap:
    """`src`: (rh, rw, 2) float32 absolute crop px that the pixels of `region`
    (y0, y1, x0, x1) show; `spans`: boxes in region px outside which `src` is the identity."""

    region: tuple[int, int, int, int]
    src: np.ndarray
    spans: list[tuple[int, int, int, int]]


class MouthSolver:
    """Backward map around the mouth, where the lips tear apart.

    Two tear-free versions of the expression field: `low` continues the lower lip's
    displacement up across the lip line, `up` continues the upper lip's down. Both are smooth,
    so each is inverted by fixed-point iteration on a coarse grid and upsampled; output pixels
    below the deformed lip line then take the first, the others the second — the iteration
    never has to cross the tear (where it would oscillate), and the lip edge stays sharp."""

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
        s = self.step = warp.expr_step
        outer = xy[list(LIPS_OUTER)]
        by0, by1, bx0, bx1 = warp.local_box  # aligned to `s`
        # Source box: the lips and where the jaw can take them, on whole cells.
        x0 = int(max(np.floor(outer[:, 0].min() - 0.15 * unit), bx0)) // s * s
        x1 = int(min(-(-np.ceil(outer[:, 0].max() + 0.15 * unit) // s) * s, bx1))
        y0 = int(max(np.floor(outer[:, 1].min() - 0.1 * unit), by0)) // s * s
        y1 = int(min(-(-np.ceil(outer[:, 1].max() + 0.4 * unit) // s) * s, by1))
        self.box = (y0, y1, x0, x1)
        self.shape = ((y1 - y0) // s, (x1 - x0) // s)
        ys, xs = np.mgrid[y0:y1:s, x0:x1:s].astype(np.float64) + (s - 1) / 2
        self.matrix = warp.field_matrix(xs, ys)  # (cells, 468)
        corner = np.array([x0, y0], np.float32) + np.float32((s - 1) / 2)
        self._corners = np.broadcast_to(corner, (self.shape[0] + 2, self.shape[1] + 2, 2)).copy()
        u, v = self.mouth_coords(xs.ravel(), ys.ravel())
        span = np.abs(u) <= 1.3  # a little past the corners, where the lips also part
        self.extensions = []
        # low: cells above the lower lip's inner edge take the edge's displacement; up: the
        # cells below the upper lip's inner edge take that edge's displacement.
        for contour, beyond in ((self.pair_lo, lambda vv, edge: vv < edge),
                                (self.pair_up, lambda vv, edge: vv > edge)):
            cu, cv = self.mouth_coords(xy[contour, 0], xy[contour, 1])
            order = np.argsort(cu)
            edge = np.interp(u, cu[order], cv[order])
            sel = span & beyond(v, edge)
            self.extensions.append((np.flatnonzero(sel), u[sel].astype(np.float32),
                                    cu[order].astype(np.float32), contour[order]))

    def tears(self, offsets: np.ndarray) -> bool:
        """Whether the lips move apart (or slide) relative to each other by more than
        `TEAR_EPS`: otherwise the field is continuous there and needs no special solve."""
        apart = offsets[self.pair_lo] - offsets[self.pair_up]  # (11, 2) px
        return bool(np.abs(apart).max() > TEAR_EPS)

    def mouth_coords(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u, v): u across the mouth (−1…1 between the inner corners), v px down the face."""
        ex, ey = self.axes
        rx, ry = xs - self.centre[0], ys - self.centre[1]
        return (rx * ex[0] + ry * ex[1]) / self.half, rx * ey[0] + ry * ey[1]

    def solve(self, fine: np.ndarray, warp: FaceWarp, cells: np.ndarray, head_back: np.ndarray,
              offsets: np.ndarray, head: HeadField | None, iterations: int = 3) -> None:
        """Overwrite `fine` (the full-resolution map of the warp's region) around the mouth.
        `cells`, `head_back`: the region's padded expression cells and the head's backward
        displacement there."""
        field = (self.matrix @ offsets).reshape(*self.shape, 2)
        fields = []
        for dst, u_dst, u_edge, edge in self.extensions:
            tear_free = field.copy()
            flat = tear_free.reshape(-1, 2)
            flat[dst, 0] = np.interp(u_dst, u_edge, offsets[edge, 0])
            flat[dst, 1] = np.interp(u_dst, u_edge, offsets[edge, 1])
            fields.append(tear_free)
        # Output box: the source box, moved with the head at the mouth, by whole cells.
        y0, y1, x0, x1 = self.box
        s = self.step
        ry0, ry1, rx0, rx1 = warp.region
        shift = np.zeros(2, int)
        if head is not None:
            centre = np.array([[[(x0 + x1) / 2, (y0 + y1) / 2]]], np.float32)
            # backward displacement at y ≈ forward displacement of its source
            shift = np.round(warp.head_backward_at(head, centre)[0, 0] / s).astype(int) * s
        oy0, ox0 = y0 + int(shift[1]), x0 + int(shift[0])
        j, i = (oy0 - ry0) // s, (ox0 - rx0) // s  # padded output box in the region's cells
        rows, cols = self.shape[0] + 2, self.shape[1] + 2
        if j < 0 or i < 0 or j + rows > cells.shape[0] or i + cols > cells.shape[1]:
            return  # the mouth left the region: nothing there to solve
        q = cells[j:j + rows, i:i + cols] - head_back[j:j + rows, i:i + cols]
        inv_s = np.float32(1 / s)
        qi = (q - self._corners) * inv_s  # source coarse index
        solved = []
        for tear_free in fields:
            back = cv2.remap(tear_free, qi, None, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
            for _ in range(iterations - 1):
                back = cv2.remap(tear_free, qi - back * inv_s, None, cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
            solved.append(q - back)
        # Which lip each point belongs to: on or below the deformed lower lip it follows the
        # lower lip; above it (the opening included) the upper lip, so whatever the photo
        # shows between the lips (teeth) stays attached to the upper jaw. The signed height
        # above the lip line is smooth in q, so it is upsampled with the solutions.
        deformed = self.rest_xy + offsets
        cu, cv = self.mouth_coords(deformed[self.pair_lo, 0], deformed[self.pair_lo, 1])
        u, v = self.mouth_coords(q[..., 0], q[..., 1])
        height = (v - np.interp(u, *_sorted(cu, cv))).astype(np.float32)
        box = _upsample(np.dstack([solved[1], solved[0], height]), s)  # (h, w, 5)
        # Clip the output box to the region.
        cy0, cy1 = max(oy0, ry0), min(oy0 + box.shape[0], ry1)
        cx0, cx1 = max(ox0, rx0), min(ox0 + box.shape[1], rx1)
        if cy1 <= cy0 or cx1 <= cx0:
            return
        box = box[cy0 - oy0:cy1 - oy0, cx0 - ox0:cx1 - ox0]
        below = (box[..., 4] > -0.5).view(np.uint8)
        out = fine[cy0 - ry0:cy1 - ry0, cx0 - rx0:cx1 - rx0]
        out[...] = box[..., 0:2]
        cv2.copyTo(box[..., 2:4], below, out)  # in place: `out` is a view of `fine`
