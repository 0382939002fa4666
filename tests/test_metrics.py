"""Metrics: mAP@0.5 over classes, DontCare as crowd, mIoU, geometric mean."""

from __future__ import annotations

import math

import pytest
import torch

from taskweight.metrics import MultiTaskEvaluator, geometric_mean
from taskweight.models import Detections


def _batch(seg, boxes, labels, ignore=None, has_det=True, has_seg=True):
    return {
        "has_det": torch.tensor([has_det]),
        "has_seg": torch.tensor([has_seg]),
        "boxes": [torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)],
        "labels": [torch.tensor(labels, dtype=torch.long)],
        "ignore_boxes": [torch.tensor(ignore or [], dtype=torch.float32).reshape(-1, 4)],
        "seg": torch.tensor([seg]),
    }


def test_geometric_mean():
    assert geometric_mean(0.64, 0.81) == pytest.approx(0.72)
    assert geometric_mean(0.0, 0.9) == 0.0
    assert math.isnan(geometric_mean(float("nan"), 0.5))


def test_map_per_class_and_dontcare_crowd():
    ev = MultiTaskEvaluator()
    batch = _batch([[0, 1], [2, 255]], [[10, 10, 50, 50], [60, 60, 90, 90]], [0, 1], ignore=[[100, 100, 140, 140]])
    dets = Detections(
        torch.tensor([[10.0, 10, 50, 50], [200, 10, 230, 40], [105, 105, 135, 135]]),
        torch.tensor([0.9, 0.8, 0.95]),
        torch.tensor([0, 1, 0]),
    )
    # car: one TP (the detection in DontCare is ignored) → AP 1; pedestrian: one FP, GT missed → AP 0
    ev.update([dets], torch.tensor([[[0, 1], [2, 2]]]), batch)
    m = ev.compute()
    assert m["AP50_car"] == pytest.approx(1.0)
    assert m["AP50_pedestrian"] == pytest.approx(0.0)
    assert math.isnan(m["AP50_cyclist"])  # no cyclist in the ground truth: excluded from the mean
    assert m["mAP"] == pytest.approx(0.5)
    # seg: void 1/1, road 1/1, sidewalk 1/1 (the 255 pixel is ignored)
    assert m["mIoU"] == pytest.approx(1.0)
    assert m["geometric_mean"] == pytest.approx(math.sqrt(0.5))


def test_miou_hand_computed_and_label_masks():
    ev = MultiTaskEvaluator()
    # target: void void road sidewalk ; prediction: void road road road
    batch = _batch([[0, 0, 1, 2]], [[1, 1, 3, 3]], [0], has_det=False)
    ev.update(
        [Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))],
        torch.tensor([[[0, 1, 1, 1]]]),
        batch,
    )
    # this image is not labelled for segmentation: its all-void target must not count
    ev.update(
        [Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))],
        torch.tensor([[[1, 1, 1, 1]]]),
        _batch([[0, 0, 0, 0]], [[1, 1, 3, 3]], [0], has_seg=False),
    )
    m = ev.compute()
    # IoU void = 1/2, road = 1/3, sidewalk = 0/1 (labelled once, never predicted)
    assert m["IoU_void"] == pytest.approx(0.5)
    assert m["IoU_road"] == pytest.approx(1 / 3)
    assert m["IoU_sidewalk"] == pytest.approx(0.0)
    assert m["mIoU"] == pytest.approx((0.5 + 1 / 3) / 3)
    assert m["mAP"] == 0.0  # the second image's car was missed


def test_improves_is_the_one_model_selection_rule():
    from taskweight.metrics import improves

    assert improves(0.5, None) and improves(0.5, float("nan")) and improves(0.5, 0.4)
    assert not improves(0.4, 0.5) and not improves(0.5, 0.5)  # a tie keeps the incumbent
    assert not improves(float("nan"), None) and not improves(None, 0.1)
    assert not improves(float("-inf"), None) and not improves(float("inf"), 0.1)
