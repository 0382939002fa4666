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

import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from taskweight.data.depth import write_kitti_depth
from taskweight.synth import geometry as g
from taskweight.synth.output import SPLITS, check_counts, run_jobs
from taskweight.synth.scene import (
    DEFAULT_SIZE,
    KITTI_TYPES,
    SPLIT_IDS,
    Scene,
    focal_length,
    min_box_height,
    render_scene,
)

PRESETS: dict[str, dict[str, Any]] = {
    "synth-kitti": {
        "size": DEFAULT_SIZE,
        "format": "kitti",
        "description": "KITTI aspect 375x1242 rendered at KITTI/3",
    },
    "synth-cityscapes": {
        "size": (128, 256),
        "format": "cityscapes",
        "writer": "taskweight.synth.cityscapes_writer:generate",
        "description": "Cityscapes layout (1:2 aspect, polygons + labelIds/instanceIds PNGs)",
    },
    "synth-woodscape": {
        "size": (96, 128),
        "format": "woodscape",
        "writer": "taskweight.synth.woodscape_writer:generate",
        "description": "WoodScape layout, equidistant fisheye, cameras FV/RV/MVL/MVR",
    },
}
"""Preset -> rendered size, the dataset format it writes and (other than synth-kitti) the
``module:function`` writer that :func:`generate_dataset` dispatches to."""
FORMAT_VERSION = 1
_OWN_ENTRIES = {"training", "splits", "synth.json"}


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


