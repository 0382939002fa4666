"""Procedural driving scenes: a pinhole camera looking down a (possibly curved) road.

One scene = an RGB image, a Cityscapes-labelId mask and KITTI objects, all derived from a
single random layout.  ``render_scene(i, split, seed, size)`` is a pure function: the
random generator is ``np.random.default_rng([seed, split_id, i])`` (geometry) plus a second
stream ``[seed, split_id, i, 1]`` for pixel noise, so a scene never depends on how many
other scenes are generated, and the layout does not depend on the rendered size.

Painter's order (far to near): sky, distant skyline, ground (terrain, road, sidewalks,
curbs, markings), cast shadows, buildings / hedges / trees beyond the sidewalks, then poles,
signs, street trees and the labelled road users sorted by distance.  Image and mask are
painted from the same polygons (:mod:`taskweight.synth.raster`), so they agree pixel-exactly;
blur and sensor noise touch the image only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import numpy as np

from taskweight.synth import geometry as g
from taskweight.synth.actors import (
    Actor,
    Car,
    Cyclist,
    LabelledActor,
    Lighting,
    Pedestrian,
    Pole,
    Sign,
    Solid,
    Tree,
)
from taskweight.synth.raster import Canvas, gaussian_blur, smooth_noise

SPLIT_IDS: Final[dict[str, int]] = {"train": 0, "val": 1, "test": 2}
KITTI_SIZE: Final[tuple[int, int]] = (375, 1242)
DEFAULT_SIZE: Final[tuple[int, int]] = (125, 414)
"""Default rendered size of the synth-kitti preset: KITTI / 3."""
KITTI_FOCAL: Final[float] = 721.5377
MIN_BOX_HEIGHT: Final[float] = 8.0
"""Objects whose (clipped) box is lower than this at 125 px image height become DontCare."""
MAX_HIDDEN: Final[float] = 0.8
MAX_TRUNCATION: Final[float] = 0.8
Z_FAR: Final[float] = 400.0

KITTI_TYPES: Final[tuple[str, ...]] = ("Car", "Pedestrian", "Cyclist", "DontCare")


def min_box_height(size: tuple[int, int]) -> float:
    """DontCare height threshold in pixels at rendered size ``size`` (scales with H)."""
    return MIN_BOX_HEIGHT * size[0] / DEFAULT_SIZE[0]


def focal_length(size: tuple[int, int]) -> float:
    """KITTI's focal length scaled to the rendered size (the tighter of the two axes)."""
    return KITTI_FOCAL * min(size[0] / KITTI_SIZE[0], size[1] / KITTI_SIZE[1])


def min_object_height(size: tuple[int, int]) -> float:
    """DontCare height threshold in pixels for the same object size as :func:`min_box_height`
    at any aspect: ``MIN_BOX_HEIGHT * f(size) / f(DEFAULT_SIZE)`` with f = :func:`focal_length`
    (an object's height in pixels is proportional to f).  At KITTI's aspect it is
    :func:`min_box_height` to within 2 %; at Cityscapes' 1:2 (f tied to the width) it is lower:
    9.9 px at 256 x 512, where :func:`min_box_height` gives 16.4 px."""
    return MIN_BOX_HEIGHT * focal_length(size) / focal_length(DEFAULT_SIZE)


@dataclass
class SceneObject:
    """One KITTI label of a scene (values as written to ``label_2``, unrounded)."""

    type: str  # Car, Pedestrian, Cyclist or DontCare
    box: tuple[float, float, float, float]  # x1 y1 x2 y2, full 2D extent clipped to the image
    truncated: float
    occluded: int  # 0 fully visible, 1 partly (<50 % hidden), 2 largely hidden; -1 for DontCare
    alpha: float
    dimensions: tuple[float, float, float]  # h w l (m)
    location: tuple[float, float, float]  # x y z (m), bottom centre in camera coordinates
    rotation_y: float
    hidden: float = 0.0
    """Fraction of the object's in-image pixels hidden by nearer things (not in KITTI files)."""
    source: str = ""
    """The rendered class (for DontCare: what it hides)."""
    road_user: int = -1
    """Index of the road user it labels: its pixels' value in the renderer's instance map (not in KITTI files)."""

    def kitti_line(self) -> str:
        x1, y1, x2, y2 = self.box
        if self.type == "DontCare":
            return f"DontCare -1 -1 -10 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} -1 -1 -1 -1000 -1000 -1000 -10"
        h, w, length = self.dimensions
        x, y, z = self.location
        return (
            f"{self.type} {self.truncated:.2f} {self.occluded:d} {self.alpha:.2f} "
            f"{x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} {h:.2f} {w:.2f} {length:.2f} {x:.2f} {y:.2f} {z:.2f} "
            f"{self.rotation_y:.2f}"
        )


@dataclass
class Scene:
    image: np.ndarray  # H x W x 3 uint8
    semantic_ids: np.ndarray  # H x W uint8 Cityscapes labelIds
    objects: list[SceneObject]
    camera: g.Camera
    index: int
    split: str
    seed: int
    info: dict = field(default_factory=dict)
    depth: np.ndarray | None = None  # H x W float64 metres (0 = no surface), when rendered with depth=True


# ============================================================================ layout sampling
_Range = tuple[float, float]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _jitter(rng: np.random.Generator, colour, amount: float = 0.06) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float64) * (1 + rng.uniform(-amount, amount, 3)), 0, 1)


def _pick(rng: np.random.Generator, palette: list[tuple[float, float, float]], amount: float) -> np.ndarray:
    """A colour of ``palette``, drawn uniformly, then jittered by up to ``amount`` per channel."""
    return _jitter(rng, palette[int(rng.integers(len(palette)))], amount)


CAR_COLOURS = [
    (0.85, 0.86, 0.87),
    (0.92, 0.92, 0.9),
    (0.6, 0.62, 0.64),
    (0.07, 0.07, 0.08),
    (0.25, 0.26, 0.28),
    (0.12, 0.2, 0.45),
    (0.55, 0.08, 0.07),
    (0.35, 0.05, 0.06),
    (0.15, 0.3, 0.2),
    (0.62, 0.55, 0.42),
    (0.85, 0.7, 0.1),
    (0.2, 0.45, 0.65),
]
CLOTHES = [
    (0.1, 0.1, 0.12),
    (0.2, 0.22, 0.35),
    (0.7, 0.15, 0.12),
    (0.85, 0.85, 0.82),
    (0.3, 0.45, 0.25),
    (0.55, 0.45, 0.3),
    (0.15, 0.3, 0.6),
    (0.8, 0.6, 0.1),
    (0.45, 0.45, 0.47),
    (0.5, 0.2, 0.45),
]
TROUSERS = [(0.12, 0.16, 0.3), (0.08, 0.08, 0.09), (0.35, 0.33, 0.3), (0.5, 0.45, 0.35), (0.2, 0.2, 0.22)]
SKIN = [(0.87, 0.7, 0.6), (0.75, 0.57, 0.45), (0.55, 0.38, 0.28), (0.36, 0.24, 0.18)]
HAIR = [(0.08, 0.06, 0.05), (0.3, 0.2, 0.1), (0.6, 0.5, 0.3), (0.15, 0.1, 0.07), (0.55, 0.55, 0.55)]
FACADES = [
    (0.72, 0.66, 0.56),
    (0.6, 0.58, 0.55),
    (0.55, 0.3, 0.22),
    (0.82, 0.8, 0.75),
    (0.75, 0.68, 0.45),
    (0.45, 0.45, 0.47),
    (0.65, 0.52, 0.42),
    (0.7, 0.72, 0.7),
]


