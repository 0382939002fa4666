"""Fisheye re-projection of rendered pinhole scenes (the synth-woodscape preset).

Model: **equidistant**, ``r = f * theta`` - a pixel at distance ``r`` from the principal
point ``(cx, cy)`` sees the ray at angle ``theta = r / f`` from the optical axis, which is
the pinhole camera's axis (same orientation, same centre).  Every fisheye pixel centre is
mapped to the pinhole image through that ray; pixels whose ray is beyond ``max_theta`` or
falls outside the rendered pinhole image are outside the field of view (black image, label
0 / no instance), like the dark corners of real fisheye frames.  Images are resampled
bilinearly, label and instance maps with nearest sampling, so boxes recomputed from the
remapped instance map agree exactly with the remapped masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taskweight.synth import geometry as g


@dataclass(frozen=True)
class Fisheye:
    """Equidistant fisheye camera; ``f`` in pixels per radian."""

    f: float
    cx: float
    cy: float
    width: int
    height: int
    max_theta: float = np.radians(95.0)

    @classmethod
    def for_size(cls, size: tuple[int, int], half_fov_x: float = np.radians(40.0)) -> Fisheye:
        """A centred camera whose horizontal image edge is at ``half_fov_x`` from the axis."""
        h, w = size
        return cls(f=(w / 2) / half_fov_x, cx=w / 2, cy=h / 2, width=w, height=h)

    def rays(self) -> np.ndarray:
        """H x W x 3 unit ray directions through the pixel centres (camera coordinates)."""
        u = np.arange(self.width) + 0.5 - self.cx
        v = np.arange(self.height) + 0.5 - self.cy
        du, dv = np.meshgrid(u, v)
        r = np.hypot(du, dv)
        theta = r / self.f
        s = np.where(r > 0, np.sin(theta) / np.maximum(r, 1e-12), 1.0 / self.f)
        return np.stack([du * s, dv * s, np.cos(theta)], axis=-1)

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) camera points -> (..., 2) fisheye pixel coordinates."""
        pts = np.asarray(pts, np.float64)
        xy = np.hypot(pts[..., 0], pts[..., 1])
        theta = np.arctan2(xy, pts[..., 2])
        k = np.where(xy > 0, self.f * theta / np.maximum(xy, 1e-12), 0.0)
        return np.stack([self.cx + k * pts[..., 0], self.cy + k * pts[..., 1]], axis=-1)


def pinhole_lookup(fish: Fisheye, cam: g.Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, valid): continuous pinhole coordinates seen by every fisheye pixel centre."""
    d = fish.rays()
    theta = np.arccos(np.clip(d[..., 2], -1, 1))
    front = (d[..., 2] > 1e-6) & (theta <= fish.max_theta)
    z = np.where(front, d[..., 2], 1.0)
    u = cam.cx + cam.f * d[..., 0] / z
    v = cam.cy + cam.f * d[..., 1] / z
    valid = front & (u >= 0) & (v >= 0) & (u < cam.image_w) & (v < cam.image_h)
    return u, v, valid


def remap_nearest(values: np.ndarray, u: np.ndarray, v: np.ndarray, valid: np.ndarray, fill) -> np.ndarray:
    cols = np.clip(np.floor(u).astype(np.int64), 0, values.shape[1] - 1)
    rows = np.clip(np.floor(v).astype(np.int64), 0, values.shape[0] - 1)
    out = values[rows, cols]
    out[~valid] = fill
    return out


def remap_bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Bilinear resampling of an H x W x C uint8 image at pixel-centre coordinates."""
    h, w = image.shape[:2]
    x = np.clip(u - 0.5, 0, w - 1)
    y = np.clip(v - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    img = image.astype(np.float32)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    out = np.clip(np.round(top * (1 - fy) + bottom * fy), 0, 255).astype(np.uint8)
    out[~valid] = 0
    return out