def _prepare(out: Path, depth: bool = False) -> None:
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"{out} exists and is not a directory")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _OWN_ENTRIES)
        if foreign:
            raise ValueError(
                f"{out} is not empty and does not look like a generated dataset "
                f"(found {', '.join(foreign[:5])}); choose another --out"
            )
    for sub in ("training/image_2", "training/label_2", "training/semantic", "splits"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    if depth:
        (out / "training" / "depth").mkdir(parents=True, exist_ok=True)
    marker = out / "synth.json"
    if marker.exists():
        marker.unlink()  # rewritten last: its presence marks a complete dataset


def check_generator_options(
    preset: str,
    *,
    train: int,
    val: int,
    test: int,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    single_label_fraction: float = 0.0,
    depth: bool = False,
    depth_pattern: str = "dense",
) -> None:
    """Raise ``ValueError`` naming the option if :func:`generate_dataset` would refuse these settings.

    Cheap (nothing is rendered): bench presets are checked with it before any cell runs.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: available {sorted(PRESETS)}")
    if not 0.0 <= float(single_label_fraction) <= 1.0:
        raise ValueError(f"single_label_fraction must be in [0, 1], got {single_label_fraction}")
    if PRESETS[preset].get("writer") is not None and float(single_label_fraction) != 0.0:
        raise ValueError(f"single_label_fraction is only supported by synth-kitti, not {preset}")
    if depth_pattern not in DEPTH_PATTERNS:
        raise ValueError(f"depth_pattern must be one of {DEPTH_PATTERNS}, got {depth_pattern!r}")
    if PRESETS[preset].get("writer") is not None and depth and depth_pattern != "dense":
        raise ValueError(
            f"depth_pattern {depth_pattern!r} is only supported by synth-kitti; {preset} writes dense depth"
        )
    check_counts(train, val, test, seed, size, PRESETS[preset]["size"])


def generate_dataset(
    out: Path | str,
    *,
    preset: str = "synth-kitti",
    train: int,
    val: int,
    test: int,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    single_label_fraction: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    depth: bool = False,
    depth_pattern: str = "dense",
) -> dict[str, Any]:
    """Generate ``train + val + test`` scenes under ``out`` in the preset's layout.

    ``synth-kitti`` writes the KITTI layout (below); ``synth-cityscapes`` and
    ``synth-woodscape`` dispatch to :mod:`taskweight.synth.cityscapes_writer` and
    :mod:`taskweight.synth.woodscape_writer` (``single_label_fraction`` must be 0 there).

    ``size`` = (H, W) overrides the preset's rendered size (125x414 for synth-kitti).
    ``single_label_fraction`` f: a fraction f of each split's images carries one label kind
    only (half detection only: no semantic PNG; half segmentation only: no label_2 file).
    ``workers`` > 1 renders in that many spawned processes (the ``__main__`` module must be
    importable); the output is byte-identical whatever the number. ``depth`` also writes every
    scene's exact depth (:mod:`taskweight.data.depth`): synth-kitti under ``training/depth/`` in
    KITTI's uint16 format, synth-cityscapes as Cityscapes disparity PNGs with camera files
    (``disparity/``, ``camera/``), synth-woodscape as fisheye depth maps under ``depth/`` in
    KITTI's format; images and labels are the same with or without it.
    ``depth_pattern`` (synth-kitti; the others are dense): ``dense`` (every pixel with a surface) or
    ``lidar`` (the rows of a 64-beam scanner, :func:`lidar_rows`, sparse like KITTI's projected LiDAR).
    Returns a summary with counts per split and per class.
    """
    check_generator_options(
        preset,
        train=train,
        val=val,
        test=test,
        seed=seed,
        size=size,
        single_label_fraction=single_label_fraction,
        depth=depth,
        depth_pattern=depth_pattern,
    )
    writer = PRESETS[preset].get("writer")
    if writer is not None:
        module, _, function = writer.partition(":")
        generate = getattr(importlib.import_module(module), function)
        return generate(
            out,
            preset=preset,
            train=train,
            val=val,
            test=test,
            seed=seed,
            size=size,
            single_label_fraction=single_label_fraction,
            progress=progress,
            workers=workers,
            depth=bool(depth),
        )
    counts, size = check_counts(train, val, test, seed, size, PRESETS[preset]["size"])
    total = sum(counts.values())
    out = Path(out)
    _prepare(out, depth)

    jobs, names_by_split, kinds_by_name = [], {}, {}
    number = 0
    for split in SPLITS:
        names = []
        for i, (det, seg) in enumerate(label_kinds(counts[split], float(single_label_fraction), seed, split)):
            name = f"{number:06d}"
            number += 1
            names.append(name)
            kinds_by_name[name] = (det, seg)
            jobs.append((str(out), split, i, int(seed), size, name, det, seg, bool(depth), depth_pattern))
        names_by_split[split] = names

    _remove_stale(out, kinds_by_name, depth)
    started = time.perf_counter()
    per_split = {s: dict.fromkeys(KITTI_TYPES, 0) for s in SPLITS}
    for job, counts_of_scene in zip(jobs, run_jobs(_job, jobs, workers, progress), strict=True):
        for t, v in counts_of_scene.items():
            per_split[job[1]][t] += v
    elapsed = time.perf_counter() - started

    for split in SPLITS:
        (out / "splits" / f"{split}.txt").write_text("".join(n + "\n" for n in names_by_split[split]), encoding="ascii")
    det_only = sorted(n for n, k in kinds_by_name.items() if k == (True, False))
    seg_only = sorted(n for n, k in kinds_by_name.items() if k == (False, True))
    objects = {t: sum(per_split[s][t] for s in SPLITS) for t in KITTI_TYPES}
    params = {
        "generator": "taskweight.synth",
        "format_version": FORMAT_VERSION,
        "preset": preset,
        "seed": int(seed),
        "size": list(size),
        "splits": counts,
        "single_label_fraction": float(single_label_fraction),
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
        "detection_only": det_only,
        "segmentation_only": seg_only,
        "objects": objects,
        "objects_per_split": per_split,
    }
    if depth:
        params["depth"] = {
            "dir": "training/depth",
            "format": "uint16 PNG, metres x 256, 0 = no measurement (KITTI depth)",
            "rendering": "exact z-buffer of the scene's surfaces; sky and distant skyline: 0",
            "pattern": depth_pattern
            if depth_pattern == "dense"
            else f"lidar: {LIDAR_BEAMS} beams at {list(LIDAR_ELEVATION_DEG)} deg, range {LIDAR_RANGE_M} m",
        }
    (out / "synth.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
    return {
        "preset": preset,
        "out": str(out),
        "size": list(size),
        "seed": int(seed),
        "splits": counts,
        "images": total,
        "objects": objects,
        "objects_per_split": per_split,
        "detection_only": len(det_only),
        "segmentation_only": len(seg_only),
        "seconds": round(elapsed, 2),
        "scenes_per_second": round(total / max(elapsed, 1e-9), 1),
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
