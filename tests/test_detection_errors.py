"""The per-ground-truth error breakdown (found / named / top class) and the mAP ground truth, by hand."""

from __future__ import annotations

import torch

from taskweight.detection_errors import GroundTruthOutcome, by_class_and_height, ground_truth_outcomes, tally
from taskweight.metrics import map_target


def _t(rows, dtype=torch.float32):
    return torch.tensor(rows, dtype=dtype)


def test_found_named_and_top_class_by_hand() -> None:
    gt = _t([[0, 0, 10, 30], [50, 0, 60, 10], [100, 0, 140, 50]])  # heights 30, 10, 50
    gt_labels = _t([1, 2, 0], torch.long)
    det = _t(
        [
            [0, 0, 10, 30],  # on ground truth 0 (IoU 1): class 2, score 0.9
            [0, 0, 10, 20],  # on ground truth 0 (IoU 2/3): its own class 1 but score 0.05
            [1, 0, 10, 30],  # on ground truth 0 (IoU 0.9): class 1, score 0.2
            [55, 0, 65, 10],  # ground truth 1: IoU 50/150 = 1/3 < 0.5, not found
            [100, 0, 140, 50],  # ground truth 2, class 0, score 0.08: found, not named at 0.1
        ]
    )
    scores = _t([0.9, 0.05, 0.2, 0.99, 0.08])
    labels = _t([2, 1, 1, 2, 0], torch.long)
    got = ground_truth_outcomes(gt, gt_labels, det, scores, labels, iou=0.5, min_score=0.1)
    assert got == [
        GroundTruthOutcome(label=1, height=30.0, found=True, named=True, top=2),
        GroundTruthOutcome(label=2, height=10.0, found=False, named=False, top=None),
        GroundTruthOutcome(label=0, height=50.0, found=True, named=False, top=0),
    ]
    # a looser IoU finds ground truth 1 and names it (class 2, score 0.99)
    loose = ground_truth_outcomes(gt, gt_labels, det, scores, labels, iou=0.3, min_score=0.1)
    assert loose[1] == GroundTruthOutcome(label=2, height=10.0, found=True, named=True, top=2)
    # without the class-2 box, ground truth 0's best box is its own class
    keep = torch.tensor([False, True, True, True, True])
    assert ground_truth_outcomes(gt, gt_labels, det[keep], scores[keep], labels[keep])[0].top == 1
    # no detections at all
    assert [o.found for o in ground_truth_outcomes(gt, gt_labels, torch.zeros(0, 4), torch.zeros(0), labels[:0])] == [
        False,
        False,
        False,
    ]


def test_tallies_by_class_and_height_bin() -> None:
    outcomes = [
        GroundTruthOutcome(1, 5.0, False, False, None),
        GroundTruthOutcome(1, 12.0, True, False, 2),  # 12 is the first edge: bin 12-20
        GroundTruthOutcome(1, 19.9, True, True, 1),
        GroundTruthOutcome(1, 40.0, True, True, 1),
        GroundTruthOutcome(0, 25.0, True, True, 0),
    ]
    table = by_class_and_height(outcomes, 3)
    assert list(k for k in table if k[0] == 1) == [(1, "<12"), (1, "12-20"), (1, "20-40"), (1, ">=40"), (1, "all")]
    assert table[(1, "<12")] == tally(outcomes[:1])
    assert table[(1, "12-20")].count == 2 and table[(1, "12-20")].found == 2 and table[(1, "12-20")].named == 1
    assert table[(1, "12-20")].top == {2: 1, 1: 1}
    assert table[(1, "all")].count == 4 and table[(1, "all")].top == {None: 1, 2: 1, 1: 2}
    assert table[(0, "20-40")].named == 1 and table[(2, "all")].count == 0


def test_map_target_adds_each_ignore_region_as_a_crowd_box_of_every_class() -> None:
    target = map_target(_t([[0, 0, 4, 4]]), _t([2], torch.long), _t([[10, 10, 20, 20]]), 3)
    assert target["boxes"].tolist() == [[0, 0, 4, 4]] + [[10, 10, 20, 20]] * 3
    assert target["labels"].tolist() == [2, 0, 1, 2] and target["iscrowd"].tolist() == [0, 1, 1, 1]
    plain = map_target(_t([[0, 0, 4, 4]]), _t([1], torch.long), torch.zeros(0, 4), 3)
    assert plain["boxes"].tolist() == [[0, 0, 4, 4]] and plain["iscrowd"].tolist() == [0]
    assert plain["iscrowd"].dtype == torch.long and plain["labels"].dtype == torch.long