@dataclass
class _Layout:
    """Everything :func:`_sample_layout` draws for a scene; :func:`render_scene` paints it."""

    cam: g.Camera
    road: g.Road
    light: Lighting
    weather: str
    sky_top: np.ndarray
    sky_horizon: np.ndarray
    asphalt: np.ndarray
    sidewalk: np.ndarray
    curb_colour: np.ndarray
    terrain: np.ndarray
    vegetation: np.ndarray
    roadside: tuple[str, str]
    skyline: list[tuple[np.ndarray, int, np.ndarray]]  # (polygon in px, sem, colour)
    treelines: list[tuple[np.ndarray, np.ndarray]]  # (3D polygon, colour)
    background: list[Actor]
    foreground: list[Actor]
    road_users: list[LabelledActor]
    marks: list[np.ndarray]  # 3D ground polygons
    patches: list[tuple[np.ndarray, float]]
    tile: float
    post: dict
    mark_colour: np.ndarray


class _Occupancy:
    """Axis-aligned footprints in road coordinates (a, z) to keep things from overlapping."""

    def __init__(self) -> None:
        self.rects: list[tuple[float, float, float, float]] = []

    def free(self, a: float, z: float, ha: float, hz: float) -> bool:
        return all(abs(a - ra) >= ha + rha or abs(z - rz) >= hz + rhz for ra, rz, rha, rhz in self.rects)

    def add(self, a: float, z: float, ha: float, hz: float) -> None:
        self.rects.append((a, z, ha, hz))


def _sample_layout(rng: np.random.Generator, size: tuple[int, int]) -> _Layout:
    """Draw a whole scene layout from ``rng``: the steps below, in this order, are the order of
    the random draws (a scene's bytes depend on it); only the skyline depends on ``size``, and it
    draws from a stream of its own."""
    cam = _sample_camera(rng, size)
    road = _sample_road(rng)
    weather = _sample_weather(rng)
    asphalt, sidewalk, curb_colour, terrain, vegetation = _sample_palette(rng)
    occ = _Occupancy()
    hc, y_walk = cam.height, cam.height - road.curb
    roadside = (_sample_roadside_kind(rng), _sample_roadside_kind(rng))
    skyline = _sample_skyline(rng, cam, weather.sky_horizon, vegetation)
    background, foreground, treelines = _sample_roadside(rng, road, hc, roadside, vegetation, occ)
    foreground += _sample_signs(rng, road, y_walk, occ)
    marks = _sample_lane_markings(rng, road, hc)
    crosswalk, stripes = _sample_crosswalk(rng, road, hc)
    patches = _sample_patches(rng, road, hc)
    users = _sample_road_users(rng, road, hc, y_walk, occ, crosswalk)
    post = _sample_post(rng, weather)
    return _Layout(
        cam=cam,
        road=road,
        light=weather.light,
        weather=weather.name,
        sky_top=weather.sky_top,
        sky_horizon=weather.sky_horizon,
        asphalt=asphalt,
        sidewalk=sidewalk,
        curb_colour=curb_colour,
        terrain=terrain,
        vegetation=vegetation,
        roadside=roadside,
        skyline=skyline,
        treelines=treelines,
        background=background,
        foreground=foreground,
        road_users=users,
        marks=marks + stripes,
        patches=patches,
        tile=_u(rng, 0.3, 0.6),
        post=post,
        mark_colour=np.array([0.86, 0.86, 0.84]) * (0.8 + 0.2 * float(rng.random())),
    )


def _sample_camera(rng: np.random.Generator, size: tuple[int, int]) -> g.Camera:
    """The camera: KITTI's focal length at ``size``, principal point near the centre, horizon at
    40-49 % of the height, mounted 1.58-1.72 m above the road."""
    H, W = size
    return g.Camera(
        f=focal_length(size),
        cx=W / 2 + float(rng.normal(0, 0.01)) * W,
        cy=H * _u(rng, 0.40, 0.49),
        height=_u(rng, 1.58, 1.72),
        image_h=H,
        image_w=W,
    )


def _sample_road(rng: np.random.Generator) -> g.Road:
    """Road geometry: 2-4 lanes, optional parking strips, the ego lane (right-hand traffic),
    heading, curvature (straight in 45 % of scenes), curb height and sidewalk widths."""
    lanes = int(rng.choice([2, 2, 3, 4]))
    lane_w = _u(rng, 3.0, 3.7)
    park_l = 2.2 if rng.random() < 0.45 else 0.0
    park_r = 2.2 if rng.random() < 0.5 else 0.0
    ego_lane = int(rng.integers(lanes // 2, lanes))
    ego_a = park_l + (ego_lane + 0.5) * lane_w + float(rng.normal(0, 0.25))
    curv = float(rng.uniform(-0.0012, 0.0012)) if rng.random() < 0.55 else 0.0
    return g.Road(
        lanes=lanes,
        lane_width=lane_w,
        park_left=park_l,
        park_right=park_r,
        ego_a=ego_a,
        heading=float(rng.normal(0, 0.025)),
        curvature=curv,
        curb=_u(rng, 0.1, 0.18),
        walk_left=_u(rng, 1.8, 4.5),
        walk_right=_u(rng, 1.8, 4.5),
    )


class _Weather(NamedTuple):
    """Lighting and sky of a scene, and the image tint its post-processing applies."""

    name: str  # sunny, overcast or low_sun
    light: Lighting
    sky_top: np.ndarray
    sky_horizon: np.ndarray
    tint: tuple[float, ...]


_SUNLIT: Final[dict[str, tuple[tuple[float, ...], ...]]] = {
    # sun elevation (deg), ambient light, shadow factor, sky top colour, sky horizon colour, tint
    "sunny": ((25, 60), (0.5, 0.65), (0.45, 0.65), (0.32, 0.52, 0.85), (0.72, 0.82, 0.93), (1.0, 1.0, 1.0)),
    "low_sun": ((8, 20), (0.45, 0.6), (0.5, 0.7), (0.42, 0.52, 0.78), (0.95, 0.78, 0.58), (1.08, 1.0, 0.88)),
}
"""The weathers whose sun casts shadows: ranges of the sun's elevation, ambient light and shadow
factor, the sky's colours and the image tint."""


def _sample_weather(rng: np.random.Generator) -> _Weather:
    """Weather (sunny 50 %, overcast 30 %, low sun 20 %): the sun's direction and the ambient light,
    cast shadows (not when overcast) and the sky's colours."""
    weather = str(rng.choice(["sunny", "overcast", "low_sun"], p=[0.5, 0.3, 0.2]))
    az = _u(rng, 0, 2 * np.pi)
    if weather == "overcast":
        light = Lighting(
            sun=np.array([0.0, 1.0, 0.0]), ambient=_u(rng, 0.75, 0.85), cast_shadows=False, shadow_factor=1.0
        )
        grey = _u(rng, 0.7, 0.88)
        return _Weather(
            weather, light, _jitter(rng, (grey * 0.9,) * 3, 0.03), _jitter(rng, (grey,) * 3, 0.03), (0.98, 1.0, 1.03)
        )
    elevation, ambient, shadow, top, horizon, tint = _SUNLIT[weather]
    el = np.radians(_u(rng, *elevation))
    light = Lighting(
        sun=np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)]),
        ambient=_u(rng, *ambient),
        cast_shadows=True,
        shadow_factor=_u(rng, *shadow),
    )
    sky_top, sky_horizon = _jitter(rng, top), _jitter(rng, horizon)
    return _Weather(weather, light, sky_top, sky_horizon, tint)


