"""Metrics behaviour the older metric tests left open (surviving mutants of ``taskweight.metrics``).

- Scoring happens in one process: inside a multi-process run only rank 0 validates, so none of the three
  torchmetrics metrics may try to gather the other ranks' states when it computes.
- The per-class IoUs are named by ``SEG_CLASSES``: an evaluator counting more segmentation classes than
  there are names is an error, not a silently dropped class.
"""

from __future__ import annotations

import math

import pytest
import torch

from taskweight.classes import SEG_CLASSES
from taskweight.metrics import MultiTaskEvaluator
from taskweight.models import Detections


def _batch(seg: list[list[int]], boxes: list[list[float]], labels: list[int]) -> dict:
    return {
        "has_det": torch.tensor([True]),
        "has_seg": torch.tensor([True]),
        "boxes": [torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)],
        "labels": [torch.tensor(labels, dtype=torch.long)],
        "ignore_boxes": [torch.zeros(0, 4)],
        "seg": torch.tensor([seg]),
    }


def test_compute_inside_an_initialised_process_group_scores_only_this_process(monkeypatch) -> None:
    """torch.distributed reports a process group, but it has no peers that answer (as on rank 0 of a run
    whose other ranks are not validating): any gather would fail here (no default group). The evaluator
    scores what it was given, with the numbers worked out by hand."""
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    ev = MultiTaskEvaluator()
    batch = _batch([[0, 0], [1, 2]], [[10, 10, 50, 50], [60, 60, 90, 90]], [0, 1])
    dets = Detections(
        torch.tensor([[10.0, 10, 50, 50], [200, 10, 230, 40]]),
        torch.tensor([0.9, 0.8]),
        torch.tensor([0, 1]),
    )
    ev.update([dets], torch.tensor([[[0, 1], [1, 2]]]), batch)
    m = ev.compute()
    # det: car matched exactly → AP 1 (also at every COCO threshold); pedestrian: one FP, its GT missed → AP 0;
    # cyclist has no ground truth and stays out: mAP = (1 + 0)/2, COCO mAP the same
    assert m["AP50_car"] == pytest.approx(1.0)
    assert m["AP50_pedestrian"] == pytest.approx(0.0)
    assert math.isnan(m["AP50_cyclist"])
    assert m["mAP"] == pytest.approx(0.5)
    assert m["mAP_coco"] == pytest.approx(0.5)
    # seg: target void void road sidewalk, prediction void road road sidewalk
    # void 1/2 (one hit, one missed), road 1/2 (one hit, one false), sidewalk 1/1 → mIoU 2/3
    assert [m[f"IoU_{c}"] for c in SEG_CLASSES] == pytest.approx([0.5, 0.5, 1.0])
    assert m["mIoU"] == pytest.approx(2 / 3)
    assert m["geometric_mean"] == pytest.approx(math.sqrt(0.5 * 2 / 3))


def test_more_segmentation_classes_than_class_names_is_an_error_not_a_dropped_class() -> None:
    # class 3 would have no name: refused when the evaluator is built, before a split is scored
    with pytest.raises(ValueError, match="num_seg_classes must be 3"):
        MultiTaskEvaluator(num_seg_classes=len(SEG_CLASSES) + 1, tasks=["seg"])
