"""Write procedural scenes in the real Cityscapes layout (preset ``synth-cityscapes``).

::

    OUT/leftImg8bit/{split}/synthcity/synthcity_000000_{i:06d}_leftImg8bit.png
    OUT/gtFine/{split}/synthcity/synthcity_000000_{i:06d}_gtFine_labelIds.png      8-bit labelIds
    OUT/gtFine/{split}/synthcity/synthcity_000000_{i:06d}_gtFine_instanceIds.png   16-bit ids
    OUT/gtFine/{split}/synthcity/synthcity_000000_{i:06d}_gtFine_polygons.json
    OUT/disparity/{split}/synthcity/synthcity_000000_{i:06d}_disparity.png         with depth=True
    OUT/camera/{split}/synthcity/synthcity_000000_{i:06d}_camera.json              with depth=True
    OUT/synth.json                                                                 parameters

Scenes are rendered at Cityscapes' 1:2 aspect (default 128 x 256).  instanceIds hold
``labelId * 1000 + k`` on the pixels of person (24), rider (25), car (26) and bicycle (33)
instances (a rendered cyclist is a rider instance plus a bicycle instance; k counts per class
in painter's order) and the label id elsewhere.  The polygon file lists, in drawing order:
one polygon per instance (a rectilinear "staircase" covering each row's span of the instance's
visible pixels, far to near), then rectangles covering every stuff pixel exactly (road,
sidewalk, building, ...).  Drawn with the Cityscapes rules the polygons reproduce the PNGs
except where a nearer instance's row span hides pixels of a farther one seen through it
(e.g. between a pedestrian's legs).

Road users that synth-kitti would write as DontCare (a visible box lower than
:func:`~taskweight.synth.scene.min_object_height`, synth-kitti's threshold for the same object
size, or more than 80 % hidden or truncated: a
pedestrian seen only through the gaps of a nearer cyclist, a sliver at the image edge) are
written as Cityscapes crowd regions, as the real dataset writes a group of people it cannot tell
apart: their pixels keep the plain label id in instanceIds and their polygons are labelled
``persongroup``, ``ridergroup``, ``cargroup`` or ``bicyclegroup``.  Datasets read them as
``ignore_boxes`` (neither targets nor false positives), so all three synthetic datasets apply
one rule.  The summary counts them as ``{label}group``.  Format version 1 (before 2026-11-27)
made every visible fragment an instance: at 256 x 512, 38 % of its cars and 25 % of its
pedestrians were lower than 12 px, and 22 % of its pedestrians narrower than 4 px.

With ``depth=True`` every image also gets dense disparity and its calibration in Cityscapes' own
format (:mod:`taskweight.data.depth`): the scene's exact z-buffer depth Z (the renderer's, as
synth-kitti writes it) as a stereo rig with baseline :data:`BASELINE_M` (0.22 m, about the real
Cityscapes rig's) and the scene camera's focal length fx would see it, d = B · fx / Z pixels,
stored p = round(256 · d) + 1; p = 0 (invalid) where no surface is modelled (sky, the distant
skyline) and where d rounds to 0 (farther than 512 · B · fx metres).  The camera file holds
``extrinsic`` (baseline; the camera at x = y = 0, z = its height above the road, level: pitch,
roll, yaw 0) and ``intrinsic`` (fx = fy = the scene's focal length, u0, v0 its principal point).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from taskweight.data.cityscapes_labels import ID2NAME
from taskweight.data.depth import cityscapes_camera, write_cityscapes_depth
from taskweight.synth.instances import (
    INSTANCE_CLASSES,
    cityscapes_instance_ids,
    dontcare_road_users,
    instance_masks,
    mask_rectangles,
    rectangle_polygon,
    render_with_instances,
    staircase_polygon,
)
from taskweight.synth.output import SPLITS, Request, prepare_output, remove_files, run_jobs, tally, write_marker
from taskweight.synth.scene import min_object_height

DEFAULT_SIZE = (128, 256)
CITY = "synthcity"
FORMAT_VERSION = 2
BASELINE_M = 0.22
"""Stereo baseline of the synthetic rig (metres): about the real Cityscapes cameras' (0.21-0.22 m)."""
DEPTH_DIRS = ("disparity", "camera")


def stem(index: int) -> str:
    return f"{CITY}_000000_{index:06d}"


