"""Write procedural scenes in the real Cityscapes layout (preset ``synth-cityscapes``).

::

    OUT/leftImg8bit/{split}/synthcity/synthcity_000000_{i:06d}_leftImg8bit.png
    OUT/gtFine/{split}/synthcity/synthcity_000000_{i:06d}_gtFine_labelIds.png      8-bit labelIds
    OUT/gtFine/{split}/synthcity/synthcity_000000_{i:06d}_gtFine_instanceIds.png   16-bit ids
    OUT/gtFine/{split}/synthcity/synthcity_000000_{i:06d}_gtFine_polygons.json
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
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from taskweight.data.cityscapes_labels import ID2NAME
from taskweight.synth.instances import (
    INSTANCE_CLASSES,
    cityscapes_instance_ids,
    instance_masks,
    mask_rectangles,
    rectangle_polygon,
    render_with_instances,
    staircase_polygon,
)
from taskweight.synth.output import SPLITS, check_counts, prepare_output, run_jobs

DEFAULT_SIZE = (128, 256)
CITY = "synthcity"
FORMAT_VERSION = 1


def stem(index: int) -> str:
    return f"{CITY}_000000_{index:06d}"


def polygons_of(ids: np.ndarray, owner: np.ndarray, order: list[int]) -> list[dict[str, Any]]:
    """Cityscapes polygon objects reproducing ``ids`` (see the module docstring)."""
    objects = [{"label": ID2NAME[cls], "polygon": staircase_polygon(m)} for cls, m in instance_masks(ids, owner, order)]
    stuff = ~np.isin(ids, INSTANCE_CLASSES) & (ids > 0)
    for value in np.unique(ids[stuff]):
        for rect in mask_rectangles(stuff & (ids == value)):
            objects.append({"label": ID2NAME[int(value)], "polygon": rectangle_polygon(rect)})
    return objects


def write_sample(out: Path, split: str, index: int, seed: int, size: tuple[int, int]) -> dict[str, int]:
    rendered = render_with_instances(index, split, seed, size)
    scene = rendered.scene
    ids = scene.semantic_ids
    inst = cityscapes_instance_ids(ids, rendered.instances, rendered.order)
    name = stem(index)
    img_dir = out / "leftImg8bit" / split / CITY
    gt_dir = out / "gtFine" / split / CITY
    Image.fromarray(scene.image).save(img_dir / f"{name}_leftImg8bit.png", compress_level=3)
    Image.fromarray(ids).save(gt_dir / f"{name}_gtFine_labelIds.png", compress_level=3)
    Image.fromarray(inst.astype(np.uint16)).save(gt_dir / f"{name}_gtFine_instanceIds.png", compress_level=3)
    doc = {
        "imgHeight": int(ids.shape[0]),
        "imgWidth": int(ids.shape[1]),
        "objects": polygons_of(ids, rendered.instances, rendered.order),
    }
    (gt_dir / f"{name}_gtFine_polygons.json").write_text(
        json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    counts: dict[str, int] = {}
    for value in np.unique(inst[inst >= 1000]):
        label = ID2NAME[int(value) // 1000]
        counts[label] = counts.get(label, 0) + 1
    return counts


def _write_job(args: tuple[str, str, int, int, tuple[int, int]]) -> dict[str, int]:
    out, split, index, seed, size = args
    return write_sample(Path(out), split, index, seed, size)


def generate(
    out: Path | str,
    *,
    preset: str = "synth-cityscapes",
    train: int,
    val: int,
    test: int,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    single_label_fraction: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Generate ``train + val + test`` scenes under ``out`` in the Cityscapes layout.

    ``workers`` > 1 renders in that many spawned processes; the files do not depend on it.
    """
    counts, size = check_counts(train, val, test, seed, size, DEFAULT_SIZE)
    if float(single_label_fraction) != 0.0:
        raise ValueError(
            "single_label_fraction is only supported by synth-kitti (Cityscapes labels every image for both tasks)"
        )
    out = Path(out)
    prepare_output(
        out, {"leftImg8bit", "gtFine"}, [f"{top}/{s}/{CITY}" for top in ("leftImg8bit", "gtFine") for s in SPLITS]
    )
    for top in ("leftImg8bit", "gtFine"):
        for s in SPLITS:
            for p in (out / top / s / CITY).glob("*"):
                p.unlink()
    started = time.perf_counter()
    total = sum(counts.values())
    jobs = [(str(out), split, i, int(seed), size) for split in SPLITS for i in range(counts[split])]
    per_split: dict[str, dict[str, int]] = {split: {} for split in SPLITS}
    for job, counts_of_scene in zip(jobs, run_jobs(_write_job, jobs, workers, progress), strict=True):
        for label, n in counts_of_scene.items():
            per_split[job[1]][label] = per_split[job[1]].get(label, 0) + n
    elapsed = time.perf_counter() - started
    instances: dict[str, int] = {}
    for split in SPLITS:
        for label, n in per_split[split].items():
            instances[label] = instances.get(label, 0) + n
    params = {
        "generator": "taskweight.synth",
        "format_version": FORMAT_VERSION,
        "preset": preset,
        "seed": int(seed),
        "size": list(size),
        "splits": counts,
        "city": CITY,
        "instances": instances,
        "instances_per_split": per_split,
    }
    (out / "synth.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
    return {
        "preset": preset,
        "out": str(out),
        "size": list(size),
        "seed": int(seed),
        "splits": counts,
        "images": total,
        "objects": instances,
        "objects_per_split": per_split,
        "seconds": round(elapsed, 2),
        "scenes_per_second": round(total / max(elapsed, 1e-9), 1),
    }