SIDEWALK_COLOURS = [(0.58, 0.58, 0.56), (0.64, 0.59, 0.5), (0.58, 0.44, 0.38), (0.5, 0.5, 0.52)]
TERRAIN_COLOURS = [(0.32, 0.42, 0.18), (0.45, 0.45, 0.28), (0.38, 0.36, 0.25)]


def _sample_palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Colours of the asphalt, sidewalk, curb, terrain and vegetation."""
    grey = _u(rng, 0.24, 0.4)
    asphalt = _jitter(rng, (grey, grey, grey * 1.03), 0.03)
    sidewalk = _pick(rng, SIDEWALK_COLOURS, 0.05)
    curb_colour = _jitter(rng, (0.68, 0.68, 0.66), 0.05)
    terrain = _pick(rng, TERRAIN_COLOURS, 0.08)
    vegetation = _jitter(rng, (0.2, 0.33, 0.13), 0.15)
    return asphalt, sidewalk, curb_colour, terrain, vegetation


def _sample_roadside_kind(rng: np.random.Generator) -> str:
    """What lies beyond one sidewalk: urban (buildings), green (hedges, trees, houses) or open land."""
    return str(rng.choice(["urban", "green", "open"], p=[0.55, 0.3, 0.15]))


def _sample_skyline(
    rng: np.random.Generator, cam: g.Camera, sky_horizon: np.ndarray, vegetation: np.ndarray
) -> list[tuple[np.ndarray, int, np.ndarray]]:
    """Distant skyline in pixels, hazed towards the horizon sky: a stepped row of buildings and a
    bumpy tree line. Its draws depend on the image size, so they use a stream of their own (one
    draw of ``rng`` seeds it), keeping the rest of the layout independent of the size."""
    f, W = cam.f, cam.image_w
    srng = np.random.default_rng(rng.integers(2**63))
    haze = 0.45
    far_col = np.clip((1 - haze) * np.array([0.45, 0.47, 0.5]) + haze * sky_horizon, 0, 1)
    tree_col = np.clip((1 - haze) * vegetation + haze * sky_horizon * 0.8, 0, 1)
    xs, x = [], -2.0
    while x < W + 2:
        xs.append(x)
        x += _u(srng, W / 40, W / 10)
    xs.append(W + 2.0)
    tops = [cam.cy - f * _u(srng, 8, 40) / _u(srng, 350, 700) for _ in xs]
    pts = [(-2.0, cam.cy + 1)]
    # one top per x was drawn (the random stream depends on it); the last x starts no segment, so its top is unused
    for (x0, x1), t in zip(zip(xs[:-1], xs[1:], strict=True), tops, strict=False):
        if srng.random() < 0.35:
            t = cam.cy - 0.5
        pts += [(x0, t), (x1, t)]
    pts.append((W + 2.0, cam.cy + 1))
    n_bumps = max(8, W // 6)
    bx = np.linspace(-2, W + 2, n_bumps)
    bh = np.abs(np.cumsum(srng.normal(0, 1, n_bumps))) * f * 1.2 / 400 + f * 3 / 400
    tl = np.column_stack([bx, cam.cy - bh])
    return [
        (np.array(pts), g.BUILDING, far_col),
        (np.vstack([[-2, cam.cy + 1], tl, [W + 2, cam.cy + 1]]), g.VEGETATION, tree_col),
    ]


class _Side(NamedTuple):
    """One side of the street, along which scenery and furniture are sampled."""

    road: g.Road
    hc: float  # camera height: the road is the plane Y = hc
    side: int  # -1 left, +1 right
    kind: str  # what lies beyond the sidewalk: urban, green or open
    vegetation: np.ndarray  # the scene's vegetation colour

    @property
    def inner(self) -> float:
        """Lateral position ``a`` of the curb."""
        return self.road.curb_a(self.side)

    @property
    def outer(self) -> float:
        """Lateral position ``a`` of the sidewalk's outer edge."""
        return self.inner + self.side * self.road.walk_width(self.side)


def _sample_roadside(
    rng: np.random.Generator,
    road: g.Road,
    hc: float,
    roadside: tuple[str, str],
    vegetation: np.ndarray,
    occ: _Occupancy,
) -> tuple[list[Actor], list[Actor], list[tuple[np.ndarray, np.ndarray]]]:
    """Both sides of the street, left then right: the scenery beyond the sidewalk by its kind, then
    the street furniture on the sidewalk. Returns (background, foreground, tree lines)."""
    background: list[Actor] = []
    foreground: list[Actor] = []
    treelines: list[tuple[np.ndarray, np.ndarray]] = []
    for side, kind in zip((-1, 1), roadside, strict=True):
        s = _Side(road, hc, side, kind, vegetation)
        if kind == "urban":
            background += _sample_buildings(rng, s)
        elif kind == "green":
            background += _sample_hedges(rng, s)
            background += _tree_row(rng, s, start=(0, 10), stop=90, offset=(2.5, 7), step=(5, 14))
            background += _sample_houses(rng, s)
        else:  # open land: grass, a tree line far away, sparse trees
            treelines.append(_sample_treeline(rng, s))
            background += _tree_row(rng, s, start=(3, 20), stop=100, offset=(2, 14), step=(8, 30))
        foreground += _sample_street_furniture(rng, s, occ)
    return background, foreground, treelines


def _sample_buildings(rng: np.random.Generator, s: _Side) -> list[Actor]:
    """Urban side: a row of buildings from just behind the camera to 130 m, set back together,
    with gaps and changes of facade colour."""
    buildings: list[Actor] = []
    setback = _u(rng, 0, 2.5) if rng.random() < 0.5 else 0.0
    z = _u(rng, -12, -4)
    colour = _pick(rng, FACADES, 0.08)
    while z < 130:
        length = _u(rng, 8, 26)
        if rng.random() < 0.25:  # gap between buildings
            z += _u(rng, 2, 9)
        if rng.random() < 0.5:
            colour = _pick(rng, FACADES, 0.08)
        a0 = s.outer + s.side * (setback + max(0.0, float(rng.normal(0, 0.3))))
        buildings.append(_building(rng, s.road, s.hc, a0, s.side, z, z + length, _u(rng, 6, 22), colour))
        z += length
    return buildings


def _sample_hedges(rng: np.random.Generator, s: _Side) -> list[Actor]:
    """Green side: a hedge along the sidewalk, in stretches up to 120 m."""
    hedges: list[Actor] = []
    z = _u(rng, -5, 5)
    hedge_h = _u(rng, 0.8, 1.8)
    while z < 120:
        length = _u(rng, 10, 40)
        a0 = s.outer + s.side * 0.3
        top = s.hc - hedge_h * _u(rng, 0.9, 1.1)
        corners = _corners(s.road, (a0, a0 + s.side * 1.0), (s.hc, top), (z, z + length))
        colour = _jitter(rng, s.vegetation, 0.1)
        hedges.append(Solid(loc=corners.mean(axis=0), corners=corners, sem=g.VEGETATION, colour=colour, noise=0.15))
        z += length + (_u(rng, 1, 6) if rng.random() < 0.4 else 0.0)
    return hedges


def _sample_houses(rng: np.random.Generator, s: _Side) -> list[Actor]:
    """Green side: low houses 9-16 m behind the sidewalk, far apart."""
    houses: list[Actor] = []
    z = _u(rng, 5, 30)
    while z < 140:
        length = _u(rng, 8, 16)
        a0 = s.outer + s.side * _u(rng, 9, 16)
        height = _u(rng, 5, 9)
        houses.append(_building(rng, s.road, s.hc, a0, s.side, z, z + length, height, _pick(rng, FACADES, 0.08)))
        z += length + _u(rng, 8, 30)
    return houses


