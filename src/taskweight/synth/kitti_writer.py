"""Write procedural scenes in the real KITTI layout.

::

    OUT/training/image_2/NNNNNN.png    RGB image
    OUT/training/label_2/NNNNNN.txt    15-column KITTI object labels (Car, Pedestrian, Cyclist, DontCare)
    OUT/training/semantic/NNNNNN.png   8-bit Cityscapes labelIds (as the KITTI semantics benchmark)
    OUT/training/depth/NNNNNN.png      with depth=True: exact depth, KITTI's uint16 format (m × 256, 0 = none),
                                       dense or on LiDAR-like rows (depth_pattern)
    OUT/splits/{train,val,test}.txt    one 6-digit name per line
    OUT/synth.json                     generator parameters (written last: marks a complete set)

Names are global running numbers: train first, then val, then test.  Scene ``i`` of a split
is ``render_scene(i, split, seed, size)``, so it does not depend on the other counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from taskweight.data.depth import write_kitti_depth
from taskweight.synth import geometry as g
from taskweight.synth.output import (
    KITTI_DEPTH_FORMAT,
    SPLITS,
    Request,
    prepare_output,
    run_jobs,
    tally,
    write_marker,
    write_split_lists,
)
from taskweight.synth.scene import KITTI_TYPES, SPLIT_IDS, Scene, focal_length, min_box_height, render_scene

FORMAT_VERSION = 1


def write_scene(scene: Scene, root: Path, name: str, *, detection: bool = True, segmentation: bool = True) -> None:
    """Write one scene's image and (optionally) its label file and semantic PNG, and its depth
    PNG when the scene was rendered with depth."""
    training = root / "training"
    Image.fromarray(scene.image).save(training / "image_2" / f"{name}.png", compress_level=3)
    if detection:
        text = "".join(o.kitti_line() + "\n" for o in scene.objects)
        (training / "label_2" / f"{name}.txt").write_text(text, encoding="ascii")
    if segmentation:
        Image.fromarray(scene.semantic_ids).save(training / "semantic" / f"{name}.png", compress_level=3)
    if scene.depth is not None:
        write_kitti_depth(training / "depth" / f"{name}.png", scene.depth)


DEPTH_PATTERNS = ("dense", "lidar")
LIDAR_BEAMS = 64
LIDAR_ELEVATION_DEG = (2.0, -24.8)
"""Vertical field of view of KITTI's Velodyne HDL-64E (top, bottom beam), degrees."""
LIDAR_RANGE_M = 120.0


def lidar_rows(depth: np.ndarray, camera: g.Camera) -> np.ndarray:
    """``depth`` kept on the rows a 64-beam scanner (KITTI's HDL-64E: elevations +2° to −24.8°,
    evenly spaced; range 120 m) at the camera would hit, 0 elsewhere: the sparse rows of KITTI's
    projected LiDAR ground truth. Beam k at elevation θ_k lands on row v = c_y − f·tan θ_k."""
    top, bottom = np.radians(LIDAR_ELEVATION_DEG)
    rows = np.floor(camera.cy - camera.f * np.tan(np.linspace(top, bottom, LIDAR_BEAMS))).astype(np.int64)
    rows = np.unique(rows[(rows >= 0) & (rows < depth.shape[0])])
    sparse = np.zeros_like(depth)
    sparse[rows] = np.where(depth[rows] <= LIDAR_RANGE_M, depth[rows], 0.0)
    return sparse


def _job(args: tuple) -> dict[str, int]:
    root, split, index, seed, size, name, det, seg, depth, pattern = args
    scene = render_scene(index, split, seed, size, depth=depth)
    if scene.depth is not None and pattern == "lidar":
        scene.depth = lidar_rows(scene.depth, scene.camera)
    write_scene(scene, Path(root), name, detection=det, segmentation=seg)
    counts = dict.fromkeys(KITTI_TYPES, 0)
    if det:
        for o in scene.objects:
            counts[o.type] += 1
    return counts


def label_kinds(n: int, fraction: float, seed: int, split: str) -> list[tuple[bool, bool]]:
    """(has detection labels, has segmentation labels) of each image of a split.

    ``round(fraction * n)`` images, chosen by a seeded permutation, carry a single label
    kind: the first half of them detection only, the rest segmentation only.
    """
    k = int(np.floor(fraction * n + 0.5))
    kinds = [(True, True)] * n
    if k:
        perm = np.random.default_rng([int(seed), SPLIT_IDS[split], 99991]).permutation(n)
        n_det = (k + 1) // 2
        for j, i in enumerate(perm[:k]):
            kinds[int(i)] = (True, False) if j < n_det else (False, True)
    return kinds


