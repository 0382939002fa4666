"""Write procedural scenes in the WoodScape layout through a fisheye lens (``synth-woodscape``).

::

    OUT/rgb_images/{frame:05d}_{CAM}.png                      RGB fisheye image
    OUT/box_2d_annotations/{frame:05d}_{CAM}.txt              class_name,class_id,x_min,y_min,x_max,y_max
    OUT/semantic_annotations/gtLabels/{frame:05d}_{CAM}.png   class indices 0..9
    OUT/depth/{frame:05d}_{CAM}.png                           with depth=True: KITTI uint16 depth (m x 256)
    OUT/splits/{train,val,test}.txt                           one name per line
    OUT/synth.json                                            parameters

Image ``j`` (numbered over train, then val, then test) is frame ``j // 4`` seen by camera
``FV, RV, MVL, MVR[j % 4]``; each image is its own scene (``render_scene`` of its split with
index ``i``), rendered by a square pinhole camera (side ``2 * W``) and re-projected by the
equidistant fisheye model of :mod:`taskweight.synth.fisheye` (horizontal image edge 40 deg
off-axis; the corners lie outside the rendered field of view and are black / void).
Default output size 96 x 128 (WoodScape's 966 x 1280 aspect).

Labels come from the re-projected masks: gtLabels road (Cityscapes 7) -> 1, sidewalk (8) ->
3 (curb), person -> 4, rider -> 5, car -> 6 (vehicles), bicycle -> 7, traffic sign -> 9,
everything else 0.  Boxes are the extent of each road user's re-projected pixels
(``x_max``/``y_max`` exclusive): a car is ``vehicles``, a pedestrian ``person`` and a
cyclist - rider and bicycle together - ``bicycle``; boxes lower than
``3 * H / 96`` pixels are not written.

With ``depth=True`` every image also gets its depth map ``depth/NAME.png`` in KITTI's format
(uint16, metres x 256, 0 = none; the layout the WoodScape loader reads user-brought depth from):
**z along the optical axis**, as for KITTI and Cityscapes.  The fisheye shares the pinhole
camera's centre and axis, so a fisheye pixel's z is the pinhole z-buffer depth of the surface
point its ray sees; it is taken from the same nearest pinhole pixel as the labels (the
Euclidean range would be ``z / cos(theta)``, ``theta = r / f``).  0 outside the field of view,
on the sky and beyond KITTI's 256 m.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from taskweight.data.boxes import bbox_of_values
from taskweight.data.depth import write_kitti_depth
from taskweight.synth import geometry as g
from taskweight.synth.fisheye import Fisheye, pinhole_lookup, remap_bilinear, remap_nearest
from taskweight.synth.instances import render_with_instances
from taskweight.synth.output import (
    KITTI_DEPTH_FORMAT,
    SPLITS,
    Request,
    prepare_output,
    remove_files,
    run_jobs,
    tally,
    write_marker,
    write_split_lists,
)

DEFAULT_SIZE = (96, 128)
CAMERAS = ("FV", "RV", "MVL", "MVR")
BOX_CLASSES = {"vehicles": 0, "person": 1, "bicycle": 2, "traffic_light": 3, "traffic_sign": 4}
WOODSCAPE_IDS = {g.ROAD: 1, g.SIDEWALK: 3, g.PERSON: 4, g.RIDER: 5, g.CAR: 6, g.BICYCLE: 7, g.TRAFFIC_SIGN: 9}
FORMAT_VERSION = 1
DEPTH_DIR = "depth"


def name_of(j: int) -> str:
    return f"{j // 4:05d}_{CAMERAS[j % 4]}"


def min_box_height(size: tuple[int, int]) -> float:
    return 3.0 * size[0] / DEFAULT_SIZE[0]


def render_fisheye(index: int, split: str, seed: int, size: tuple[int, int], *, depth: bool = False) -> dict[str, Any]:
    """One fisheye sample: image, gtLabels, boxes [(class_name, x1, y1, x2, y2)], owner map and, with
    ``depth``, ``depth``: float64 metres along the optical axis, 0 = none (module docstring)."""
    h, w = size
    rendered = render_with_instances(index, split, seed, (2 * w, 2 * w), depth=depth)
    scene = rendered.scene
    fish = Fisheye.for_size(size)
    u, v, valid = pinhole_lookup(fish, scene.camera)
    image = remap_bilinear(scene.image, u, v, valid)
    ids = remap_nearest(scene.semantic_ids, u, v, valid, 0)
    owner = remap_nearest(rendered.instances, u, v, valid, -1)
    lut = np.zeros(256, np.uint8)
    for cs_id, ws_id in WOODSCAPE_IDS.items():
        lut[cs_id] = ws_id
    labels = lut[ids]
    boxes = []
    for k, (x1, y1, x2, y2) in sorted(bbox_of_values(owner, keep=owner >= 0).items()):
        if y2 - y1 < min_box_height(size):
            continue
        own = ids[owner == k]
        if np.isin(own, (g.RIDER, g.BICYCLE)).any():
            cls = "bicycle"
        elif (own == g.CAR).any():
            cls = "vehicles"
        elif (own == g.PERSON).any():
            cls = "person"
        else:  # pragma: no cover - road users paint one of the classes above
            continue
        boxes.append((cls, int(x1), int(y1), int(x2), int(y2)))
    sample = {"image": image, "labels": labels, "boxes": boxes, "owner": owner, "cityscapes_ids": ids}
    if scene.depth is not None:
        sample["depth"] = remap_nearest(scene.depth, u, v, valid, 0.0)
    return sample


def _write_job(args: tuple[str, str, int, int, tuple[int, int], str, bool]) -> dict[str, int]:
    """Render and write one fisheye image and its labels (and depth); returns its number of boxes per class."""
    out, split, index, seed, size, name, depth = args
    root = Path(out)
    sample = render_fisheye(index, split, seed, size, depth=depth)
    if "depth" in sample:
        write_kitti_depth(root / DEPTH_DIR / f"{name}.png", sample["depth"])
    Image.fromarray(sample["image"]).save(root / "rgb_images" / f"{name}.png", compress_level=3)
    Image.fromarray(sample["labels"]).save(root / "semantic_annotations/gtLabels" / f"{name}.png", compress_level=3)
    lines = "".join(f"{c},{BOX_CLASSES[c]},{x1},{y1},{x2},{y2}\n" for c, x1, y1, x2, y2 in sample["boxes"])
    (root / "box_2d_annotations" / f"{name}.txt").write_text(lines, encoding="ascii")
    return dict(Counter(c for c, *_ in sample["boxes"]))


def write_dataset(req: Request) -> dict[str, Any]:
    """Write ``req``'s images in the WoodScape layout (module docstring); the summary's objects are
    the boxes per class."""
    out, size = req.out, req.size
    subdirs = ["rgb_images", "box_2d_annotations", "semantic_annotations/gtLabels", "splits"]
    own = {"rgb_images", "box_2d_annotations", "semantic_annotations", "splits", DEPTH_DIR}
    prepare_output(out, own, subdirs + ([DEPTH_DIR] if req.depth else []))
    remove_files(out, [*subdirs, DEPTH_DIR], "*.*")  # also an earlier generation's depth maps
    scenes = [(split, i) for split in SPLITS for i in range(req.counts[split])]
    jobs = [(str(out), split, i, req.seed, size, name_of(j), req.depth) for j, (split, i) in enumerate(scenes)]
    results = run_jobs(_write_job, jobs, req.workers, req.progress)
    objects, per_split = tally((job[1] for job in jobs), results, BOX_CLASSES)
    write_split_lists(out, {split: [job[5] for job in jobs if job[1] == split] for split in SPLITS})
    fish = Fisheye.for_size(size)
    fisheye = {
        "model": "equidistant r = f * theta",
        "f_px_per_rad": fish.f,
        "cx": fish.cx,
        "cy": fish.cy,
        "pinhole_render_size": [2 * size[1], 2 * size[1]],
    }
    params = req.params(
        FORMAT_VERSION,
        fisheye=fisheye,
        min_box_height_px=min_box_height(size),
        objects=objects,
        objects_per_split=per_split,
    )
    if req.depth:
        params["depth"] = {
            "dir": DEPTH_DIR,
            "format": KITTI_DEPTH_FORMAT,
            "meaning": "z along the optical axis (not the Euclidean range z / cos(theta))",
            "pattern": "dense",
            "rendering": "exact z-buffer depth of the pinhole render, nearest pinhole pixel per fisheye pixel; "
            "outside the field of view, sky, distant skyline and beyond 256 m: 0",
        }
    write_marker(out, params)
    return req.summary(objects, per_split)