def _tree_row(
    rng: np.random.Generator, s: _Side, *, start: _Range, stop: float, offset: _Range, step: _Range
) -> list[Actor]:
    """Trees beyond the sidewalk: the first at a depth drawn from ``start``, then every ``step`` m
    up to ``stop``, each ``offset`` m beyond the sidewalk's outer edge."""
    trees: list[Actor] = []
    z = _u(rng, *start)
    while z < stop:
        a = s.outer + s.side * _u(rng, *offset)
        trees.append(_tree(rng, s.road, s.hc, a, z, s.vegetation))
        z += _u(rng, *step)
    return trees


def _sample_treeline(rng: np.random.Generator, s: _Side) -> tuple[np.ndarray, np.ndarray]:
    """Open side: a tree line 15-45 m beyond the sidewalk, along the road out to 300 m (3D polygon, colour)."""
    road, hc = s.road, s.hc
    a_t = s.outer + s.side * _u(rng, 15, 45)
    zs = np.linspace(2, 300, 40)
    crowns = hc - (_u(rng, 6, 12) + np.abs(np.cumsum(rng.normal(0, 0.8, len(zs)))))
    poly = [[float(road.x(a_t, z)), hc, z] for z in zs]
    poly += [[float(road.x(a_t, z)), t, z] for z, t in zip(zs[::-1], crowns[::-1], strict=True)]
    return np.array(poly), _jitter(rng, s.vegetation * 0.8, 0.1)


def _sample_street_furniture(rng: np.random.Generator, s: _Side, occ: _Occupancy) -> list[Actor]:
    """One sidewalk's furniture: lamp posts at the curb (75 % of sidewalks) and, on an urban side,
    street trees at its outer edge (35 %); their footprints go into ``occ``."""
    furniture: list[Actor] = []
    y_walk = s.hc - s.road.curb
    if rng.random() < 0.75:
        z = _u(rng, 2, 25)
        a = s.inner + s.side * 0.45
        height = _u(rng, 6, 8.5)
        while z < 130:
            loc = s.road.point(a, z, y_walk)
            furniture.append(Pole(loc=loc, height=height, arm=-s.side * _u(rng, 0.8, 1.8)))
            occ.add(a, z, 0.3, 0.3)
            z += _u(rng, 22, 36)
    if s.kind == "urban" and rng.random() < 0.35:
        z = _u(rng, 3, 12)
        a = s.outer - s.side * 0.9
        while z < 80:
            furniture.append(_tree(rng, s.road, y_walk, a, z, s.vegetation, street=True))
            occ.add(a, z, 0.5, 0.5)
            z += _u(rng, 8, 14)
    return furniture


SIGN_COLOURS: Final[dict[str, tuple[float, float, float]]] = {
    "circle": (0.75, 0.08, 0.08),
    "triangle": (0.78, 0.1, 0.08),
    "square": (0.1, 0.25, 0.65),
}


def _sample_signs(rng: np.random.Generator, road: g.Road, y_walk: float, occ: _Occupancy) -> list[Actor]:
    """0-2 traffic signs just beyond a curb, where ``occ`` has room for them."""
    signs: list[Actor] = []
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        side = int(rng.choice([-1, 1]))
        a = road.curb_a(side) + side * 0.6
        z = _u(rng, 6, 45)
        if occ.free(a, z, 0.3, 0.3):
            kind = str(rng.choice(list(SIGN_COLOURS)))
            colour = np.array(SIGN_COLOURS[kind])
            signs.append(Sign(loc=road.point(a, z, y_walk), height=_u(rng, 2.0, 2.6), kind=kind, colour=colour))
            occ.add(a, z, 0.3, 0.3)
    return signs


def _sample_lane_markings(rng: np.random.Generator, road: g.Road, hc: float) -> list[np.ndarray]:
    """Lane lines (dashed; the centre line solid in half the scenes) and the solid edge lines of
    the driving lanes (60 % left, 70 % right), as 3D ground polygons."""
    marks: list[np.ndarray] = []
    mark_w = _u(rng, 0.1, 0.16)
    dash, gap = (3.0, 6.0) if rng.random() < 0.7 else (6.0, 12.0)
    for k in range(1, road.lanes):
        a = road.park_left + k * road.lane_width
        centre = k == road.lanes_left
        if centre and rng.random() < 0.5:
            marks.append(_strip(road, hc, a - mark_w / 2, a + mark_w / 2, 1.0, 160.0))
            continue
        phase = _u(rng, 0, dash + gap)
        z = 1.0 - phase
        while z < 160:
            z0, z1 = max(z, 1.0), z + dash
            if z1 > z0:
                marks.append(_strip(road, hc, a - mark_w / 2, a + mark_w / 2, z0, z1, n=2))
            z += dash + gap
    right_edge = road.park_left + road.lanes * road.lane_width
    for a, present in ((road.park_left, rng.random() < 0.6), (right_edge, rng.random() < 0.7)):
        if present:
            marks.append(_strip(road, hc, a - mark_w / 2, a + mark_w / 2, 1.0, 160.0))
    return marks


def _sample_crosswalk(
    rng: np.random.Generator, road: g.Road, hc: float
) -> tuple[tuple[float, float] | None, list[np.ndarray]]:
    """A zebra crossing 9-30 m ahead in 15 % of the scenes: its depth range (or None) and its stripes."""
    if rng.random() >= 0.15:
        return None, []
    z0 = _u(rng, 9, 30)
    depth = _u(rng, 2.5, 4.0)
    stripes = []
    a = 0.4
    while a + 0.5 < road.width - 0.3:
        stripes.append(_strip(road, hc, a, a + 0.5, z0, z0 + depth, n=2))
        a += 1.0
    return (z0, z0 + depth), stripes


def _sample_patches(rng: np.random.Generator, road: g.Road, hc: float) -> list[tuple[np.ndarray, float]]:
    """0-2 repaired asphalt patches on the road: (3D ground polygon, brightness factor)."""
    patches = []
    for _ in range(int(rng.integers(0, 3))):
        a0 = _u(rng, 0, road.width - 1)
        z0 = _u(rng, 4, 40)
        patches.append(
            (
                _strip(road, hc, a0, min(road.width, a0 + _u(rng, 1, 4)), z0, z0 + _u(rng, 2, 10), n=3),
                _u(rng, 0.8, 1.15),
            )
        )
    return patches


def _sample_road_users(
    rng: np.random.Generator,
    road: g.Road,
    hc: float,
    y_walk: float,
    occ: _Occupancy,
    crosswalk: tuple[float, float] | None,
) -> list[LabelledActor]:
    """The labelled road users: 2-8 cars, then 0-4 pedestrians, then 0-3 cyclists. The number of
    each class is drawn first; each one gets 12 tries at a place that ``occ`` has room for."""
    users: list[LabelledActor] = []
    n_cars = int(rng.choice(np.arange(2, 9), p=[0.1, 0.15, 0.17, 0.17, 0.15, 0.14, 0.12]))
    users += _place(n_cars, lambda: _sample_car(rng, road, hc, occ))
    n_pedestrians = int(rng.choice(5, p=[0.15, 0.3, 0.25, 0.18, 0.12]))
    users += _place(n_pedestrians, lambda: _sample_pedestrian(rng, road, hc, y_walk, occ, crosswalk))
    n_cyclists = int(rng.choice(4, p=[0.35, 0.35, 0.2, 0.1]))
    users += _place(n_cyclists, lambda: _sample_cyclist(rng, road, hc, y_walk, occ))
    return users


