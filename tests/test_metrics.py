"""Metrics: mAP@0.5 over classes, DontCare as crowd, mIoU, geometric mean."""

from __future__ import annotations

import math
import re

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


def test_a_negative_score_makes_the_geometric_mean_nan_not_an_error():
    assert math.isnan(geometric_mean(0.5, -0.2))


_NO_DETECTIONS = Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))


def test_depth_metrics_average_over_the_labelled_images_of_every_batch():
    ev = MultiTaskEvaluator(tasks=["depth"])
    # image 0: labelled but no valid pixel; image 1: not labelled (its valid pixels must not count);
    # image 2: AbsRel (1/4 + 0 + 2/1)/3, RMSE √(5/3), δ: ratios 5/4 (not < 1.25), 1, 3 → 1/3.
    target = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]], [[4.0, 2.0], [1.0, 0.0]]])
    pred = torch.tensor([[[3.0, 3.0], [3.0, 3.0]], [[1.0, 1.0], [1.0, 1.0]], [[5.0, 2.0], [3.0, 7.0]]])
    ev.update(None, None, {"depth": target, "has_depth": torch.tensor([True, False, True])}, pred)
    # a second batch, image 3: AbsRel 1/4, RMSE √(4/4) = 1, δ 3/4
    ev.update(
        None,
        None,
        {"depth": torch.full((1, 2, 2), 2.0), "has_depth": torch.tensor([True])},
        torch.tensor([[[2.0, 2.0], [2.0, 4.0]]]),
    )
    m = ev.compute()
    assert m["images_depth"] == 2
    assert m["AbsRel"] == pytest.approx((0.75 + 0.25) / 2)
    assert m["RMSE"] == pytest.approx((math.sqrt(5 / 3) + 1) / 2)
    assert m["delta1"] == pytest.approx((1 / 3 + 3 / 4) / 2)


def test_depth_without_a_labelled_image_is_nan():
    ev = MultiTaskEvaluator(tasks=["depth"])
    ev.update(None, None, {"depth": torch.ones(1, 2, 2), "has_depth": torch.tensor([False])}, torch.ones(1, 2, 2))
    m = ev.compute()
    assert m["images_depth"] == 0
    assert all(math.isnan(m[k]) for k in ("AbsRel", "RMSE", "delta1", "geometric_mean"))


def test_images_are_counted_per_task_over_batches():
    ev = MultiTaskEvaluator()
    seg = [[0, 1], [2, 2]]
    ev.update([_NO_DETECTIONS], torch.tensor([seg]), _batch(seg, [[0, 0, 1, 1]], [0], has_det=False))
    ev.update([_NO_DETECTIONS], torch.tensor([seg]), _batch(seg, [[0, 0, 1, 1]], [0]))
    ev.update([_NO_DETECTIONS], torch.tensor([seg]), _batch(seg, [[0, 0, 1, 1]], [0], has_seg=False))
    m = ev.compute()
    assert (m["images_det"], m["images_seg"]) == (2, 2)
    assert "images_depth" not in m


def test_only_the_tasks_given_and_predicted_are_scored():
    seg = [[0, 1], [2, 2]]
    depth_batch = {**_batch(seg, [[0, 0, 1, 1]], [0]), "depth": torch.ones(1, 2, 2), "has_depth": torch.tensor([True])}
    # a segmentation-only evaluator on data that also has depth: no depth prediction, no depth score
    ev = MultiTaskEvaluator(tasks=["seg"])
    ev.update(None, torch.tensor([seg]), depth_batch, None)
    ev.update(None, torch.tensor([seg]), _batch(seg, [[0, 0, 1, 1]], [0]), torch.ones(1, 2, 2))  # no depth labels
    m = ev.compute()
    assert m["mIoU"] == pytest.approx(1.0) and m["geometric_mean"] == pytest.approx(1.0)
    assert "AbsRel" not in m and "images_det" not in m and math.isnan(m["mAP"])
    assert m["images_seg"] == 2
    # a detection+segmentation evaluator given no detections: mAP is not measured, mIoU is
    ev = MultiTaskEvaluator()
    ev.update(None, torch.tensor([seg]), depth_batch)
    ev.update([_NO_DETECTIONS], None, depth_batch)
    m = ev.compute()
    assert m["images_det"] == 1 and m["images_seg"] == 1


def test_segmentation_labels_that_are_all_ignore_give_nan_miou():
    ev = MultiTaskEvaluator(tasks=["seg"])
    ev.update(None, torch.tensor([[[0, 1]]]), {"has_seg": torch.tensor([True]), "seg": torch.tensor([[[255, 255]]])})
    m = ev.compute()
    assert m["images_seg"] == 1 and math.isnan(m["mIoU"]) and math.isnan(m["geometric_mean"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_seg_classes": 4}, "num_seg_classes must be 3 (the classes void, road, sidewalk), got 4"),
        ({"num_det_classes": 2}, "num_det_classes must be 3 (the classes car, pedestrian, cyclist), got 2"),
    ],
)
def test_a_class_count_other_than_the_named_classes_is_refused_up_front(options: dict, message: str):
    """The per-class results are named after the classes; a different count used to pass the constructor and
    every update, and fail only in compute() at the end of a split."""
    with pytest.raises(ValueError, match=re.escape(message)):
        MultiTaskEvaluator(**options)
    MultiTaskEvaluator(num_det_classes=3, num_seg_classes=3)  # the counts of the classes themselves