def polygons_of(
    ids: np.ndarray, owner: np.ndarray, order: list[int], crowd: frozenset[int] = frozenset()
) -> list[dict[str, Any]]:
    """Cityscapes polygon objects reproducing ``ids`` (see the module docstring); the instances of the
    road users in ``crowd`` are labelled ``{label}group``."""
    objects = [
        {"label": ID2NAME[cls] + ("group" if k in crowd else ""), "polygon": staircase_polygon(m)}
        for k, cls, m in instance_masks(ids, owner, order)
    ]
    stuff = ~np.isin(ids, INSTANCE_CLASSES) & (ids > 0)
    for value in np.unique(ids[stuff]):
        for rect in mask_rectangles(stuff & (ids == value)):
            objects.append({"label": ID2NAME[int(value)], "polygon": rectangle_polygon(rect)})
    return objects


def write_sample(
    out: Path, split: str, index: int, seed: int, size: tuple[int, int], depth: bool = False
) -> dict[str, int]:
    """Render and write one image with its labels (and, with ``depth``, its disparity and camera
    files); returns the number of instances per Cityscapes label."""
    rendered = render_with_instances(index, split, seed, size, depth=depth, dontcare_height=min_object_height(size))
    scene = rendered.scene
    ids = scene.semantic_ids
    crowd = dontcare_road_users(rendered)
    inst = cityscapes_instance_ids(ids, rendered.instances, rendered.order, crowd)
    name = stem(index)
    img_dir = out / "leftImg8bit" / split / CITY
    gt_dir = out / "gtFine" / split / CITY
    Image.fromarray(scene.image).save(img_dir / f"{name}_leftImg8bit.png", compress_level=3)
    Image.fromarray(ids).save(gt_dir / f"{name}_gtFine_labelIds.png", compress_level=3)
    Image.fromarray(inst.astype(np.uint16)).save(gt_dir / f"{name}_gtFine_instanceIds.png", compress_level=3)
    objects = polygons_of(ids, rendered.instances, rendered.order, crowd)
    doc = {"imgHeight": int(ids.shape[0]), "imgWidth": int(ids.shape[1]), "objects": objects}
    (gt_dir / f"{name}_gtFine_polygons.json").write_text(
        json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    if scene.depth is not None:
        cam = scene.camera
        camera = cityscapes_camera(BASELINE_M, cam.f, cam.f, cam.cx, cam.cy, z=cam.height)
        write_cityscapes_depth(
            out / "disparity" / split / CITY / f"{name}_disparity.png",
            out / "camera" / split / CITY / f"{name}_camera.json",
            scene.depth,
            camera,
        )
    counts: dict[str, int] = {}
    for value in np.unique(inst[inst >= 1000]):
        label = ID2NAME[int(value) // 1000]
        counts[label] = counts.get(label, 0) + 1
    for obj in objects:  # the crowd regions: one "...group" polygon each (stuff labels never end so)
        if obj["label"].endswith("group"):
            counts[obj["label"]] = counts.get(obj["label"], 0) + 1
    return counts


def _write_job(args: tuple[str, str, int, int, tuple[int, int], bool]) -> dict[str, int]:
    out, split, index, seed, size, depth = args
    return write_sample(Path(out), split, index, seed, size, depth)


def write_dataset(req: Request) -> dict[str, Any]:
    """Write ``req``'s scenes in the Cityscapes layout (module docstring); the summary's objects are
    the instances per Cityscapes label."""
    out = req.out
    tops = ("leftImg8bit", "gtFine", *(DEPTH_DIRS if req.depth else ()))
    prepare_output(out, {"leftImg8bit", "gtFine", *DEPTH_DIRS}, [f"{top}/{s}/{CITY}" for top in tops for s in SPLITS])
    # also an earlier generation's depth files
    remove_files(out, [f"{top}/{s}/{CITY}" for top in ("leftImg8bit", "gtFine", *DEPTH_DIRS) for s in SPLITS])
    jobs = [(str(out), split, i, req.seed, req.size, req.depth) for split in SPLITS for i in range(req.counts[split])]
    results = run_jobs(_write_job, jobs, req.workers, req.progress)
    instances, per_split = tally((job[1] for job in jobs), results)
    params = req.params(FORMAT_VERSION, city=CITY, instances=instances, instances_per_split=per_split)
    if req.depth:
        params["depth"] = {
            "dirs": list(DEPTH_DIRS),
            "format": "Cityscapes disparity: uint16 PNG, d = (p - 1) / 256 px, p = 0 invalid; "
            "depth = baseline * fx / d",
            "baseline_m": BASELINE_M,
            "pattern": "dense",
            "rendering": "exact z-buffer depth of the scene's surfaces, dense; sky, distant skyline: p = 0",
        }
    write_marker(out, params)
    return req.summary(instances, per_split)