def _place(count: int, sample: Callable[[], LabelledActor | None], attempts: int = 12) -> list[LabelledActor]:
    """``count`` actors from ``sample`` (None: no room there), each given up after ``attempts`` tries."""
    placed = []
    for _ in range(count):
        for _attempt in range(attempts):
            actor = sample()
            if actor is not None:
                placed.append(actor)
                break
    return placed


def _sample_post(rng: np.random.Generator, weather: _Weather) -> dict:
    """Camera post-processing: exposure gain, gamma, tint, blur, sensor noise, vignetting and the
    sky's cloud cover (little when overcast)."""
    return {
        "gain": _u(rng, 0.8, 1.2) * (0.92 if weather.name == "overcast" else 1.0),
        "gamma": _u(rng, 0.85, 1.2),
        "tint": np.array(weather.tint) * rng.uniform(0.95, 1.05, 3),
        "blur": _u(rng, 0.35, 0.8),
        "noise": _u(rng, 0.006, 0.02),
        "vignette": _u(rng, 0.0, 0.25),
        "clouds": _u(rng, 0.0, 0.25) if weather.name != "overcast" else _u(rng, 0.0, 0.08),
    }


def _corners(road: g.Road, a: tuple[float, float], y: tuple[float, float], z: tuple[float, float]) -> np.ndarray:
    """8 world corners of a road-aligned block (index = 4*ia + 2*iy + iz)."""
    return np.array([[float(road.x(aa, zz)), yy, zz] for aa in a for yy in y for zz in z])


def _strip(road: g.Road, y: float, a0: float, a1: float, z0: float, z1: float, n: int = 40) -> np.ndarray:
    """3D ground polygon between lateral a0..a1 and depth z0..z1 at height Y=y."""
    zs = np.geomspace(z0, z1, n) if z0 > 0 and n > 2 else np.linspace(z0, z1, n)
    left = np.column_stack([road.x(a0, zs), np.full(n, y), zs])
    right = np.column_stack([road.x(a1, zs[::-1]), np.full(n, y), zs[::-1]])
    return np.vstack([left, right])


def _building(
    rng, road: g.Road, hc: float, a0: float, side: int, z0: float, z1: float, height: float, colour: np.ndarray
) -> Solid:
    corners = _corners(road, (a0, a0 + side * 12.0), (hc, hc - height), (z0, z1))
    params = {
        "floor": _u(rng, 2.8, 3.4),
        "spacing": _u(rng, 2.0, 3.5),
        "win_x": (_u(rng, 0.15, 0.3), _u(rng, 0.65, 0.85)),
        "win_y": (_u(rng, 0.25, 0.35), _u(rng, 0.7, 0.85)),
        "glass": _jitter(rng, (0.16, 0.19, 0.24), 0.2),
        "shop": rng.random() < 0.5,
        "height": height,
        "seed": _u(rng, 0, 100),
    }
    return Solid(
        loc=corners.mean(axis=0), corners=corners, sem=g.BUILDING, colour=colour, texture=_FacadeTexture(params)
    )


def _tree(rng, road: g.Road, y: float, a: float, z: float, vegetation: np.ndarray, street: bool = False) -> Tree:
    n = 16
    jit = np.clip(1 + rng.normal(0, 0.12, n), 0.7, 1.3)
    return Tree(
        loc=road.point(a, z, y),
        trunk=_u(rng, 1.8, 3.0) if street else _u(rng, 1.5, 4.0),
        crown=_u(rng, 1.2, 2.2) if street else _u(rng, 1.5, 3.5),
        colour=_jitter(rng, vegetation, 0.2),
        jitter=jit,
    )


class _FacadeTexture:
    """Building faces: windows (per-window glass variation), shop fronts, a cornice.

    Pixels are mapped back onto the face plane, so windows are in true perspective; they fade
    into the wall colour once a floor is only a few pixels high (no moiré).
    """

    def __init__(self, params: dict) -> None:
        self.p = params
        self.cam: g.Camera | None = None
        self.canvas: Canvas | None = None

    def __call__(self, poly: np.ndarray, normal: np.ndarray, colour: np.ndarray):
        cam, cv, p = self.cam, self.canvas, self.p
        assert cam is not None and cv is not None
        ys = poly[:, 1]
        bottom = poly[np.argsort(-ys)[:2]]  # the two ground corners
        a, b = bottom[0], bottom[1]
        e_s = b - a
        e_s = e_s / max(np.linalg.norm(e_s), 1e-9)
        e_t = np.array([0.0, -1.0, 0.0])
        nd = float(np.dot(normal, a))

        def tex(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            d = cam.rays(rows, cols)
            den = d @ normal
            den = np.where(np.abs(den) < 1e-9, 1e-9, den)
            lam = nd / den
            P = d * lam[:, None]
            s = (P - a) @ e_s
            t = (P - a) @ e_t
            fl, sp = p["floor"], p["spacing"]
            fs, ft = np.mod(s / sp, 1.0), np.mod(t / fl, 1.0)
            win = (fs > p["win_x"][0]) & (fs < p["win_x"][1]) & (ft > p["win_y"][0]) & (ft < p["win_y"][1])
            win &= (t > fl) & (t < p["height"] - 0.6)
            if p["shop"]:
                win |= (
                    (t > 0.4) & (t < fl * 0.8) & (np.mod(s / (2 * sp), 1.0) > 0.08) & (np.mod(s / (2 * sp), 1.0) < 0.92)
                )
            px_per_floor = cam.f * fl / np.maximum(lam, 1e-3)
            fade = np.clip((px_per_floor - 2.0) / 4.0, 0.0, 1.0)
            k = np.floor(s / sp) * 12.9898 + np.floor(t / fl) * 78.233 + p["seed"]
            var = np.mod(np.sin(k) * 43758.5453, 1.0)
            glass = p["glass"][None, :] * (0.6 + 0.9 * var[:, None])
            base = colour[None, :] * (1.0 + 0.04 * cv.noise[rows, cols] + 0.04 * cv.low[rows, cols])[:, None]
            cornice = t > p["height"] - 0.5
            base[cornice] *= 0.78
            wmix = (win * (0.35 + 0.65 * fade))[:, None]
            wall_avg = base * (1 - 0.25 * (1 - fade))[:, None]  # far facades look darker on average
            return wall_avg * (1 - wmix) + glass * wmix

        return tex


def _heading_ry(d: np.ndarray) -> float:
    """KITTI rotation_y of an object moving along ground direction d = (dx, dz)."""
    return float(np.arctan2(-d[1], d[0]))


def _rotate(d: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])


def _extent(d: np.ndarray, length: float, width: float, road: g.Road, z: float) -> tuple[float, float]:
    """Half extents along road-lateral and depth of a footprint heading d."""
    rd = road.direction(z)
    along = abs(float(np.dot(d, rd)))
    across = np.sqrt(max(0.0, 1 - along * along))
    return along * width / 2 + across * length / 2, along * length / 2 + across * width / 2


CAR_PARAMETERS = ("h", "w", "length", "rear_off", "front_off", "rear_slope", "front_slope", "body_top")
CAR_SHAPES: Final[dict[str, tuple[tuple[float, float] | float, ...]]] = {
    "sedan": ((1.38, 1.52), (1.68, 1.82), (4.3, 4.9), (0.18, 0.24), (0.28, 0.34), (0.3, 0.5), (0.5, 0.7), (0.8, 0.9)),
    "hatch": ((1.42, 1.55), (1.62, 1.78), (3.7, 4.2), (0.04, 0.08), (0.26, 0.32), (0.15, 0.3), (0.5, 0.7), (0.8, 0.9)),
    "suv": ((1.6, 1.8), (1.8, 1.95), (4.4, 4.9), (0.03, 0.06), (0.24, 0.3), (0.05, 0.15), (0.35, 0.5), (0.95, 1.05)),
    "van": ((1.9, 2.3), (1.9, 2.05), (4.8, 5.4), (0.01, 0.03), (0.1, 0.16), 0.02, (0.3, 0.5), (1.0, 1.15)),
}
"""Car body shapes: for each of :data:`CAR_PARAMETERS` (dimensions h, w, length in metres, then the
cabin of :class:`~taskweight.synth.actors.Car`) a uniform range, drawn in this order, or a fixed value."""


