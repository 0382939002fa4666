"""Scenes with their instance map, and masks traced into Cityscapes-style polygons.

:func:`render_with_instances` renders :func:`~taskweight.synth.scene.render_scene` and also
returns which road user owns every visible pixel (the renderer's own instance map; -1 where
no road user is visible) and the painter's order (far to near) of the road users.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from taskweight.synth import geometry as g
from taskweight.synth import scene as scene_module
from taskweight.synth.raster import Canvas
from taskweight.synth.scene import Scene

_LOCK = threading.Lock()
INSTANCE_CLASSES = (g.PERSON, g.RIDER, g.CAR, g.BICYCLE)


class _RecordingCanvas(Canvas):
    last: _RecordingCanvas | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.order: list[int] = []
        _RecordingCanvas.last = self

    def begin_object(self, inst: int) -> None:
        self.order.append(int(inst))
        super().begin_object(inst)


@dataclass
class InstanceScene:
    scene: Scene
    instances: np.ndarray  # H x W int16: index of the road user owning the pixel, -1 for none
    order: list[int]  # road-user indices in painter's order (far to near)


def render_with_instances(
    index: int,
    split: str,
    seed: int,
    size: tuple[int, int],
    *,
    depth: bool = False,
    dontcare_height: float | None = None,
) -> InstanceScene:
    """``render_scene(index, split, seed, size, depth=depth, dontcare_height=dontcare_height)`` plus its
    instance map and painter's order (``depth``: the scene's exact z-buffer depth too, ``scene.depth``;
    image and labels are the same)."""
    with _LOCK:
        original = scene_module.Canvas
        scene_module.Canvas = _RecordingCanvas  # type: ignore[misc]  # swapped in for this render, restored below
        try:
            scene = scene_module.render_scene(index, split, seed, size, depth=depth, dontcare_height=dontcare_height)
            canvas = _RecordingCanvas.last
        finally:
            scene_module.Canvas = original  # type: ignore[misc]  # restores the class swapped in above
            _RecordingCanvas.last = None
    assert canvas is not None
    return InstanceScene(scene=scene, instances=canvas.inst.copy(), order=list(canvas.order))


def instance_masks(ids: np.ndarray, owner: np.ndarray, order: list[int]):
    """Yield (road user, class id, mask) of every visible instance, road users in painter's order ``order``
    (a cyclist gives two: its rider and its bicycle)."""
    for k in order:
        own = owner == k
        if not own.any():
            continue
        for cls in INSTANCE_CLASSES:
            m = own & (ids == cls)
            if m.any():
                yield k, cls, m


def dontcare_road_users(rendered: InstanceScene) -> frozenset[int]:
    """The visible road users that ``rendered.scene`` labels DontCare or not at all (synth-kitti's
    rule, :func:`~taskweight.synth.scene.render_scene`: a visible box lower than the DontCare height,
    or more than 80 % hidden or truncated; a box under one pixel gets no label)."""
    labelled = {o.road_user for o in rendered.scene.objects if o.type != "DontCare"}
    return frozenset(k for k in rendered.order if k not in labelled)


def cityscapes_instance_ids(
    ids: np.ndarray, owner: np.ndarray, order: list[int], crowd: frozenset[int] = frozenset()
) -> np.ndarray:
    """instanceIds (``labelId * 1000 + k``, k counted per class in painter's order; label id
    elsewhere) of a labelIds mask and an owner map.  The pixels of the road users in ``crowd`` keep
    their label id, as Cityscapes writes a crowd (``...group``) region."""
    inst = ids.astype(np.int32).copy()
    counts: dict[int, int] = {}
    for k, cls, m in instance_masks(ids, owner, order):
        if k in crowd:
            continue
        inst[m] = cls * 1000 + counts.get(cls, 0)
        counts[cls] = counts.get(cls, 0) + 1
    return inst


def mask_rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Cover a boolean mask exactly with rectangles (x0, y0, x1, y1), inclusive pixel indices:
    runs of each row, merged with identical runs of the rows below."""
    open_runs: dict[tuple[int, int], int] = {}
    rects = []
    h = mask.shape[0]
    for y in range(h + 1):
        runs = set()
        if y < h:
            row = np.concatenate(([False], mask[y], [False])).astype(np.int8)
            d = np.diff(row)
            starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
            runs = set(zip(starts.tolist(), ends.tolist(), strict=True))
        for run in list(open_runs):
            if run not in runs:
                rects.append((run[0], open_runs.pop(run), run[1], y - 1))
        for run in runs:
            open_runs.setdefault(run, y)
    return rects


def rectangle_polygon(rect: tuple[int, int, int, int]) -> list[list[int]]:
    x0, y0, x1, y1 = rect
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def staircase_polygon(mask: np.ndarray) -> list[list[int]]:
    """One rectilinear polygon covering, in every row, the span from the leftmost to the
    rightmost pixel of ``mask`` (exact for row-convex masks whose consecutive rows overlap;
    PIL ``ImageDraw.polygon`` fills boundary pixels, as Cityscapes' tools use it)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    xl = [int(np.flatnonzero(mask[r])[0]) for r in rows]
    xr = [int(np.flatnonzero(mask[r])[-1]) for r in rows]
    rows_list = [int(r) for r in rows]
    pts = [(xl[0], rows_list[0])]
    for i in range(len(rows_list) - 1):
        r, nxt = rows_list[i], rows_list[i + 1]
        if xl[i + 1] < xl[i]:
            pts += [(xl[i], nxt), (xl[i + 1], nxt)]
        elif xl[i + 1] > xl[i]:
            pts += [(xl[i + 1], r), (xl[i + 1], nxt)]
        else:
            pts.append((xl[i], nxt))
    pts.append((xr[-1], rows_list[-1]))
    for i in range(len(rows_list) - 1, 0, -1):
        r, prv = rows_list[i], rows_list[i - 1]
        if xr[i - 1] > xr[i]:
            pts += [(xr[i], prv), (xr[i - 1], prv)]
        elif xr[i - 1] < xr[i]:
            pts += [(xr[i - 1], r), (xr[i - 1], prv)]
        else:
            pts.append((xr[i], prv))
    out: list[tuple[int, int]] = []
    for p in pts:
        if not out or out[-1] != p:
            out.append(p)
    if len(out) > 1 and out[-1] == out[0]:
        out.pop()
    while len(out) < 3:
        out.append(out[-1])
    return [list(p) for p in out]
