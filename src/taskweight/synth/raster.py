"""A tiny exact polygon rasteriser and the paint canvas of the scene renderer.

Pixel ``(row i, column j)`` covers the continuous square ``[j, j+1) x [i, i+1)``; a polygon
covers a pixel iff the pixel centre ``(j + 0.5, i + 0.5)`` lies inside it (even-odd rule,
half-open on edges).  The image and the semantic mask are painted from the very same
boolean coverage, so the mask agrees pixel-exactly with what was drawn (no antialiasing;
the photometric blur is applied to the image only, at the very end).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Texture = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``texture(rows, cols) -> (N, 3) float32`` colours of the listed pixels."""

Plane = tuple[np.ndarray, float]
"""A plane ``n · X = d`` in camera coordinates (X right, Y down, Z forward; metres)."""

Surface = np.ndarray | Plane
"""Where a painted 2D polygon lies in 3D: its planar 3D polygon (N x 3, camera coordinates) or its plane."""


def plane_of(surface: Surface) -> Plane:
    """The plane ``n · X = d`` of a planar 3D polygon (Newell's normal through the centroid), or ``surface`` itself."""
    if isinstance(surface, tuple):
        return np.asarray(surface[0], dtype=np.float64), float(surface[1])
    pts = np.asarray(surface, dtype=np.float64)
    nxt = np.roll(pts, -1, axis=0)
    normal = np.array(
        [
            np.sum((pts[:, 1] - nxt[:, 1]) * (pts[:, 2] + nxt[:, 2])),
            np.sum((pts[:, 2] - nxt[:, 2]) * (pts[:, 0] + nxt[:, 0])),
            np.sum((pts[:, 0] - nxt[:, 0]) * (pts[:, 1] + nxt[:, 1])),
        ]
    )
    return normal, float(normal @ pts.mean(axis=0))


def plane_depth(plane: Plane, rows: np.ndarray, cols: np.ndarray, f: float, cx: float, cy: float) -> np.ndarray:
    """Depth Z (metres) where the rays through the centres of pixels (rows, cols) of a pinhole
    camera (focal length ``f``, principal point ``cx, cy``) meet ``plane``: the ray
    ``t · ((u − cx)/f, (v − cy)/f, 1)`` hits ``n · X = d`` at ``t = Z = d / (n · ray)``.
    0 where the ray is parallel to the plane or meets it behind the camera."""
    normal, offset = plane
    u = cols.astype(np.float64) + 0.5
    v = rows.astype(np.float64) + 0.5
    denom = normal[0] * (u - cx) / f + normal[1] * (v - cy) / f + normal[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.abs(denom) > 1e-12, offset / denom, 0.0)
    return np.where(np.isfinite(z) & (z > 0), z, 0.0)


def raster_polygon(pts: np.ndarray, height: int, width: int) -> tuple[int, int, np.ndarray] | None:
    """Coverage of a simple polygon ``pts`` (N x 2, x=column, y=row, continuous pixels).

    Returns ``(row0, col0, mask)`` with ``mask`` the covered pixels of the clipped bounding
    box, or ``None`` when no pixel centre is covered.
    """
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or len(pts) < 3 or not np.isfinite(pts).all():
        return None
    x, y = pts[:, 0], pts[:, 1]
    r0 = max(0, int(np.ceil(y.min() - 0.5)))
    r1 = min(height - 1, int(np.floor(y.max() - 0.5)))
    c0 = max(0, int(np.ceil(x.min() - 0.5)))
    c1 = min(width - 1, int(np.floor(x.max() - 0.5)))
    if r1 < r0 or c1 < c0:
        return None
    rows, bw = r1 - r0 + 1, c1 - c0 + 1
    yc = np.arange(r0, r1 + 1, dtype=np.float64) + 0.5
    x1 = np.concatenate((x[1:], x[:1]))
    y1 = np.concatenate((y[1:], y[:1]))
    below = y[None, :] <= yc[:, None]
    cross = below != np.concatenate((below[:, 1:], below[:, :1]), axis=1)
    ri, ei = np.nonzero(cross)
    if ri.size == 0:
        return None
    t = (yc[ri] - y[ei]) / (y1[ei] - y[ei])
    xi = x[ei] + t * (x1[ei] - x[ei])
    k = np.clip(np.floor(xi - 0.5).astype(np.int64) + 1 - c0, 0, bw)
    counts = np.bincount(ri * (bw + 1) + k, minlength=rows * (bw + 1)).reshape(rows, bw + 1)
    mask = (np.cumsum(counts, axis=1)[:, :bw] & 1).astype(bool)
    return r0, c0, mask


