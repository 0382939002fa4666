"""Boxes of the label files: checking a box against its image, and boxes of the regions of a label map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from taskweight.errors import DataFormatError


def bbox_of_values(values: np.ndarray, keep: np.ndarray | None = None) -> dict[int, tuple[float, float, float, float]]:
    """Pixel extent (x1, y1, x2 + 1, y2 + 1) of every value of an integer map (``keep``: mask)."""
    h, w = values.shape
    flat = values.ravel()
    idx = np.flatnonzero(keep.ravel()) if keep is not None else np.arange(flat.size)
    if idx.size == 0:
        return {}
    vals, inv = np.unique(flat[idx], return_inverse=True)
    rows, cols = idx // w, idx % w
    n = len(vals)
    x1 = np.full(n, w, np.int64)
    y1 = np.full(n, h, np.int64)
    x2 = np.full(n, -1, np.int64)
    y2 = np.full(n, -1, np.int64)
    np.minimum.at(x1, inv, cols)
    np.minimum.at(y1, inv, rows)
    np.maximum.at(x2, inv, cols)
    np.maximum.at(y2, inv, rows)
    return {
        int(v): (float(a), float(b), float(c + 1), float(d + 1))
        for v, a, b, c, d in zip(vals, x1, y1, x2, y2, strict=True)
    }


def component_boxes(mask: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Pixel extent (x1, y1, x2 + 1, y2 + 1) of every 8-connected component of a boolean mask, in
    scan order of each component's first pixel (:func:`scipy.ndimage.label`)."""
    labelled, _count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    return [
        (float(found[1].start), float(found[0].start), float(found[1].stop), float(found[0].stop))
        for found in ndimage.find_objects(labelled)
        if found is not None
    ]


def check_box(
    box: Sequence[float], size: tuple[int, int], path: Path, line: int | None, tolerance: float = 1.0
) -> tuple[float, float, float, float]:
    """Validate an x1 y1 x2 y2 box against an H x W image: x2 > x1, y2 > y1 and inside the
    image up to ``tolerance`` pixels (then clipped to it)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(np.isfinite((x1, y1, x2, y2))):
        raise DataFormatError(path, f"box {box} is not finite", line=line)
    if x2 <= x1:
        raise DataFormatError(path, f"box x_max {x2:g} <= x_min {x1:g}", line=line)
    if y2 <= y1:
        raise DataFormatError(path, f"box y_max {y2:g} <= y_min {y1:g}", line=line)
    h, w = size
    if x1 < -tolerance or y1 < -tolerance or x2 > w + tolerance or y2 > h + tolerance:
        raise DataFormatError(path, f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the {w}x{h} image", line=line)
    return max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