def _sample_car(rng, road: g.Road, hc: float, occ: _Occupancy) -> Car | None:
    """A car (sedan, hatchback, SUV or van) in a lane, either way, or parked; None if ``occ`` has no room there."""
    shape = str(rng.choice(list(CAR_SHAPES), p=[0.45, 0.25, 0.2, 0.1]))
    cab = {
        k: v if isinstance(v, float) else _u(rng, *v) for k, v in zip(CAR_PARAMETERS, CAR_SHAPES[shape], strict=True)
    }
    h, w, length = cab.pop("h"), cab.pop("w"), cab.pop("length")
    parked = (road.park_left or road.park_right) and rng.random() < 0.35
    if parked:
        sides = [s for s, wdt in ((-1, road.park_left), (1, road.park_right)) if wdt]
        side = int(rng.choice(sides))
        a = (road.park_left / 2 if side < 0 else road.width - road.park_right / 2) + float(rng.normal(0, 0.1))
        z = _u(rng, 3.0, 60.0)
        same = (rng.random() < 0.8) == (side > 0)
    else:
        k = int(rng.integers(road.lanes))
        a = road.lane_center(k) + float(rng.normal(0, 0.2))
        same = k >= road.lanes_left
        zmin = 8.0 if abs(a - road.ego_a) < 2.0 else 3.5
        z = zmin + (68.0 - zmin) * float(rng.random()) ** 1.25
    d = road.direction(z) * (1 if same else -1)
    d = _rotate(d, float(rng.normal(0, 0.03)))
    if not parked and rng.random() < 0.07:
        d = _rotate(d, float(rng.choice([-1, 1])) * _u(rng, 0.3, 1.1))
    ha, hz = _extent(d, length, w, road, z)
    if not occ.free(a, z, ha + 0.3, hz + 0.6):
        return None
    occ.add(a, z, ha, hz)
    colour = _pick(rng, CAR_COLOURS, 0.05)
    return Car(
        loc=road.point(a, z, hc),
        kitti_type="Car",
        dims=(h, w, length),
        ry=_heading_ry(d),
        color=colour,
        shape=shape,
        clearance=_u(rng, 0.16, 0.26),
        wheel_r=_u(rng, 0.3, 0.36),
        window=_jitter(rng, (0.07, 0.09, 0.11), 0.3),
        **cab,
    )


def _sample_pedestrian(
    rng, road: g.Road, hc: float, y_walk: float, occ: _Occupancy, crosswalk: tuple[float, float] | None
) -> Pedestrian | None:
    """A pedestrian (8 % children) on a sidewalk (80 %: walking along it, standing or strolling) or
    crossing the road, on the zebra crossing if there is one (70 %); None if ``occ`` has no room there."""
    child = rng.random() < 0.08
    h = _u(rng, 1.1, 1.4) if child else _u(rng, 1.55, 1.92)
    dims = (h, _u(rng, 0.5, 0.7), _u(rng, 0.5, 0.9))
    mode = rng.random()
    if mode < 0.8:  # on a sidewalk
        side = int(rng.choice([-1, 1]))
        inner, walk = road.curb_a(side), road.walk_width(side)
        a = inner + side * _u(rng, 0.3, walk - 0.3)
        z = 4.0 + 42.0 * float(rng.random()) ** 1.1
        y = y_walk
        r = rng.random()
        rd = road.direction(z)
        if r < 0.6:
            d, stride = rd * float(rng.choice([-1, 1])), _u(rng, 0.2, 0.38)
        elif r < 0.85:
            ang = _u(rng, 0, 2 * np.pi)
            d, stride = np.array([np.cos(ang), np.sin(ang)]), 0.0
        else:
            ang = _u(rng, 0, 2 * np.pi)
            d, stride = np.array([np.cos(ang), np.sin(ang)]), _u(rng, 0.15, 0.35)
    else:  # crossing the road
        a = _u(rng, 0.5, road.width - 0.5)
        if crosswalk is not None and rng.random() < 0.7:
            z = _u(rng, crosswalk[0] + 0.4, crosswalk[1] - 0.4)
        else:
            z = _u(rng, 6.0, 35.0)
        y = hc
        rd = road.direction(z)
        d, stride = np.array([rd[1], -rd[0]]) * float(rng.choice([-1, 1])), _u(rng, 0.2, 0.38)
    if not occ.free(a, z, 0.35, 0.35):
        return None
    occ.add(a, z, 0.35, 0.35)
    return Pedestrian(
        loc=road.point(a, z, y),
        kitti_type="Pedestrian",
        dims=dims,
        ry=_heading_ry(d),
        heading=d,
        stride=stride,
        phase=_u(rng, 0, 2 * np.pi),
        skin=_pick(rng, SKIN, 0.05),
        hair=_pick(rng, HAIR, 0.1),
        shirt=_pick(rng, CLOTHES, 0.1),
        trousers=_pick(rng, TROUSERS, 0.1),
        coat=bool(rng.random() < 0.25),
        bag=bool(rng.random() < 0.2),
    )


def _sample_cyclist(rng, road: g.Road, hc: float, y_walk: float, occ: _Occupancy) -> Cyclist | None:
    """A cyclist at the right edge of the road (50 %), oncoming at the left edge (20 %), crossing
    (15 %) or on a sidewalk (15 %); None if ``occ`` has no room there."""
    dims = (_u(rng, 1.65, 1.85), _u(rng, 0.5, 0.7), _u(rng, 1.6, 1.85))
    mode = rng.random()
    y = hc
    if mode < 0.5:  # right edge of the road, same direction
        a = road.park_left + road.lanes * road.lane_width - _u(rng, 0.5, 0.9)
        z = _u(rng, 5.0, 50.0)
        d = road.direction(z)
    elif mode < 0.7:  # oncoming, left edge
        a = road.park_left + _u(rng, 0.5, 0.9)
        z = _u(rng, 5.0, 50.0)
        d = -road.direction(z)
    elif mode < 0.85:  # crossing
        a = _u(rng, 0.5, road.width - 0.5)
        z = _u(rng, 7.0, 35.0)
        rd = road.direction(z)
        d = np.array([rd[1], -rd[0]]) * float(rng.choice([-1, 1]))
    else:  # on a sidewalk
        side = int(rng.choice([-1, 1]))
        inner, walk = road.curb_a(side), road.walk_width(side)
        a = inner + side * walk / 2
        z = _u(rng, 5.0, 40.0)
        y = y_walk
        d = road.direction(z) * float(rng.choice([-1, 1]))
    d = _rotate(d, float(rng.normal(0, 0.05)))
    ha, hz = _extent(d, dims[2], dims[1], road, z)
    if not occ.free(a, z, ha + 0.2, hz + 0.4):
        return None
    occ.add(a, z, ha, hz)
    return Cyclist(
        loc=road.point(a, z, y),
        kitti_type="Cyclist",
        dims=dims,
        ry=_heading_ry(d),
        heading=d,
        crank=_u(rng, 0, 2 * np.pi),
        frame=_pick(rng, CAR_COLOURS, 0.1),
        shirt=_pick(rng, CLOTHES, 0.1),
        trousers=_pick(rng, TROUSERS, 0.1),
        skin=_pick(rng, SKIN, 0.05),
        helmet=_pick(rng, CLOTHES, 0.1),
    )