def ellipse(
    center: np.ndarray, rx: float, ry: float, n: int | None = None, start: float = 0.0, stop: float = 2 * np.pi
) -> np.ndarray:
    """Polygon approximating an ellipse (or an elliptic sector when start/stop are given)."""
    if n is None:
        n = int(np.clip(max(rx, ry) * 1.5, 8, 28))
    closed = stop - start >= 2 * np.pi - 1e-9
    t = np.linspace(start, stop, n, endpoint=not closed)
    return np.stack([center[0] + rx * np.cos(t), center[1] + ry * np.sin(t)], axis=1)


def thick_segment(p0: np.ndarray, p1: np.ndarray, w0: float, w1: float | None = None) -> np.ndarray:
    """Quad of widths ``w0``/``w1`` (pixels) around the 2D segment p0 -> p1."""
    if w1 is None:
        w1 = w0
    p0 = np.asarray(p0, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    d = p1 - p0
    length = float(np.hypot(d[0], d[1]))
    if length < 1e-9:
        d, length = np.array([0.0, 1.0]), 1.0
    n = np.array([-d[1], d[0]]) / length
    return np.stack([p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2, p0 - n * w0 / 2])


class Canvas:
    """Float RGB image + uint8 semantic ids + int16 instance map, painted polygon by polygon.

    Between :meth:`begin_object` and :meth:`end_object` every painted polygon is tagged with
    the object's instance id and its (unclipped) vertex extent is accumulated: that extent
    is the object's full 2D box.  Any opaque fill outside an object resets the instance map,
    so an object's visible pixel count at the end tells how much of it is hidden.

    With ``camera`` = (f, cx, cy) the canvas also keeps a z-buffer ``depth`` (metres, 0 = no
    surface): every fill given its ``surface`` (the 3D polygon or plane it lies on; a sprite
    drawn while :attr:`billboard` is set lies on the fronto-parallel plane Z = billboard)
    writes, per covered pixel, the exact depth where the pixel's ray meets that plane, where
    it is nearer than what the z-buffer holds. Visibility in ``depth`` is thus decided by the
    geometry, not by the painting order; fills without a surface (sky, the 2D skyline) leave no depth.
    """

    def __init__(
        self,
        height: int,
        width: int,
        noise: np.ndarray,
        low: np.ndarray,
        camera: tuple[float, float, float] | None = None,
    ) -> None:
        self.h, self.w = height, width
        self.img = np.zeros((height, width, 3), np.float32)
        self.sem = np.zeros((height, width), np.uint8)
        self.inst = np.full((height, width), -1, np.int16)
        self.noise = noise  # fine N(0, 1) noise, H x W
        self.low = low  # low-frequency N(0, ~1) noise, H x W
        self._obj: int = -1
        self._ext: list[float] | None = None
        self.camera = camera
        self.depth: np.ndarray | None = np.zeros((height, width), np.float64) if camera is not None else None
        self.billboard: float | None = None  # depth of the sprite being drawn (fronto-parallel plane)

    # ---------------------------------------------------------------- depth
    def write_depth(self, pts: np.ndarray, surface: Surface | None) -> None:
        """z-buffer the 2D polygon ``pts`` lying on ``surface`` (default: the billboard plane, if any)."""
        if self.depth is None or self.camera is None:
            return
        if surface is None:
            if self.billboard is None:
                return
            surface = (np.array([0.0, 0.0, 1.0]), float(self.billboard))
        res = raster_polygon(pts, self.h, self.w)
        if res is None:
            return
        r0, c0, m = res
        rr, cc = np.nonzero(m)
        rr, cc = rr + r0, cc + c0
        z = plane_depth(plane_of(surface), rr, cc, *self.camera)
        current = self.depth[rr, cc]
        nearer = (z > 0) & ((current == 0) | (z < current))
        self.depth[rr[nearer], cc[nearer]] = z[nearer]

    # ---------------------------------------------------------------- objects
    def begin_object(self, inst: int) -> None:
        self._obj = inst
        self._ext = [np.inf, np.inf, -np.inf, -np.inf]

    def end_object(self) -> tuple[tuple[float, float, float, float] | None, int]:
        """(full unclipped box x1 y1 x2 y2 or None, number of own pixels now visible)."""
        ext, inst = self._ext, self._obj
        self._obj, self._ext = -1, None
        if ext is None or not np.isfinite(ext).all():
            return None, 0
        return (ext[0], ext[1], ext[2], ext[3]), int(np.count_nonzero(self.inst == inst))

    # ---------------------------------------------------------------- painting
    def fill(
        self,
        pts: np.ndarray,
        color: np.ndarray | tuple | None = None,
        sem: int | None = None,
        *,
        texture: Texture | None = None,
        noise: float = 0.0,
        low: float = 0.0,
        surface: Surface | None = None,
    ) -> None:
        pts = np.asarray(pts, dtype=np.float64)
        self.write_depth(pts, surface)
        if self._ext is not None and len(pts):
            e = self._ext
            e[0] = min(e[0], float(pts[:, 0].min()))
            e[1] = min(e[1], float(pts[:, 1].min()))
            e[2] = max(e[2], float(pts[:, 0].max()))
            e[3] = max(e[3], float(pts[:, 1].max()))
        res = raster_polygon(pts, self.h, self.w)
        if res is None:
            return
        r0, c0, m = res
        if not m.any():
            return
        sl = (slice(r0, r0 + m.shape[0]), slice(c0, c0 + m.shape[1]))
        if texture is not None:
            rr, cc = np.nonzero(m)
            pix = texture(rr + r0, cc + c0).astype(np.float32)
        else:
            base = np.asarray(color, dtype=np.float32)
            gain = np.ones(int(m.sum()), np.float32)
            if noise:
                gain += noise * self.noise[sl][m]
            if low:
                gain += low * self.low[sl][m]
            pix = gain[:, None] * base[None, :]
        self.img[sl][m] = pix
        if sem is not None:
            self.sem[sl][m] = sem
        self.inst[sl][m] = self._obj

    def shade(self, pts: np.ndarray, factor: float | np.ndarray) -> None:
        """Multiply the image under the polygon by ``factor`` (shadows); labels unchanged."""
        res = raster_polygon(pts, self.h, self.w)
        if res is None:
            return
        r0, c0, m = res
        sl = (slice(r0, r0 + m.shape[0]), slice(c0, c0 + m.shape[1]))
        self.img[sl][m] *= np.asarray(factor, np.float32)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an H x W x C float image (edge padding)."""
    if sigma <= 0.05:
        return img
    radius = max(1, int(np.ceil(2.5 * sigma)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    out = img
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode="edge")
        acc = np.zeros_like(out)
        n = out.shape[axis]
        for i, w in enumerate(k):
            idx = [slice(None)] * out.ndim
            idx[axis] = slice(i, i + n)
            acc += w * p[tuple(idx)]
        out = acc
    return out


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Low-frequency noise (~N(0,1)): a coarse random grid bilinearly upsampled."""
    gh = max(2, int(np.ceil(height / cell)) + 2)
    gw = max(2, int(np.ceil(width / cell)) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    ys = (np.arange(height) + 0.5) / cell
    xs = (np.arange(width) + 0.5) / cell
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    fy = (ys - y0).astype(np.float32)[:, None]
    fx = (xs - x0).astype(np.float32)[None, :]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    # smoothstep weights hide the grid
    fy = fy * fy * (3 - 2 * fy)
    fx = fx * fx * (3 - 2 * fx)
    out = (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy
    return out / max(float(out.std()), 1e-6)
