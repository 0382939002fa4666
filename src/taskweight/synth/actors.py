"""Things standing on the ground: cars, pedestrians, cyclists, poles, signs and trees.

Each actor paints itself on a :class:`~taskweight.synth.raster.Canvas` (far parts first)
and can cast a ground shadow.  Cars are convex 3D solids (body, tapered cabin, wheels) with
back-face culling; pedestrians and cyclists are 3D skeletons whose limbs are drawn as
screen-space thick segments, so their width follows depth like everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taskweight.synth import geometry as g
from taskweight.synth.raster import Canvas, ellipse, thick_segment

UP = np.array([0.0, -1.0, 0.0])


@dataclass(frozen=True)
class Lighting:
    sun: np.ndarray  # unit direction of the sunlight (pointing down: sun[1] > 0)
    ambient: float  # brightness of faces turned away from the sun
    cast_shadows: bool
    shadow_factor: float  # multiplier inside cast shadows

    def face(self, normal: np.ndarray) -> float:
        direct = max(0.0, -float(np.dot(normal, self.sun)))
        sky = 0.12 * max(0.0, -float(normal[1]))  # up-facing faces see the sky
        return self.ambient + (1.0 - self.ambient) * direct + sky

    def ground_offset(self, height: float) -> np.ndarray:
        """(dX, dZ) displacement of the shadow of a point ``height`` m above the ground."""
        s = self.sun
        return np.array([s[0], s[2]]) / max(s[1], 0.05) * height


def _shade_ground(cv: Canvas, cam: g.Camera, footprint: np.ndarray, y: float, factor: float) -> None:
    """Shade a ground polygon given as (N, 2) (X, Z) points at height Y=y."""
    poly = np.column_stack([footprint[:, 0], np.full(len(footprint), y), footprint[:, 1]])
    poly = g.clip_near(poly)
    if len(poly) >= 3:
        cv.shade(cam.project(poly), factor)


def _face_quad(poly: np.ndarray, s0: float, s1: float, t0: float, t1: float) -> np.ndarray:
    """Sub-quad of a (roughly vertical) 3D face: s across, t from top (0) to bottom (1)."""
    ys = poly[:, 1]
    i = min(range(4), key=lambda k: ys[k] + ys[(k + 1) % 4])  # the top edge (smallest Y)
    a, b, c, d = poly[i], poly[(i + 1) % 4], poly[(i + 2) % 4], poly[(i + 3) % 4]

    def p(s: float, t: float) -> np.ndarray:
        top = a + (b - a) * s
        bot = d + (c - d) * s
        return top + (bot - top) * t

    return np.array([p(s0, t0), p(s1, t0), p(s1, t1), p(s0, t1)])


# ---------------------------------------------------------------------------------------------
@dataclass
class Actor:
    """Base: anything depth-sorted in the painter's list."""

    loc: np.ndarray  # bottom centre (X, Y on the ground, Z), camera coordinates

    @property
    def distance(self) -> float:
        return float(np.hypot(self.loc[0], self.loc[2]))

    def shadow(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:  # pragma: no cover - default
        return None

    def draw(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class LabelledActor(Actor):
    kitti_type: str = "Car"
    dims: tuple[float, float, float] = (1.5, 1.6, 4.0)  # h, w, l (KITTI order)
    ry: float = -np.pi / 2

    @property
    def footprint_radius(self) -> float:
        return 0.5 * max(self.dims[1], self.dims[2])


# ---------------------------------------------------------------------------------------------
@dataclass
class Car(LabelledActor):
    color: np.ndarray = field(default_factory=lambda: np.array([0.6, 0.6, 0.6]))
    shape: str = "sedan"
    clearance: float = 0.2
    body_top: float = 0.85
    rear_off: float = 0.2  # cabin base starts this fraction of l from the rear
    front_off: float = 0.3
    rear_slope: float = 0.15  # cabin top inset from its base, metres
    front_slope: float = 0.45
    wheel_r: float = 0.32
    window: np.ndarray = field(default_factory=lambda: np.array([0.08, 0.1, 0.12]))

    def _world(self, local: np.ndarray) -> np.ndarray:
        return local @ g.rot_y(self.ry).T + self.loc

    def shadow(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        h, w, length = self.dims
        fp = np.array(
            [[sx * (length / 2 + 0.05), 0.0, sz * (w / 2 + 0.05)] for sx, sz in ((1, 1), (1, -1), (-1, -1), (-1, 1))]
        )
        base = self._world(fp)[:, [0, 2]]
        if light.cast_shadows:
            top = base + light.ground_offset(0.85 * h)
            _shade_ground(cv, cam, g.convex_hull(np.vstack([base, top])), self.loc[1], light.shadow_factor)
        _shade_ground(cv, cam, base, self.loc[1], 0.55)

    def draw(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        h, w, length = self.dims
        r = self.wheel_r
        col = self.color
        detail = cam.f * h / max(self.loc[2], 1e-3) >= 12.0  # level of detail: lamps, plates, rims
        # wheels (full solids first: the body hides most of them)
        wheel_x = length / 2 - 0.2 * length
        for xs in (1, -1):
            for zs in (1, -1):
                zc0, zc1 = sorted((zs * (w / 2 - 0.02), zs * (w / 2 - 0.24)))
                corners = self._world(g.box_corners(xs * wheel_x - r, xs * wheel_x + r, -2 * r, 0.0, zc0, zc1))
                for poly, _n in g.visible_faces(corners).values():
                    _fill3d(cv, cam, poly, (0.04, 0.04, 0.045), g.CAR)
        # body
        body = self._world(g.box_corners(-length / 2, length / 2, -self.body_top, -self.clearance, -w / 2, w / 2))
        faces = g.visible_faces(body)
        for name, (poly, n) in faces.items():
            _fill3d(cv, cam, poly, col * light.face(n), g.CAR, noise=0.015)
            if not detail:
                continue
            if name == "x-":  # rear: tail lights, plate, bumper
                for s0, s1 in ((0.03, 0.19), (0.81, 0.97)):
                    _fill3d(cv, cam, _face_quad(poly, s0, s1, 0.1, 0.35), (0.55, 0.04, 0.04), g.CAR)
                _fill3d(cv, cam, _face_quad(poly, 0.0, 1.0, 0.78, 1.0), col * 0.45 * light.face(n), g.CAR)
                _fill3d(cv, cam, _face_quad(poly, 0.38, 0.62, 0.42, 0.66), (0.85, 0.85, 0.8), g.CAR)
            elif name == "x+":  # front: head lights, grille
                for s0, s1 in ((0.04, 0.22), (0.78, 0.96)):
                    _fill3d(cv, cam, _face_quad(poly, s0, s1, 0.12, 0.38), (0.9, 0.9, 0.82), g.CAR)
                _fill3d(cv, cam, _face_quad(poly, 0.3, 0.7, 0.15, 0.45), (0.06, 0.06, 0.07), g.CAR)
                _fill3d(cv, cam, _face_quad(poly, 0.0, 1.0, 0.78, 1.0), col * 0.45 * light.face(n), g.CAR)
            elif name in ("z-", "z+"):  # side: wheel disks on the visible side
                zs = -1 if name == "z-" else 1
                for xs in (1, -1):
                    t = np.linspace(0, 2 * np.pi, 14, endpoint=False)
                    for rad, colour in ((r, (0.03, 0.03, 0.035)), (0.55 * r, (0.45, 0.45, 0.47))):
                        disk = np.column_stack(
                            [xs * wheel_x + rad * np.cos(t), -r + rad * np.sin(t), np.full_like(t, zs * (w / 2 + 0.01))]
                        )
                        _fill3d(cv, cam, self._world(disk), colour, g.CAR)
                # dark side skirt line
                _fill3d(cv, cam, _face_quad(poly, 0.0, 1.0, 0.85, 1.0), col * 0.5 * light.face(n), g.CAR)
        # cabin: a tapered solid on top of the body
        cx0, cx1 = -length / 2 + self.rear_off * length, length / 2 - self.front_off * length
        zb, zt = w / 2 - 0.05, w / 2 - 0.18
        pts = []
        for xb, xt in ((cx0, cx0 + self.rear_slope), (cx1, cx1 - self.front_slope)):
            for y, (xx, zz) in ((-h, (xt, zt)), (-self.body_top, (xb, zb))):
                for zsgn in (-1, 1):
                    pts.append([xx, y, zsgn * zz])
        cabin = self._world(np.array(pts))
        for name, (poly, n) in g.visible_faces(cabin).items():
            _fill3d(cv, cam, poly, col * light.face(n), g.CAR, noise=0.015)
            glass = self.window * (0.8 + 0.5 * light.face(n))
            if name in ("x-", "x+"):
                _fill3d(cv, cam, _face_quad(poly, 0.08, 0.92, 0.1, 0.88), glass, g.CAR)
            elif name in ("z-", "z+"):
                _fill3d(cv, cam, _face_quad(poly, 0.06, 0.47, 0.12, 0.9), glass, g.CAR)
                _fill3d(cv, cam, _face_quad(poly, 0.53, 0.94, 0.12, 0.9), glass, g.CAR)


# ---------------------------------------------------------------------------------------------
def _ground_frame(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3D forward and right vectors from a ground direction (dx, dz)."""
    fwd = np.array([d[0], 0.0, d[1]])
    right = np.array([d[1], 0.0, -d[0]])
    return fwd, right


def _fill3d(cv: Canvas, cam: g.Camera, poly3d: np.ndarray, *args: Any, **kwargs: Any) -> None:
    """Fill the projection of the planar 3D polygon ``poly3d``, z-buffered on its plane."""
    cv.fill(cam.project(poly3d), *args, surface=poly3d, **kwargs)


def _px(cam: g.Camera, metres: float, z: float, minimum: float = 1.0) -> float:
    return max(minimum, cam.f * metres / z)


@dataclass
class Pedestrian(LabelledActor):
    heading: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))  # walking direction (dx, dz)
    stride: float = 0.3  # foot amplitude (m); 0 = standing
    phase: float = 0.0
    skin: np.ndarray = field(default_factory=lambda: np.array([0.8, 0.6, 0.5]))
    hair: np.ndarray = field(default_factory=lambda: np.array([0.1, 0.07, 0.05]))
    shirt: np.ndarray = field(default_factory=lambda: np.array([0.2, 0.3, 0.6]))
    trousers: np.ndarray = field(default_factory=lambda: np.array([0.15, 0.15, 0.2]))
    coat: bool = False
    bag: bool = False

    def shadow(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        h = self.dims[0]
        base = np.array([self.loc[0], self.loc[2]])
        t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
        disk = base + 0.3 * np.column_stack([np.cos(t), np.sin(t)])
        if light.cast_shadows:
            tip = disk * 0.6 + base * 0.4 + light.ground_offset(0.9 * h)
            _shade_ground(cv, cam, g.convex_hull(np.vstack([disk, tip])), self.loc[1], light.shadow_factor)
        _shade_ground(cv, cam, disk, self.loc[1], 0.7)

    def draw(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        h = self.dims[0]
        P = np.asarray(self.loc, dtype=np.float64)
        fwd, right = _ground_frame(self.heading)
        z = P[2]
        sw = self.stride * np.sin(self.phase)
        shade = 0.7 + 0.3 * light.face(np.array([0.0, 0.0, -1.0]))  # body surface facing the camera

        def pr(p: np.ndarray) -> np.ndarray:
            return cam.project(p)

        sides = []
        for side in (1, -1):
            hip = P + UP * 0.52 * h + right * side * 0.09
            foot = P + right * side * 0.1 + fwd * side * sw
            knee = (hip + foot) / 2 + fwd * 0.04 + UP * 0.01
            shoulder = P + UP * 0.81 * h + right * side * 0.19
            hand = shoulder + UP * -0.34 * h - fwd * side * sw * 0.7 + right * side * 0.03
            elbow = (shoulder + hand) / 2 - fwd * 0.03
            sides.append((float(np.linalg.norm(hip)), side, hip, knee, foot, shoulder, elbow, hand))
        sides.sort(key=lambda s: -s[0])  # far side first
        far, near = sides
        leg_w, arm_w = _px(cam, 0.14, z), _px(cam, 0.09, z)
        trousers, shirt, skin = self.trousers * shade, self.shirt * shade, self.skin * shade

        def limb(a, b, wa, wb, colour):
            cv.fill(thick_segment(pr(a), pr(b), wa, wb), colour, g.PERSON)

        def leg(s):
            _, _, hip, knee, foot, *_ = s
            limb(hip, knee, leg_w, leg_w * 0.85, trousers)
            limb(knee, foot, leg_w * 0.85, leg_w * 0.7, trousers)
            toe = foot + fwd * 0.1
            limb(foot + UP * 0.03, toe + UP * 0.03, _px(cam, 0.08, z), _px(cam, 0.08, z), (0.05, 0.05, 0.05))

        def arm(s, colour):
            *_, shoulder, elbow, hand = s
            limb(shoulder, elbow, arm_w, arm_w, colour)
            limb(elbow, hand, arm_w, arm_w * 0.8, colour * 0.95)
            hp = pr(hand)
            cv.fill(ellipse(hp, arm_w * 0.55, arm_w * 0.6, n=8), skin, g.PERSON)

        arm(far, shirt * 0.85)
        leg(far)
        leg(near)
        # torso: width from the projected shoulders, at least the body depth
        neck = P + UP * 0.84 * h
        sh_w = max(abs(pr(far[5])[0] - pr(near[5])[0]), cam.f * 0.24 / z, 1.0)
        bottom = P + UP * (0.3 * h if self.coat else 0.48 * h)
        cv.fill(thick_segment(pr(bottom), pr(neck), sh_w * (1.05 if self.coat else 0.85), sh_w), shirt, g.PERSON)
        if self.bag:
            b = P + UP * 0.55 * h + right * 0.22
            cv.fill(thick_segment(pr(b), pr(b + UP * 0.25), _px(cam, 0.12, z)), (0.12, 0.1, 0.08), g.PERSON)
        arm(near, shirt)
        # head and hair
        head = pr(P + UP * 0.93 * h)
        rx, ry = _px(cam, 0.085, z, 0.7), _px(cam, 0.115, z, 0.8)
        cv.fill(thick_segment(pr(neck), head, _px(cam, 0.08, z)), skin, g.PERSON)
        away = float(np.dot(fwd, P) / max(np.linalg.norm(P), 1e-6)) > 0.3  # seen from behind
        cv.fill(ellipse(head, rx, ry), self.hair if away else skin, g.PERSON)
        if not away:
            cv.fill(ellipse(head, rx * 1.02, ry, start=np.pi, stop=2 * np.pi), self.hair, g.PERSON)


@dataclass
class Cyclist(LabelledActor):
    heading: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    crank: float = 0.0
    frame: np.ndarray = field(default_factory=lambda: np.array([0.6, 0.1, 0.1]))
    shirt: np.ndarray = field(default_factory=lambda: np.array([0.2, 0.5, 0.2]))
    trousers: np.ndarray = field(default_factory=lambda: np.array([0.1, 0.1, 0.12]))
    skin: np.ndarray = field(default_factory=lambda: np.array([0.8, 0.6, 0.5]))
    helmet: np.ndarray = field(default_factory=lambda: np.array([0.9, 0.9, 0.9]))

    def shadow(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        fwd = np.array(self.heading)
        right = np.array([fwd[1], -fwd[0]])
        base = np.array([self.loc[0], self.loc[2]])
        fp = np.array(
            [
                base + fwd * 0.9 + right * 0.2,
                base + fwd * 0.9 - right * 0.2,
                base - fwd * 0.9 - right * 0.2,
                base - fwd * 0.9 + right * 0.2,
            ]
        )
        if light.cast_shadows:
            top = fp * 0.5 + base * 0.5 + light.ground_offset(1.4)
            _shade_ground(cv, cam, g.convex_hull(np.vstack([fp, top])), self.loc[1], light.shadow_factor)
        _shade_ground(cv, cam, fp, self.loc[1], 0.75)

    def draw(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        P = np.asarray(self.loc, dtype=np.float64)
        fwd, right = _ground_frame(self.heading)
        z = P[2]
        r = 0.34

        def pr(p: np.ndarray) -> np.ndarray:
            return cam.project(p)

        def seg(a, b, w, colour, sem, w1=None):
            cv.fill(thick_segment(pr(a), pr(b), w, w1), colour, sem)

        rear, front = P - fwd * 0.52 + UP * r, P + fwd * 0.53 + UP * r
        bb = P - fwd * 0.05 + UP * 0.3
        seat = P - fwd * 0.25 + UP * 0.95
        head_tube = P + fwd * 0.38 + UP * 0.95
        bar = head_tube + UP * 0.08 - fwd * 0.04
        grips = [bar + right * s * 0.25 for s in (1, -1)]
        tube = _px(cam, 0.04, z, 0.9)
        hip = seat + UP * 0.06
        shoulder_c = hip + fwd * 0.32 + UP * 0.5
        pedals, knees = [], []
        for s in (1, -1):
            c = s * np.cos(self.crank)
            pedal = bb + (fwd * c + UP * s * np.sin(self.crank)) * 0.17 + right * s * 0.1
            knee = (hip + right * s * 0.1 + pedal) / 2 + fwd * 0.2 + UP * 0.12
            pedals.append(pedal)
            knees.append(knee)
        near_side = 0 if np.linalg.norm(P + right) < np.linalg.norm(P - right) else 1
        far_side = 1 - near_side
        leg_w = _px(cam, 0.13, z)
        arm_w = _px(cam, 0.085, z)
        sides = (1, -1)

        def leg(i):
            h_i = hip + right * sides[i] * 0.1
            seg(h_i, knees[i], leg_w, self.trousers, g.RIDER, leg_w * 0.85)
            seg(knees[i], pedals[i], leg_w * 0.85, self.trousers, g.RIDER, leg_w * 0.7)

        sh = [shoulder_c + right * s * 0.19 for s in sides]

        def arm(i):
            seg(sh[i], grips[i], arm_w, self.shirt * 0.95, g.RIDER, arm_w * 0.8)

        arm(far_side)
        leg(far_side)
        # bicycle: wheels as rings of thick segments, then the frame
        t = np.linspace(0, 2 * np.pi, 15 if cam.f * r / z > 4 else 8)
        ring_w = _px(cam, 0.05, z, 1.0)
        for hub in (rear, front):
            ring = np.array([hub + (fwd * np.cos(a) + UP * np.sin(a)) * (r - 0.025) for a in t])
            pts = pr(ring)
            for a, b in zip(pts[:-1], pts[1:], strict=True):
                cv.fill(thick_segment(a, b, ring_w), (0.05, 0.05, 0.05), g.BICYCLE)
        for a, b in (
            (rear, bb),
            (bb, seat),
            (seat, rear),
            (bb, head_tube),
            (seat, head_tube),
            (head_tube, front),
            (head_tube, bar),
        ):
            seg(a, b, tube, self.frame, g.BICYCLE)
        seg(grips[0], grips[1], tube, (0.1, 0.1, 0.1), g.BICYCLE)
        seg(seat - fwd * 0.08, seat + fwd * 0.08, _px(cam, 0.07, z), (0.08, 0.08, 0.08), g.BICYCLE)
        leg(near_side)
        sh_w = max(abs(pr(sh[0])[0] - pr(sh[1])[0]), cam.f * 0.22 / z, 1.0)
        seg(hip, shoulder_c, sh_w * 0.85, self.shirt, g.RIDER, sh_w)
        arm(near_side)
        head = shoulder_c + fwd * 0.12 + UP * 0.24
        hp = pr(head)
        rx, ry = _px(cam, 0.09, z, 0.7), _px(cam, 0.115, z, 0.8)
        cv.fill(ellipse(hp, rx, ry), self.skin, g.RIDER)
        cv.fill(
            ellipse(hp - np.array([0, 0.25 * ry]), rx * 1.15, ry * 0.85, start=np.pi, stop=2 * np.pi),
            self.helmet,
            g.RIDER,
        )


# ---------------------------------------------------------------------------------------------
@dataclass
class Pole(Actor):
    height: float = 7.0
    arm: float = 0.0  # lateral length of a lamp arm (signed, towards the road)
    colour: np.ndarray = field(default_factory=lambda: np.array([0.35, 0.36, 0.38]))

    def shadow(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        if light.cast_shadows:
            b = np.array([self.loc[0], self.loc[2]])
            tip = b + light.ground_offset(self.height)
            d = tip - b
            n = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-6) * 0.08
            _shade_ground(cv, cam, np.array([b + n, tip + n, tip - n, b - n]), self.loc[1], light.shadow_factor)

    def draw(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        P = np.asarray(self.loc, dtype=np.float64)
        z = P[2]
        top = P + UP * self.height
        cv.fill(
            thick_segment(cam.project(P), cam.project(top), _px(cam, 0.16, z), _px(cam, 0.1, z)), self.colour, g.POLE
        )
        if self.arm:
            end = top + np.array([self.arm, 0.0, 0.0])
            cv.fill(thick_segment(cam.project(top), cam.project(end), _px(cam, 0.08, z)), self.colour, g.POLE)
            lamp = end + UP * -0.1
            cv.fill(
                thick_segment(
                    cam.project(lamp - np.array([0.35 * np.sign(self.arm), 0, 0])), cam.project(lamp), _px(cam, 0.15, z)
                ),
                self.colour * 0.7,
                g.POLE,
            )


@dataclass
class Sign(Actor):
    height: float = 2.4
    kind: str = "circle"
    colour: np.ndarray = field(default_factory=lambda: np.array([0.7, 0.1, 0.1]))

    def draw(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        P = np.asarray(self.loc, dtype=np.float64)
        z = P[2]
        top = P + UP * self.height
        cv.fill(thick_segment(cam.project(P), cam.project(top), _px(cam, 0.07, z)), (0.5, 0.5, 0.52), g.POLE)
        c = cam.project(top + UP * 0.3)
        rad = _px(cam, 0.33, z, 0.8)
        if self.kind == "circle":
            cv.fill(ellipse(c, rad, rad), self.colour, g.TRAFFIC_SIGN)
            cv.fill(ellipse(c, rad * 0.7, rad * 0.7), (0.9, 0.9, 0.9), g.TRAFFIC_SIGN)
        elif self.kind == "triangle":
            tri = c + rad * np.array([[0.0, -1.1], [1.0, 0.7], [-1.0, 0.7]])
            cv.fill(tri, self.colour, g.TRAFFIC_SIGN)
            cv.fill(c + 0.6 * (tri - c), (0.92, 0.92, 0.92), g.TRAFFIC_SIGN)
        else:
            sq = c + rad * np.array([[-0.9, -0.9], [0.9, -0.9], [0.9, 0.9], [-0.9, 0.9]])
            cv.fill(sq, self.colour, g.TRAFFIC_SIGN)


@dataclass
class Tree(Actor):
    trunk: float = 2.5
    crown: float = 2.0
    colour: np.ndarray = field(default_factory=lambda: np.array([0.2, 0.35, 0.15]))
    jitter: np.ndarray = field(default_factory=lambda: np.ones(16))

    def shadow(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        if not light.cast_shadows:
            return
        c = np.array([self.loc[0], self.loc[2]]) + light.ground_offset(self.trunk + self.crown)
        t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        blob = c + self.crown * np.column_stack([np.cos(t) * 1.1, np.sin(t) * 1.1])
        _shade_ground(cv, cam, blob, self.loc[1], 0.5 + 0.5 * light.shadow_factor)

    def draw(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        P = np.asarray(self.loc, dtype=np.float64)
        z = P[2]
        top = P + UP * (self.trunk + self.crown * 0.5)
        cv.fill(
            thick_segment(cam.project(P), cam.project(top), _px(cam, 0.35, z), _px(cam, 0.22, z)),
            (0.28, 0.2, 0.13),
            g.VEGETATION,
            noise=0.05,
        )
        c = cam.project(P + UP * (self.trunk + self.crown))
        rad = cam.f * self.crown / z
        t = np.linspace(0, 2 * np.pi, len(self.jitter), endpoint=False)
        blob = c + rad * np.column_stack([np.cos(t) * self.jitter, np.sin(t) * self.jitter * 0.95])
        cv.fill(blob, self.colour, g.VEGETATION, noise=0.18, low=0.12)
        cv.fill(c + (blob - c) * 0.55 + np.array([rad * 0.2, rad * 0.25]), self.colour * 0.7, g.VEGETATION, noise=0.18)


@dataclass
class Solid(Actor):
    """A textured static cuboid (building, hedge, wall) given by its 8 world corners."""

    corners: np.ndarray = field(default_factory=lambda: np.zeros((8, 3)))
    sem: int = g.BUILDING
    colour: np.ndarray = field(default_factory=lambda: np.array([0.6, 0.55, 0.5]))
    texture: Callable[..., Any] | None = None  # callable(face_poly, normal, colour) -> Texture | None
    noise: float = 0.03

    @property
    def distance(self) -> float:
        c = self.corners.mean(axis=0)
        return float(np.hypot(c[0], c[2]))

    def draw(self, cv: Canvas, cam: g.Camera, light: Lighting) -> None:
        for poly, n in g.visible_faces(self.corners).values():
            clipped = g.clip_near(poly)
            if len(clipped) < 3:
                continue
            colour = self.colour * light.face(n)
            tex = self.texture(poly, n, colour) if self.texture is not None else None
            if tex is not None:
                _fill3d(cv, cam, clipped, sem=self.sem, texture=tex)
            else:
                _fill3d(cv, cam, clipped, colour, self.sem, noise=self.noise, low=0.05)
