"""Where detection AP is lost: for every ground-truth box, was it found, and was it given its own class?

For each ground-truth box of a scored image (ignore regions are not ground truths), with the
image's detections after NMS:

- **found**: a detection of any class overlaps it with IoU ≥ ``iou``: the box was localised,
  whatever it was called;
- **named**: a detection of its own class with score ≥ ``min_score`` overlaps it with IoU ≥ ``iou``;
- **top**: the class of the highest-scoring detection with IoU ≥ ``iou`` (``None`` when not found).

Tallied per class and per box height, these tell a class that loses AP to missed objects (not
found) from one that loses it to another class's name (found, top another class) or to low
scores (found, not named).  ``benchmarks/detection_errors.py`` prints them for a run, beside AP at
several IoU thresholds (a class that gains much at IoU 0.1 loses AP to loose boxes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_iou


@dataclass(frozen=True)
class GroundTruthOutcome:
    """What the detections made of one ground-truth box (see the module docstring)."""

    label: int
    height: float
    found: bool
    named: bool
    top: int | None


def ground_truth_outcomes(
    gt_boxes: Tensor,
    gt_labels: Tensor,
    det_boxes: Tensor,
    det_scores: Tensor,
    det_labels: Tensor,
    *,
    iou: float = 0.5,
    min_score: float = 0.1,
) -> list[GroundTruthOutcome]:
    """The outcome of every ground-truth box of one image (xyxy boxes, pixels)."""
    gt_boxes, det_boxes = gt_boxes.float().reshape(-1, 4), det_boxes.float().reshape(-1, 4)
    overlaps = box_iou(gt_boxes, det_boxes) >= iou  # G x D
    outcomes = []
    for g in range(len(gt_boxes)):
        hits = overlaps[g]
        label = int(gt_labels[g])
        top = None
        if bool(hits.any()):
            top = int(det_labels[hits][int(torch.argmax(det_scores[hits]))])
        own = hits & (det_labels == label) & (det_scores >= min_score)
        height = float(gt_boxes[g, 3] - gt_boxes[g, 1])
        outcomes.append(GroundTruthOutcome(label, height, bool(hits.any()), bool(own.any()), top))
    return outcomes


@dataclass(frozen=True)
class OutcomeTally:
    """Counts of one group of ground truths: how many, found, named, and the top class of each."""

    count: int
    found: int
    named: int
    top: dict[int | None, int]


def tally(outcomes: Iterable[GroundTruthOutcome]) -> OutcomeTally:
    """Sum a group of outcomes."""
    count = found = named = 0
    top: dict[int | None, int] = {}
    for o in outcomes:
        count += 1
        found += o.found
        named += o.named
        top[o.top] = top.get(o.top, 0) + 1
    return OutcomeTally(count, found, named, top)


def by_class_and_height(
    outcomes: Sequence[GroundTruthOutcome], num_classes: int, height_edges: Sequence[float] = (12.0, 20.0, 40.0)
) -> dict[tuple[int, str], OutcomeTally]:
    """Tallies keyed (class, height bin): bins ``<e0``, ``e0-e1`` ..., ``>=eN`` and ``all``."""
    edges = [0.0, *height_edges, float("inf")]
    names = [f"<{edges[1]:g}"] + [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[1:-2], edges[2:-1], strict=True)]
    names.append(f">={edges[-2]:g}")
    table = {}
    for c in range(num_classes):
        own = [o for o in outcomes if o.label == c]
        for name, lo, hi in zip(names, edges[:-1], edges[1:], strict=True):
            table[(c, name)] = tally(o for o in own if lo <= o.height < hi)
        table[(c, "all")] = tally(own)
    return table
