"""Camera, road layout and 3D helpers of the procedural scenes.

Camera coordinates follow KITTI: X right, Y down, Z forward, metres; the camera sits
``height`` metres above a flat road plane (``Y = height``).  Pixel coordinates are
continuous: pixel column ``j`` spans ``[j, j + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Cityscapes labelIds (the KITTI semantics benchmark uses the same ids).
ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_SIGN = 7, 8, 11, 17, 20
VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, BICYCLE = 21, 22, 23, 24, 25, 26, 33

Z_NEAR = 0.5
"""Near clipping plane (m) for geometry that reaches behind the camera."""


@dataclass(frozen=True)
class Camera:
    """Pinhole camera; ``f`` in pixels, principal point (cx, cy), mounting ``height`` (m)."""

    f: float
    cx: float
    cy: float
    height: float
    image_h: int
    image_w: int

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) camera points with Z > 0 -> (..., 2) continuous pixel coordinates."""
        pts = np.asarray(pts, dtype=np.float64)
        z = pts[..., 2]
        return np.stack([self.cx + self.f * pts[..., 0] / z, self.cy + self.f * pts[..., 1] / z], axis=-1)

    def rays(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Ray directions (N, 3) with unit Z through the centres of the given pixels."""
        u = cols.astype(np.float64) + 0.5
        v = rows.astype(np.float64) + 0.5
        return np.stack([(u - self.cx) / self.f, (v - self.cy) / self.f, np.ones_like(u)], axis=1)


@dataclass(frozen=True)
class Road:
    """Road layout in a lateral coordinate ``a`` (m): 0 at the left curb, ``width`` at the right.

    The road centre line may be laterally offset, yawed and curved:
    world ``X(a, Z) = a - ego_a + heading * Z + curvature * Z**2 / 2``.
    """

    lanes: int
    lane_width: float
    park_left: float
    park_right: float
    ego_a: float
    heading: float
    curvature: float
    curb: float
    walk_left: float
    walk_right: float

    @property
    def width(self) -> float:
        return self.park_left + self.lanes * self.lane_width + self.park_right

    @property
    def lanes_left(self) -> int:
        """Number of oncoming lanes (right-hand traffic: they are on the left)."""
        return self.lanes // 2

    def lane_center(self, k: int) -> float:
        return self.park_left + (k + 0.5) * self.lane_width

    def curb_a(self, side: int) -> float:
        """Lateral position of the curb on ``side`` (-1 left, +1 right)."""
        return 0.0 if side < 0 else self.width

    def walk_width(self, side: int) -> float:
        """Width of the sidewalk on ``side`` (-1 left, +1 right); it extends outwards from the curb."""
        return self.walk_left if side < 0 else self.walk_right

    def x(self, a: np.ndarray | float, z: np.ndarray | float) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return np.asarray(a, dtype=np.float64) - self.ego_a + self.heading * z + 0.5 * self.curvature * z * z

    def slope(self, z: float) -> float:
        """dX/dZ of the road direction at depth z."""
        return self.heading + self.curvature * z

    def direction(self, z: float) -> np.ndarray:
        """Unit ground direction (dx, dz) of the road at depth z (pointing away)."""
        d = np.array([self.slope(z), 1.0])
        return d / np.linalg.norm(d)

    def point(self, a: float, z: float, y: float) -> np.ndarray:
        return np.array([float(self.x(a, z)), y, z])


def clip_near(poly: np.ndarray, z_near: float = Z_NEAR) -> np.ndarray:
    """Sutherland-Hodgman clip of a 3D polygon (N x 3) against the plane Z >= z_near."""
    out = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        pin, qin = p[2] >= z_near, q[2] >= z_near
        if pin:
            out.append(p)
        if pin != qin:
            t = (z_near - p[2]) / (q[2] - p[2])
            out.append(p + t * (q - p))
    return np.array(out, dtype=np.float64).reshape(-1, 3)


def box_corners(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> np.ndarray:
    """8 corners of an axis-aligned box, index = 4*ix + 2*iy + iz."""
    return np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], dtype=np.float64)


CUBOID_FACES: dict[str, tuple[int, int, int, int]] = {
    "x-": (0, 1, 3, 2),
    "x+": (4, 5, 7, 6),
    "y-": (0, 1, 5, 4),  # top (Y points down)
    "y+": (2, 3, 7, 6),  # bottom
    "z-": (0, 2, 6, 4),
    "z+": (1, 3, 7, 5),
}


def visible_faces(corners: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Camera-facing faces of a convex cuboid: name -> (3D polygon, outward unit normal)."""
    centre = corners.mean(axis=0)
    out = {}
    for name, idx in CUBOID_FACES.items():
        poly = corners[list(idx)]
        fc = poly.mean(axis=0)
        u, v = poly[1] - poly[0], poly[3] - poly[0]
        n = np.array([u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]])
        norm = float(np.sqrt(n @ n))
        if norm < 1e-12:
            continue
        n /= norm
        if np.dot(n, fc - centre) < 0:
            n = -n
        if np.dot(n, fc) < -1e-9:  # camera at the origin is in front of the face
            out[name] = (poly, n)
    return out


def rot_y(ry: float) -> np.ndarray:
    """KITTI rotation about the camera Y axis (object x axis -> (cos ry, 0, -sin ry))."""
    c, s = np.cos(ry), np.sin(ry)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def wrap_angle(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Monotone-chain convex hull of 2D points (counter-clockwise)."""
    pts = sorted(map(tuple, np.asarray(points, dtype=np.float64)))
    if len(pts) <= 2:
        return np.array(pts)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])
