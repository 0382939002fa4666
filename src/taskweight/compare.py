"""The paper's Fig. 5: the same images through several trained runs, side by side.

A grid of ``n`` rows (images of one split) and ``1 + len(runs)`` columns: the ground truth,
then each run's prediction (:mod:`taskweight.predict`: its own preprocessing, outputs mapped
back to the original pixels), every panel an overlay of boxes and the blended segmentation
mask, each column titled (ground truth, then each run's method). The images come from the
first run's dataset and are chosen evenly spread over the split's samples that carry both
kinds of label (all samples when fewer than ``n`` do). A JSON beside the PNG lists the chosen
images and the layout.

When a run has the depth head, every image gets a second row below its overlays: the depth
pictures (:func:`taskweight.predict.depth_colors`: log scale over
:data:`taskweight.predict.DEPTH_RANGE_M`, near bright, far dark) of the ground truth (read when
the dataset's format has depth) and of each run; a panel without a depth (a run without the
head, an image without a depth map, a ground-truth pixel without a measurement) is grey. The
JSON then says ``"depth_rows": true``, and its layout counts both rows of each image.

Layout in pixels: panels of ``panel_size`` (h, w) separated and framed by ``GAP``, below a
title strip of ``TITLE_HEIGHT``: width ``GAP + cols·(w + GAP)``, height
``TITLE_HEIGHT + rows·(h + GAP) + GAP`` (:func:`grid_geometry`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from taskweight.classes import IGNORE_INDEX
from taskweight.data import format_option, open_dataset
from taskweight.errors import DataFormatError
from taskweight.predict import LoadedRun, default_font, depth_image, draw_overlay, load_run, predict_image

TITLE_HEIGHT = 18
GAP = 4
BACKGROUND = (255, 255, 255)


def grid_geometry(rows: int, cols: int, panel_size: tuple[int, int]) -> dict[str, Any]:
    """Size of the grid image and the top-left corner of every panel (row-major)."""
    ph, pw = panel_size
    width = GAP + cols * (pw + GAP)
    height = TITLE_HEIGHT + rows * (ph + GAP) + GAP
    corners = [[GAP + c * (pw + GAP), TITLE_HEIGHT + GAP + r * (ph + GAP)] for r in range(rows) for c in range(cols)]
    return {"size": [height, width], "rows": rows, "cols": cols, "panel_size": [ph, pw], "corners": corners}


def choose_images(dataset: Any, n: int) -> list[int]:
    """``n`` indices spread evenly over the samples labelled for both tasks (all when too few)."""
    samples = getattr(dataset, "samples", None)
    pool = list(range(len(dataset)))
    if samples is not None:
        both = [i for i, s in enumerate(samples) if s.has_det and s.has_seg]
        if len(both) >= n:
            pool = both
    if n >= len(pool):
        return pool
    return [pool[(i * len(pool)) // n] for i in range(n)]


def _titles(runs: Sequence[LoadedRun]) -> list[str]:
    methods = [r.method for r in runs]
    return [f"{m} ({r.run_dir.name})" if methods.count(m) > 1 else m for m, r in zip(methods, runs, strict=True)]


def compare_runs(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    split: str = "test",
    n: int = 6,
    checkpoint: str = "best.pt",
    score_threshold: float = 0.3,
    panel_width: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the Fig. 5 grid to ``out`` (PNG) and ``out`` with suffix ``.json``; return that JSON's content."""
    if not run_dirs:
        raise ValueError("compare needs at least one run folder")
    if n < 1:
        raise ValueError(f"option '--n': at least one image, got {n}")
    runs = [load_run(r, checkpoint=checkpoint) for r in run_dirs]
    config = runs[0].config
    if config.data.root is None:
        raise DataFormatError(runs[0].run_dir / "config.yaml", "the run's data.root is not set")
    depth_rows = any(run.has_depth for run in runs)
    options = dict(config.data.options)
    if depth_rows and format_option(config.data.format, "depth"):
        options["depth"] = True  # the ground truth's depth panels
    dataset: Any = open_dataset(
        config.data.format,
        config.data.root,
        split,
        image_size=None,
        augment=False,
        cache=False,
        on_error=config.data.on_error,
        **options,
    )
    chosen = choose_images(dataset, n)
    titles = ["ground truth", *_titles(runs)]
    rows: list[list[Image.Image]] = []
    images: list[dict[str, Any]] = []
    panel: tuple[int, int] | None = None
    for done, index in enumerate(chosen, start=1):
        item = dataset[index]
        image = item["image"]  # uint8, as decoded
        height, width = int(image.shape[-2]), int(image.shape[-1])
        if panel is None:
            pw = panel_width or min(width, 640)
            panel = (max(1, round(height * pw / width)), pw)
        seg = item["seg"] if item.get("has_seg", True) else None
        gt_mask = None if seg is None else np.where(seg.numpy() == IGNORE_INDEX, 0, seg.numpy())
        row = [draw_overlay(image, item["boxes"], item["labels"], None, gt_mask)]
        no_depth = np.zeros((height, width), np.float32)  # drawn grey
        gt_depth = item.get("depth") if item.get("has_depth", False) else None
        depths: list[Any] = [gt_depth]
        counts = []
        for run in runs:
            pred = predict_image(run, image, name=str(item["name"]), score_threshold=score_threshold)
            row.append(draw_overlay(image, pred.boxes, pred.labels, pred.scores, pred.mask))
            depths.append(pred.depth)
            counts.append(len(pred.labels))
        rows.append([p.resize((panel[1], panel[0]), Image.Resampling.BILINEAR) for p in row])
        record: dict[str, Any] = {
            "index": index,
            "name": str(item["name"]),
            "size": [height, width],
            "detections_per_run": counts,
        }
        if depth_rows:  # depth pictures keep their values' edges: nearest, not blended
            pictures = [depth_image(d if d is not None else no_depth) for d in depths]
            rows.append([p.resize((panel[1], panel[0]), Image.Resampling.NEAREST) for p in pictures])
            record["ground_truth_depth"] = gt_depth is not None
        images.append(record)
        if progress is not None:
            progress(done, len(chosen))
    assert panel is not None  # chosen is never empty: a dataset has at least one sample
    geometry = grid_geometry(len(rows), len(titles), panel)
    grid = Image.new("RGB", (geometry["size"][1], geometry["size"][0]), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    font = default_font()
    for c, title in enumerate(titles):
        x = GAP + c * (panel[1] + GAP)
        draw.text((x + 2, 3), title, fill=(0, 0, 0), font=font)
    for k, picture in enumerate(p for row in rows for p in row):
        grid.paste(picture, tuple(geometry["corners"][k]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    report = {
        "grid": str(out),
        "split": split,
        "dataset": str(config.data.root),
        "checkpoint": checkpoint,
        "score_threshold": score_threshold,
        "columns": titles,
        "runs": [
            {"run": str(r.run_dir), "method": r.method, "title": t} for r, t in zip(runs, titles[1:], strict=True)
        ],
        "images": images,
        "panels": len(rows) * len(titles),
        "layout": {k: geometry[k] for k in ("size", "rows", "cols", "panel_size")}
        | {"gap": GAP, "title_height": TITLE_HEIGHT},
    }
    if depth_rows:
        report["depth_rows"] = True
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