# ============================================================================ painting
def _split_id(split: str) -> int:
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}: expected one of {sorted(SPLIT_IDS)}")
    return SPLIT_IDS[split]


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if h < 16 or w < 16:
        raise ValueError(f"size {h}x{w} is too small: height and width must be >= 16 pixels")
    return h, w


def render_scene(
    index: int,
    split: str,
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    depth: bool = False,
    dontcare_height: float | None = None,
) -> Scene:
    """Render scene ``index`` of ``split`` for ``seed`` at ``size`` = (H, W). Pure and deterministic.

    ``dontcare_height``: objects whose visible box is lower than this (pixels) are DontCare; default
    :func:`min_box_height` (synth-kitti's; synth-cityscapes passes :func:`min_object_height`).  The
    image is the same whatever it is.

    ``depth``: also render the exact per-pixel depth Z (``Scene.depth``, metres, 0 where the ray
    meets no modelled surface: sky and the distant skyline) with a z-buffer over the scene's
    3D surfaces — ground planes, building and car faces, sprites (people, cyclists, poles,
    signs, trees) on the fronto-parallel plane at their distance (see :class:`Canvas`). The
    image and the labels are the same with or without it.
    """
    if int(index) < 0 or int(seed) < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    sid = _split_id(split)
    H, W = _check_size(size)
    rng = np.random.default_rng([int(seed), sid, int(index)])
    pix_rng = np.random.default_rng([int(seed), sid, int(index), 1])
    lay = _sample_layout(rng, (H, W))
    cam = lay.cam
    cv = Canvas(
        H,
        W,
        noise=pix_rng.standard_normal((H, W)).astype(np.float32),
        low=smooth_noise(pix_rng, H, W, cell=max(4.0, W / 24)),
        camera=(cam.f, cam.cx, cam.cy) if depth else None,
    )
    for actor in (*lay.background, *lay.foreground):
        if isinstance(actor, Solid) and isinstance(actor.texture, _FacadeTexture):
            actor.texture.cam, actor.texture.canvas = cam, cv
    _paint_sky(cv, lay)
    _paint_ground(cv, lay)
    _paint_shadows(cv, lay)
    painted = _paint_scenery_and_street(cv, lay)
    min_height = min_box_height((H, W)) if dontcare_height is None else float(dontcare_height)
    objects = _labels(lay, cv, painted, (H, W), min_height)
    image = _postprocess(cv, lay.post, pix_rng)
    info = {
        "weather": lay.weather,
        "roadside": list(lay.roadside),
        "lanes": lay.road.lanes,
        "curvature": lay.road.curvature,
        "focal": cam.f,
        "horizon": cam.cy,
        "camera_height": cam.height,
    }
    return Scene(
        image=image,
        semantic_ids=cv.sem.copy(),
        objects=objects,
        camera=cam,
        index=int(index),
        split=split,
        seed=int(seed),
        info=info,
        depth=cv.depth,
    )