def write_dataset(req: Request) -> dict[str, Any]:
    """Write ``req``'s scenes in the KITTI layout (module docstring); the summary adds the numbers
    of detection-only and segmentation-only images (``req.single_label_fraction``)."""
    out = req.out
    subdirs = ["training/image_2", "training/label_2", "training/semantic", "splits"]
    prepare_output(out, {"training", "splits"}, subdirs + (["training/depth"] if req.depth else []))
    jobs, names_by_split, kinds_by_name = [], {}, {}
    number = 0
    for split in SPLITS:
        names = []
        for i, (det, seg) in enumerate(label_kinds(req.counts[split], req.single_label_fraction, req.seed, split)):
            name = f"{number:06d}"
            number += 1
            names.append(name)
            kinds_by_name[name] = (det, seg)
            jobs.append((str(out), split, i, req.seed, req.size, name, det, seg, req.depth, req.depth_pattern))
        names_by_split[split] = names
    _remove_stale(out, kinds_by_name, req.depth)
    results = run_jobs(_job, jobs, req.workers, req.progress)
    objects, per_split = tally((job[1] for job in jobs), results, KITTI_TYPES)
    write_split_lists(out, names_by_split)
    det_only = sorted(n for n, k in kinds_by_name.items() if k == (True, False))
    seg_only = sorted(n for n, k in kinds_by_name.items() if k == (False, True))
    params = req.params(
        FORMAT_VERSION,
        single_label_fraction=req.single_label_fraction,
        **_label_conventions(req.size),
        detection_only=det_only,
        segmentation_only=seg_only,
        objects=objects,
        objects_per_split=per_split,
    )
    if req.depth:
        params["depth"] = {
            "dir": "training/depth",
            "format": KITTI_DEPTH_FORMAT,
            "rendering": "exact z-buffer of the scene's surfaces; sky and distant skyline: 0",
            "pattern": req.depth_pattern
            if req.depth_pattern == "dense"
            else f"lidar: {LIDAR_BEAMS} beams at {list(LIDAR_ELEVATION_DEG)} deg, range {LIDAR_RANGE_M} m",
        }
    write_marker(out, params)
    return req.summary(objects, per_split, detection_only=len(det_only), segmentation_only=len(seg_only))


def _label_conventions(size: tuple[int, int]) -> dict[str, Any]:
    """``synth.json``'s record of the camera, the DontCare and occlusion rules and the label ids."""
    return {
        "camera": {"focal_length_px": focal_length(size), "horizon_fraction": [0.40, 0.49], "height_m": [1.58, 1.72]},
        "min_box_height_px": min_box_height(size),
        "dontcare_rule": "visible box lower than min_box_height_px, or > 80 % hidden, or > 80 % truncated",
        "occluded_levels": "0: < 5 % hidden, 1: < 50 %, 2: otherwise",
        "semantic_ids": {
            "road": g.ROAD,
            "sidewalk": g.SIDEWALK,
            "building": g.BUILDING,
            "pole": g.POLE,
            "traffic sign": g.TRAFFIC_SIGN,
            "vegetation": g.VEGETATION,
            "terrain": g.TERRAIN,
            "sky": g.SKY,
            "person": g.PERSON,
            "rider": g.RIDER,
            "car": g.CAR,
            "bicycle": g.BICYCLE,
        },
    }


def _remove_stale(out: Path, kinds: dict[str, tuple[bool, bool]], depth: bool = False) -> None:
    """Delete files of an earlier generation that the new one would not (re)write."""
    training = out / "training"
    for p in (training / "depth").glob("*.png"):
        if not depth or p.stem not in kinds:
            p.unlink()
    for sub, suffix, idx in (("image_2", ".png", None), ("label_2", ".txt", 0), ("semantic", ".png", 1)):
        for p in (training / sub).glob(f"*{suffix}"):
            k = kinds.get(p.stem)
            if k is None or (idx is not None and not k[idx]):
                p.unlink()
    for p in (out / "splits").glob("*.txt"):
        if p.stem not in SPLITS:
            p.unlink()
