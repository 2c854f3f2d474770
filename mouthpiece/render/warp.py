"""Dense image warp driven by landmark displacements, precomputed once per face.

Two parts, added as forward displacement fields on the crop:
- expression (mouth, jaw, lids, brows): piecewise-linear interpolation of the landmark
  displacements over a Delaunay mesh of the landmarks (inner-lip and eye contours densified so
  the mesh follows them) closed by a ring of fixed points around the face. Precomputed as one
  sparse (pixels × 468) matrix over the ring's bounding box only — nothing outside it moves.
- head: the 3-D rigid motion of `FaceDeformer.frame.head_motion`, evaluated per pixel with a
  depth map interpolated from the landmarks' z and weighted by a mask that is 1 on the head and
  falls smoothly to 0 towards the neck, shoulders and crop border, so the border never moves
  and the crop pastes back into the photo without a seam. Computed on a 4× coarser grid (it is
  smooth) and upsampled.
The backward map for `cv2.remap` solves src = x − d(src) by fixed-point iteration.
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
    FACE_OVAL,
    FOREHEAD,
    CHIN,
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

COARSE = 4  # head field grid step, crop px
MIN_LIP_GAP = 1.0  # px: closed lips are split this far apart in the mesh so both lips stay vertices
RING_SCALE = 1.35  # fixed ring around the face, × face-oval radius (more below the chin)
RING_SCALE_CHIN = 1.6
_DENSIFIED = (LIPS_INNER_UPPER, LIPS_INNER_LOWER, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER,
              LEFT_EYE_UPPER, LEFT_EYE_LOWER)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3 - 2 * t)


class FaceWarp:
    """Precomputed warp of one crop. `backward_map` turns landmark displacements and a head
    motion into remap coordinates over `region` (y0, y1, x0, x1) of the crop."""

    def __init__(self, deformer: FaceDeformer, size: tuple[int, int]):
        self.width, self.height = size
        points = deformer.points  # (468, 3) crop px
        self.frame = deformer.frame
        vertices, mixing = self._mesh_vertices(points[:, :2])
        self._build_local(vertices, mixing)
        self._build_head(points)
        self._build_lip_split(points)
        self._mouth_rest_xy = points[:, :2].astype(np.float32)
        ly0, ly1, lx0, lx1 = self.local_box
        hy0, hy1, hx0, hx1 = self.head_box
        self.region = (min(ly0, hy0), max(ly1, hy1), min(lx0, hx0), max(lx1, hx1))
        ys, xs = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        self._grid = np.dstack([xs, ys])  # (h, w, 2) pixel coordinates

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
        rows.append(sparse.csr_matrix((len(ring), N_LANDMARKS)))
        vertices = np.vstack([xy, np.array(extra), ring])
        return vertices, sparse.vstack(rows, format="csr")

    def _build_local(self, vertices: np.ndarray, mixing: sparse.csr_matrix) -> None:
        tri = Delaunay(vertices)
        if len(getattr(tri, "coplanar", [])):
            log.warning("%d landmarks coincide and were left out of the warp mesh",
                        len(tri.coplanar))
        ring_start = vertices.shape[0] - len(FACE_OVAL)
        lo = np.floor(vertices[ring_start:].min(axis=0)).astype(int)
        hi = np.ceil(vertices[ring_start:].max(axis=0)).astype(int) + 1
        x0, y0 = np.maximum(lo, 0)
        x1, y1 = min(hi[0], self.width), min(hi[1], self.height)
        self.local_box = (int(y0), int(y1), int(x0), int(x1))
        ys, xs = np.mgrid[y0:y1, x0:x1]
        pix = np.c_[xs.ravel(), ys.ravel()].astype(np.float64)  # (n, 2)
        simplex = tri.find_simplex(pix)
        inside = simplex >= 0
        trans = tri.transform[simplex[inside]]  # (m, 3, 2)
        bary2 = np.einsum("mij,mj->mi", trans[:, :2], pix[inside] - trans[:, 2])
        bary = np.c_[bary2, 1 - bary2.sum(axis=1)]  # (m, 3)
        verts = tri.simplices[simplex[inside]]  # (m, 3)
        rows = np.repeat(np.flatnonzero(inside), 3)
        weights = sparse.csr_matrix(
            (bary.ravel(), (rows, verts.ravel())), shape=(len(pix), vertices.shape[0]))
        self._local_matrix = (weights @ mixing).astype(np.float32).tocsr()  # (n, 468)
        self._local_shape = (int(y1 - y0), int(x1 - x0))
        self.triangles = tri.simplices
        self.vertices = vertices

    def _build_head(self, points: np.ndarray) -> None:
        h, w = self.height, self.width
        hc, wc = -(-h // COARSE), -(-w // COARSE)
        # Centres of the coarse cells in crop px, the way cv2.resize places them.
        cx = (np.arange(wc) + 0.5) * (w / wc) - 0.5
        cy = (np.arange(hc) + 0.5) * (h / hc) - 0.5
        gx, gy = np.meshgrid(cx, cy)
        # Depth: landmarks' z inside the face, extended outwards, smoothed.
        tri = Delaunay(points[:, :2])
        simplex = tri.find_simplex(np.c_[gx.ravel(), gy.ravel()])
        pix = np.c_[gx.ravel(), gy.ravel()]
        z = np.full(pix.shape[0], np.nan)
        ok = simplex >= 0
        trans = tri.transform[simplex[ok]]
        b2 = np.einsum("mij,mj->mi", trans[:, :2], pix[ok] - trans[:, 2])
        bary = np.c_[b2, 1 - b2.sum(axis=1)]
        z[ok] = (bary * points[tri.simplices[simplex[ok]], 2]).sum(axis=1)
        z = z.reshape(hc, wc)
        missing = np.isnan(z)
        if missing.any():
            idx = ndimage.distance_transform_edt(missing, return_distances=False,
                                                 return_indices=True)
            z = z[idx[0], idx[1]]
        unit_c = self.frame.unit / (w / wc)
        z = ndimage.gaussian_filter(z, sigma=max(0.08 * unit_c, 0.5))

        # Head mask in 2-D face coordinates (u across, v down, inter-ocular units).
        ax = self.frame.axes[:2, :2] * self.frame.unit  # columns: head x, y in px
        uv = np.linalg.solve(ax, np.stack([gx.ravel(), gy.ravel()]) - self.frame.origin[:2, None])
        u, v = uv[0].reshape(hc, wc), uv[1].reshape(hc, wc)
        face_uv = np.linalg.solve(ax, (points[list(FACE_OVAL), :2] - self.frame.origin[:2]).T)
        u_mid = (face_uv[0].min() + face_uv[0].max()) / 2
        half_w = (face_uv[0].max() - face_uv[0].min()) / 2 * 1.3
        chin_uv = np.linalg.solve(ax, points[CHIN, :2] - self.frame.origin[:2])
        top_uv = np.linalg.solve(ax, points[FOREHEAD, :2] - self.frame.origin[:2])
        v_low, v_top = chin_uv[1] + 0.08, top_uv[1] - 0.9
        v_mid, half_h = (v_low + v_top) / 2, (v_low - v_top) / 2
        r = np.hypot((u - u_mid) / half_w, (v - v_mid) / half_h)
        mask = 1.0 - _smoothstep((r - 1.0) / 0.45)
        border = np.minimum.reduce([gx, gy, (w - 1) - gx, (h - 1) - gy]) / min(h, w)
        mask *= _smoothstep((border - 0.02) / 0.08)
        self._head_mask = mask.astype(np.float32)  # (hc, wc)
        self._head_planes = np.stack([gx, gy, z, np.ones_like(gx)]).astype(np.float32)
        support = np.argwhere(mask > 0)
        if len(support):
            (ry0, rx0), (ry1, rx1) = support.min(0), support.max(0) + 1
            self.head_box = (int(max(ry0 - 1, 0) * h / hc), int(min((ry1 + 1) * h / hc, h)),
                             int(max(rx0 - 1, 0) * w / wc), int(min((rx1 + 1) * w / wc, w)))
        else:
            self.head_box = self.local_box
        self._depth_coarse = z.astype(np.float32)

    def _build_lip_split(self, points: np.ndarray) -> None:
        """Index maps that make two tear-free versions of the expression field around the
        mouth: `low` continues the lower lip's displacement up across the lip line, `up`
        continues the upper lip's down. Output pixels below the deformed lip line invert the
        first, the others the second, so the fixed-point iteration never has to cross the tear
        that opens between the lips (where it would oscillate)."""
        xy = points[:, :2].astype(np.float64)
        ex = self.frame.axes[:2, 0] / np.linalg.norm(self.frame.axes[:2, 0])
        ey = np.array([-ex[1], ex[0]])
        right, left = xy[INNER_LIP_PAIRS[0][0]], xy[INNER_LIP_PAIRS[-1][0]]
        self._mouth_centre = (right + left) / 2
        self._mouth_axes = (ex, ey)
        half = float(np.linalg.norm(left - right)) / 2
        self._mouth_half = max(half, 1.0)
        up = np.array([u for u, _ in INNER_LIP_PAIRS])
        lo = np.array([low for _, low in INNER_LIP_PAIRS])
        self._pair_up, self._pair_lo = up, lo
        outer = xy[list(LIPS_OUTER)]
        unit = self.frame.unit
        by0, by1, bx0, bx1 = self.local_box
        mx0 = int(max(np.floor(outer[:, 0].min() - 0.15 * unit), bx0))
        mx1 = int(min(np.ceil(outer[:, 0].max() + 0.15 * unit), bx1))
        my0 = int(max(np.floor(outer[:, 1].min() - 0.12 * unit), by0))
        my1 = int(min(np.ceil(outer[:, 1].max() + 0.45 * unit), by1))
        self.mouth_box = (my0, my1, mx0, mx1)
        ys, xs = np.mgrid[my0:my1, mx0:mx1].astype(np.float64)
        u, v = self._mouth_coords(xs, ys)
        self._mouth_uv = (u.astype(np.float32), v.astype(np.float32))
        cu_up, cv_up = self._mouth_coords(xy[up, 0], xy[up, 1])
        cu_lo, cv_lo = self._mouth_coords(xy[lo, 0], xy[lo, 1])
        v_up = np.interp(u, *_sorted(cu_up, cv_up))
        v_lo = np.interp(u, *_sorted(cu_lo, cv_lo))
        span = np.abs(u) <= 1.0
        wB = self._local_shape[1]

        def flat_index(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            cx = np.clip(np.round(px), bx0, bx1 - 1).astype(np.int64) - bx0
            cy = np.clip(np.round(py), by0, by1 - 1).astype(np.int64) - by0
            return cy * wB + cx

        here = flat_index(xs, ys)
        # low: pixels above the lower lip's inner edge take the value 1 px below it.
        sel = span & (v < v_lo + 0.5)
        tx = xs + (v_lo + 1.0 - v) * ey[0]
        ty = ys + (v_lo + 1.0 - v) * ey[1]
        self._low_dst, self._low_src = here[sel], flat_index(tx, ty)[sel]
        sel = span & (v > v_up - 0.5)
        tx = xs + (v_up - 1.0 - v) * ey[0]
        ty = ys + (v_up - 1.0 - v) * ey[1]
        self._up_dst, self._up_src = here[sel], flat_index(tx, ty)[sel]

    def _mouth_coords(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ex, ey = self._mouth_axes
        rx, ry = xs - self._mouth_centre[0], ys - self._mouth_centre[1]
        return (rx * ex[0] + ry * ex[1]) / self._mouth_half, rx * ey[0] + ry * ey[1]

    # ---- per frame --------------------------------------------------------------------------
    def head_backward(self, matrix: np.ndarray, offset: np.ndarray,
                      iterations: int = 3) -> np.ndarray:
        """(hc, wc, 2) coarse BACKWARD displacement of the head motion: output pixel y shows
        the photo at y − b(y). Solved on the coarse grid, where it is cheap."""
        coeff = np.c_[matrix[:2] - np.eye(3)[:2], offset[:2]].astype(np.float32)  # (2, 4)
        forward = np.einsum("ck,kyx->yxc", coeff, self._head_planes)
        forward *= self._head_mask[..., None]  # (hc, wc, 2) px
        hc, wc = self._head_mask.shape
        sx, sy = wc / self.width, hc / self.height  # coarse cells per px
        gx = self._head_planes[0]
        gy = self._head_planes[1]
        back = forward.copy()
        for _ in range(iterations):
            # sample the forward field at y − back(y), in coarse cell coordinates
            mx = (gx - back[..., 0] + 0.5) * sx - 0.5
            my = (gy - back[..., 1] + 0.5) * sy - 0.5
            back = cv2.remap(forward, mx, my, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return back

    def head_displacement_at(self, xy: np.ndarray, matrix: np.ndarray,
                             offset: np.ndarray) -> np.ndarray:
        """(N, 2) forward head displacement at crop points `xy` — the field the warp uses."""
        h, w = self.height, self.width
        hc, wc = self._head_mask.shape
        cx = (xy[:, 0] + 0.5) * (wc / w) - 0.5
        cy = (xy[:, 1] + 0.5) * (hc / h) - 0.5
        coords = np.stack([cy, cx])
        mask = ndimage.map_coordinates(self._head_mask, coords, order=1, mode="nearest")
        z = ndimage.map_coordinates(self._depth_coarse, coords, order=1, mode="nearest")
        p = np.c_[xy, z]
        return ((p @ matrix.T + offset)[:, :2] - xy) * mask[:, None]

    def local_field(self, landmark_offsets: np.ndarray) -> np.ndarray:
        """(hB, wB, 2) forward displacement of the expression inside `local_box`."""
        d = self._local_matrix @ landmark_offsets.astype(np.float32)  # (n, 2)
        return d.reshape(*self._local_shape, 2)

    def expression_backward(self, landmark_offsets: np.ndarray,
                            iterations: int = 2) -> np.ndarray:
        """(hB, wB, 2) absolute source coordinates for the pixels of `local_box` under the
        expression warp alone (fixed-point iteration; lips split, see `_build_lip_split`)."""
        by0, by1, bx0, bx1 = self.local_box
        field = self.local_field(landmark_offsets)
        grid = self._grid[by0:by1, bx0:bx1]
        origin = np.array([bx0, by0], np.float32)
        src = grid - field
        for _ in range(iterations - 1):
            sampled = cv2.remap(field, src - origin, None, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            src = grid - sampled

        # Around the mouth: invert the tear-free field of the lip each pixel belongs to.
        flat = field.reshape(-1, 2)
        low = field.copy()
        low.reshape(-1, 2)[self._low_dst] = flat[self._low_src]
        upp = field.copy()
        upp.reshape(-1, 2)[self._up_dst] = flat[self._up_src]
        my0, my1, mx0, mx1 = self.mouth_box
        deformed = self._mouth_rest_xy + landmark_offsets[:, :2]
        cu, cv = self._mouth_coords(deformed[:, 0], deformed[:, 1])
        mid_u = (cu[self._pair_up] + cu[self._pair_lo]) / 2
        mid_v = (cv[self._pair_up] + cv[self._pair_lo]) / 2
        u, v = self._mouth_uv
        below = (v > np.interp(u, *_sorted(mid_u, mid_v)))[..., None]
        ry0, ry1, rx0, rx1 = my0 - by0, my1 - by0, mx0 - bx0, mx1 - bx0
        q = grid[ry0:ry1, rx0:rx1]
        msrc = q - np.where(below, low[ry0:ry1, rx0:rx1], upp[ry0:ry1, rx0:rx1])
        for _ in range(iterations):
            lm = msrc - origin
            s_low = cv2.remap(low, lm, None, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            s_up = cv2.remap(upp, lm, None, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            msrc = q - np.where(below, s_low, s_up)
        src[ry0:ry1, rx0:rx1] = msrc
        return src

    def backward_map(self, landmark_offsets: np.ndarray | None,
                     head: tuple[np.ndarray, np.ndarray] | None
                     ) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """Remap coordinates (absolute crop px) for the pixels of a region of the crop.

        `landmark_offsets`: (468, 2) expression displacements in px, or None.
        `head`: (matrix, offset) from `HeadFrame.head_motion`, or None for a still head.
        Returns (region (y0, y1, x0, x1), map (rh, rw, 2) float32)."""
        by0, by1, bx0, bx1 = self.local_box
        expr = None if landmark_offsets is None else self.expression_backward(landmark_offsets)
        if head is None:
            return self.local_box, expr
        y0, y1, x0, x1 = region = self.region
        back = self.head_backward(*head)
        back_full = cv2.resize(back, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        q = self._grid[y0:y1, x0:x1] - back_full[y0:y1, x0:x1]  # expression-space points
        if expr is not None:
            # Compose: the expression's backward displacement, sampled where q falls.
            disp = self._grid[by0:by1, bx0:bx1] - expr
            origin = np.array([bx0, by0], np.float32)
            sampled = cv2.remap(disp, q - origin, None, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            q -= sampled
        return region, q


def _sorted(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(xs)
    return xs[order], ys[order]