def _paint_sky(cv: Canvas, lay: _Layout) -> None:
    """The sky (a gradient from the horizon colour up to the top colour, with clouds from the
    canvas's low-frequency noise), then the distant skyline in front of it."""
    cy, H, W = lay.cam.cy, cv.h, cv.w
    top, hor, clouds = lay.sky_top.astype(np.float32), lay.sky_horizon.astype(np.float32), lay.post["clouds"]

    def sky(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        t = np.clip((cy - rows - 0.5) / max(cy, 1.0), 0, 1)[:, None] ** 0.7
        c = hor[None] * (1 - t) + top[None] * t
        cl = np.clip(cv.low[rows, cols] - 0.2, 0, None)[:, None] * clouds
        return c * (1 - cl) + cl * 0.97

    cv.fill(np.array([[-1, -1], [W + 1, -1], [W + 1, H + 1], [-1, H + 1]], float), sem=g.SKY, texture=sky)
    for poly, sem, colour in lay.skyline:
        cv.fill(poly, colour, sem, noise=0.03, low=0.05)


def _project_ground(cam: g.Camera, poly3d: np.ndarray) -> np.ndarray:
    """Pixel polygon of a 3D polygon, clipped at the near plane."""
    return cam.project(g.clip_near(poly3d))


def _paint_ground(cv: Canvas, lay: _Layout) -> None:
    """The ground, in painter's order: terrain below the horizon, the road and its patches, the
    sidewalks and curbs, then the road markings (all in the z-buffer as their planes)."""
    cam, road, hc, W, H = lay.cam, lay.road, lay.cam.height, cv.w, cv.h
    ground_plane = (np.array([0.0, 1.0, 0.0]), hc)  # Y = hc: the ground under the camera
    terrain = np.array([[-1, cam.cy], [W + 1, cam.cy], [W + 1, H + 1], [-1, H + 1]], float)
    cv.fill(terrain, lay.terrain, g.TERRAIN, noise=0.12, low=0.12, surface=ground_plane)
    asphalt = _project_ground(cam, _strip(road, hc, 0.0, road.width, g.Z_NEAR, Z_FAR, n=60))
    cv.fill(asphalt, lay.asphalt, g.ROAD, noise=0.05, low=0.07, surface=ground_plane)
    for poly3d, factor in lay.patches:
        cv.fill(_project_ground(cam, poly3d), lay.asphalt * factor, g.ROAD, noise=0.05, low=0.05, surface=ground_plane)
    _paint_sidewalks(cv, lay)
    for poly3d in lay.marks:
        cv.fill(_project_ground(cam, poly3d), lay.mark_colour, g.ROAD, noise=0.06, low=0.1, surface=ground_plane)


def _paint_sidewalks(cv: Canvas, lay: _Layout) -> None:
    """Both sidewalks (tiled, at curb height) and the vertical faces of both curbs."""
    cam, road, hc = lay.cam, lay.road, lay.cam.height
    y_walk = hc - road.curb
    walk_plane = (np.array([0.0, 1.0, 0.0]), y_walk)
    tex = _sidewalk_texture(cam, cv, road, y_walk, lay.sidewalk, lay.tile)
    Wr = road.width
    for a0, a1 in ((-road.walk_left, 0.0), (Wr, Wr + road.walk_right)):
        walk = _project_ground(cam, _strip(road, y_walk, a0, a1, g.Z_NEAR, Z_FAR, n=60))
        cv.fill(walk, sem=g.SIDEWALK, texture=tex, surface=walk_plane)
    for a in (0.0, Wr):
        zs = np.geomspace(g.Z_NEAR, Z_FAR, 60)
        curb = np.vstack(
            [
                np.column_stack([road.x(a, zs), np.full(60, hc), zs]),
                np.column_stack([road.x(a, zs[::-1]), np.full(60, y_walk), zs[::-1]]),
            ]
        )
        cv.fill(_project_ground(cam, curb), lay.curb_colour * (0.85 if a == 0.0 else 0.95), g.SIDEWALK, noise=0.04)
        _vertical_band_depth(cv, cam, curb)


def _paint_shadows(cv: Canvas, lay: _Layout) -> None:
    """Cast shadows on the ground: the buildings' (when the sun casts shadows), then every actor's own."""
    if lay.light.cast_shadows:
        for actor in lay.background:
            if isinstance(actor, Solid) and actor.sem == g.BUILDING:
                _building_shadow(cv, lay.cam, actor, lay.light, lay.cam.height)
    for actor in [*lay.background, *lay.foreground, *lay.road_users]:
        actor.shadow(cv, lay.cam, lay.light)


def _paint_scenery_and_street(
    cv: Canvas, lay: _Layout
) -> dict[int, tuple[tuple[float, float, float, float] | None, int]]:
    """Tree lines and the things beyond the sidewalks (far to near), then the street's furniture
    and road users sorted by distance. Returns, per road user k painted (those in front of the
    camera), :meth:`Canvas.end_object`'s (full box or None, own pixel count)."""
    cam, light = lay.cam, lay.light
    for poly3d, colour in lay.treelines:
        cv.fill(_project_ground(cam, poly3d), colour, g.VEGETATION, noise=0.15, low=0.15)
        _vertical_band_depth(cv, cam, poly3d)
    for actor in sorted(lay.background, key=lambda a: -a.distance):
        _draw(actor, cv, cam, light)
    painted: dict[int, tuple[tuple[float, float, float, float] | None, int]] = {}
    street: list[tuple[float, int, Actor]] = [(a.distance, i, a) for i, a in enumerate(lay.foreground)]
    street += [(u.distance, 10_000 + k, u) for k, u in enumerate(lay.road_users)]
    for _dist, key, actor in sorted(street, key=lambda t: -t[0]):
        if key >= 10_000 and actor.loc[2] > 1.0:
            k = key - 10_000
            cv.begin_object(k)
            _draw(actor, cv, cam, light)
            painted[k] = cv.end_object()
        elif key < 10_000:
            _draw(actor, cv, cam, light)
    return painted


def _draw(actor: Actor, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
    """Draw ``actor``; a sprite (anything but the 3D cars and solids, which give their faces'
    planes) lies in the z-buffer on the fronto-parallel plane at its distance Z."""
    cv.billboard = None if isinstance(actor, (Car, Solid)) else float(actor.loc[2])
    try:
        actor.draw(cv, cam, light)
    finally:
        cv.billboard = None


def _vertical_band_depth(cv: Canvas, cam: g.Camera, band: np.ndarray) -> None:
    """z-buffer a band ``[bottom points ..., top points reversed ...]`` of vertical segments
    (curbs, tree lines along the curved road): each quad between neighbouring segments is planar."""
    if cv.depth is None:
        return
    n = len(band) // 2
    bottom, top = band[:n], band[n:][::-1]
    for i in range(n - 1):
        quad = np.array([bottom[i], bottom[i + 1], top[i + 1], top[i]])
        clipped = g.clip_near(quad)
        if len(clipped) >= 3:
            cv.write_depth(cam.project(clipped), quad)


def _sidewalk_texture(cam: g.Camera, cv: Canvas, road: g.Road, y: float, colour: np.ndarray, tile: float):
    colour = colour.astype(np.float32)

    def tex(rows, cols):
        d = cam.rays(rows, cols)
        z = y / np.maximum(d[:, 1], 1e-6)
        x = d[:, 0] * z
        a = x + road.ego_a - road.heading * z - 0.5 * road.curvature * z * z
        fa, fz = np.mod(a / tile, 1.0), np.mod(z / tile, 1.0)
        joint = (fa < 0.08) | (fz < 0.08)
        px = cam.f * tile / z  # tile size in pixels
        fade = np.clip((px - 3.0) / 5.0, 0, 1)
        k = np.floor(a / tile) * 12.9898 + np.floor(z / tile) * 78.233
        var = (np.mod(np.sin(k) * 43758.5453, 1.0) - 0.5) * 0.12 * fade
        gain = 1.0 + var - joint * 0.2 * fade + 0.04 * cv.noise[rows, cols] + 0.05 * cv.low[rows, cols]
        return colour[None, :] * gain[:, None]

    return tex


def _building_shadow(cv: Canvas, cam: g.Camera, b: Solid, light: Lighting, hc: float) -> None:
    """Shadow of a building block on the ground: hull of its footprint and its shifted roof."""
    c = b.corners
    foot = c[[0, 1, 4, 5]][:, [0, 2]]  # iy = 0 corners are on the ground
    height = hc - float(c[2, 1])
    roof = foot + light.ground_offset(height)
    hull = g.convex_hull(np.vstack([foot, roof]))
    poly = g.clip_near(np.column_stack([hull[:, 0], np.full(len(hull), hc), hull[:, 1]]))
    if len(poly) >= 3:
        cv.shade(cam.project(poly), light.shadow_factor)


def _labels(lay: _Layout, cv: Canvas, painted: dict, size: tuple[int, int], min_h: float) -> list[SceneObject]:
    H, W = size
    visible = np.bincount(cv.inst.ravel().astype(np.int64) + 1, minlength=len(lay.road_users) + 1)[1:]
    labelled, dontcare = [], []
    for k, actor in enumerate(lay.road_users):
        if k not in painted:
            continue
        full, own = painted[k]
        if full is None or own == 0 or visible[k] == 0:
            continue
        x1, y1, x2, y2 = full
        cx1, cy1, cx2, cy2 = max(0.0, x1), max(0.0, y1), min(float(W), x2), min(float(H), y2)
        if cx2 - cx1 < 1.0 or cy2 - cy1 < 1.0:
            continue
        box = (cx1, cy1, cx2, cy2)
        full_area = max((x2 - x1) * (y2 - y1), 1e-9)
        truncated = float(np.clip(1.0 - (cx2 - cx1) * (cy2 - cy1) / full_area, 0.0, 1.0))
        hidden = float(np.clip(1.0 - visible[k] / own, 0.0, 1.0))
        if cy2 - cy1 < min_h or hidden > MAX_HIDDEN or truncated > MAX_TRUNCATION:
            dontcare.append(
                SceneObject(
                    "DontCare",
                    box,
                    -1.0,
                    -1,
                    -10.0,
                    (-1.0, -1.0, -1.0),
                    (-1000.0, -1000.0, -1000.0),
                    -10.0,
                    hidden=hidden,
                    source=actor.kitti_type,
                    road_user=k,
                )
            )
            continue
        occluded = 0 if hidden < 0.05 else (1 if hidden < 0.5 else 2)
        x, y, z = (float(v) for v in actor.loc)
        alpha = g.wrap_angle(actor.ry - np.arctan2(x, z))
        labelled.append(
            (
                z,
                SceneObject(
                    actor.kitti_type,
                    box,
                    truncated,
                    occluded,
                    alpha,
                    (float(actor.dims[0]), float(actor.dims[1]), float(actor.dims[2])),
                    (x, y, z),
                    g.wrap_angle(actor.ry),
                    hidden=hidden,
                    source=actor.kitti_type,
                    road_user=k,
                ),
            )
        )
    labelled.sort(key=lambda t: t[0])
    return [o for _, o in labelled] + dontcare


def _postprocess(cv: Canvas, post: dict, rng: np.random.Generator) -> np.ndarray:
    img = cv.img * (post["gain"] * post["tint"]).astype(np.float32)[None, None, :]
    H, W = cv.h, cv.w
    if post["vignette"] > 0:
        yy = (np.arange(H) + 0.5) / H - 0.5
        xx = (np.arange(W) + 0.5) / W - 0.5
        r2 = (yy[:, None] ** 2 + xx[None, :] ** 2) / 0.5
        img *= (1.0 - post["vignette"] * r2).astype(np.float32)[:, :, None]
    img = np.clip(img, 0.0, 1.0) ** np.float32(post["gamma"])
    img = gaussian_blur(img, post["blur"])
    img = img + rng.normal(0.0, post["noise"], img.shape).astype(np.float32)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
