"""Target assignment of the YOLO head: ``centre`` (YOLOv2/v3) and ``neighbours`` (YOLOv5).

Under ``neighbours`` a ground truth whose centre lies in cell (i, j) also claims the horizontal
neighbour on the side its centre is closer to and the vertical one (inside the grid only), and
the box centre is c = (j + 2σ(t) − 0.5)·s. ``centre`` must keep the loss as it was before the
option existed (values recorded from that code on a fixed input).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from taskweight.build import build_model
from taskweight.config import TrainConfig
from taskweight.models import YoloDetectionHead, resnet10_multitask
from taskweight.models.detection import DetectionLossWeights, pad_detection_targets

S = 8  # the head's stride
GH, GW = 4, 6  # grid of the hand-worked cases: a 32×48 image
# anchors 0 and 1 both match a 6×14 box (shape IoU 84/105 = 0.8), anchor 2 does not (84/900)
ANCHORS = torch.tensor([[6.0, 14.0], [7.0, 15.0], [30.0, 30.0]])
# only the positives' objectness term counts, so d loss / d objectness logit ≠ 0 marks them
POSITIVES_ONLY = DetectionLossWeights(box=0.0, cls=0.0, obj=1.0, noobj=0.0)


def _head(assignment: str, anchors: Tensor = ANCHORS, num_classes: int = 3) -> YoloDetectionHead:
    chans = {"s8": 4, "s16": 4, "s32": 4}
    return YoloDetectionHead(chans, num_classes=num_classes, anchors=anchors, channels=4, assignment=assignment)  # type: ignore[arg-type]


def _box_at(i: int, j: int, fx: float, fy: float, w: float = 6.0, h: float = 14.0) -> list[float]:
    """A w×h box whose centre lies at fraction (fx, fy) of cell (row i, column j)."""
    cx, cy = (j + fx) * S, (i + fy) * S
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _positives(head: YoloDetectionHead, boxes: list[list[float]]) -> set[tuple[int, int, int]]:
    """The (anchor, row, column) cells the loss treats as positives for one image with ``boxes``."""
    raw = torch.zeros(1, head.num_anchors, GH, GW, 5 + head.num_classes, dtype=torch.float64, requires_grad=True)
    gt = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    loss = head.loss(raw, [gt], [torch.zeros(len(gt), dtype=torch.long)], weights=POSITIVES_ONLY)
    (grad,) = torch.autograd.grad(loss, raw)
    return {tuple(int(v) for v in idx) for idx in grad[0, ..., 4].nonzero()}  # type: ignore[misc]


# ------------------------------------------------------------------ hand-worked assignment
def test_neighbours_claims_the_cell_its_left_and_its_lower_neighbour():
    # centre at (0.3, 0.7) of cell (row 1, column 2): closer to the left edge and to the lower edge
    box = _box_at(1, 2, 0.3, 0.7)
    head = _head("neighbours")
    rows, cols, real = head.target_cells(torch.tensor(box), (GH, GW))
    assert rows.tolist() == [1, 1, 2] and cols.tolist() == [2, 1, 2] and real.tolist() == [True, True, True]
    expected = {(a, i, j) for a in (0, 1) for (i, j) in ((1, 2), (1, 1), (2, 2))}
    assert _positives(head, [box]) == expected
    # today's assignment: the centre cell only, for the same matched anchors
    assert _positives(_head("centre"), [box]) == {(0, 1, 2), (1, 1, 2)}


@pytest.mark.parametrize(
    ("fx", "fy", "cells"),
    [
        (0.3, 0.7, {(1, 2), (1, 1), (2, 2)}),  # left, lower
        (0.8, 0.7, {(1, 2), (1, 3), (2, 2)}),  # right, lower
        (0.2, 0.1, {(1, 2), (1, 1), (0, 2)}),  # left, upper
        (0.6, 0.4, {(1, 2), (1, 3), (0, 2)}),  # right, upper
    ],
)
def test_neighbours_follow_the_nearer_side(fx: float, fy: float, cells: set[tuple[int, int]]):
    assert _positives(_head("neighbours"), [_box_at(1, 2, fx, fy)]) == {(a, i, j) for a in (0, 1) for i, j in cells}


@pytest.mark.parametrize(
    ("i", "j", "fx", "fy", "cells"),
    [
        (0, 0, 0.2, 0.2, {(0, 0)}),  # top-left corner: left and upper neighbours are outside
        (GH - 1, GW - 1, 0.8, 0.9, {(GH - 1, GW - 1)}),  # bottom-right corner
        (0, GW - 1, 0.7, 0.3, {(0, GW - 1)}),  # top-right corner
        (GH - 1, 0, 0.1, 0.6, {(GH - 1, 0)}),  # bottom-left corner
        (2, 0, 0.3, 0.7, {(2, 0), (3, 0)}),  # left border: only the lower neighbour
        (0, 3, 0.7, 0.4, {(0, 3), (0, 4)}),  # top border: only the right neighbour
        (GH - 1, 3, 0.2, 0.8, {(GH - 1, 3), (GH - 1, 2)}),  # bottom border: only the left neighbour
        (1, GW - 1, 0.9, 0.2, {(1, GW - 1), (0, GW - 1)}),  # right border: only the upper neighbour
        (0, 0, -0.6, -0.3, {(0, 0)}),  # centre off the image (clamped to the corner cell)
        (GH - 1, GW - 1, 1.4, 1.2, {(GH - 1, GW - 1)}),  # centre past the bottom-right corner
    ],
)
def test_neighbours_at_the_grid_border_claim_no_cell_outside(i, j, fx, fy, cells):
    head = _head("neighbours")
    box = _box_at(i, j, fx, fy)
    _, _, real = head.target_cells(torch.tensor(box), (GH, GW))
    assert int(real.sum()) == len(cells)
    # no wrap-around: a missing left neighbour of column 0 is not the previous row's last cell
    assert _positives(head, [box]) == {(a, r, c) for a in (0, 1) for r, c in cells}


def test_neighbours_all_borders_at_once_in_one_batch():
    boxes = [_box_at(0, 0, 0.2, 0.2), _box_at(GH - 1, GW - 1, 0.8, 0.9), _box_at(2, 0, 0.3, 0.7)]
    expected = {(a, r, c) for a in (0, 1) for r, c in ((0, 0), (GH - 1, GW - 1), (2, 0), (3, 0))}
    assert _positives(_head("neighbours"), boxes) == expected


def test_a_centre_claim_beats_a_neighbour_claim_of_a_later_ground_truth():
    # GT 0 has its centre in cell (1, 2); GT 1 (higher index) has its centre in (1, 3) near the left
    # edge, so it claims (1, 2) as its left neighbour with the same anchors. GT 0 keeps (1, 2).
    head = _head("neighbours")
    boxes = torch.tensor([_box_at(1, 2, 0.5, 0.5), _box_at(1, 3, 0.1, 0.5)], dtype=torch.float64)
    labels = torch.tensor([0, 2])
    raw = torch.zeros(1, 3, GH, GW, 8, dtype=torch.float64, requires_grad=True)
    loss = head.loss(raw, [boxes], [labels], weights=DetectionLossWeights(box=0.0, cls=1.0, obj=0.0, noobj=0.0))
    (grad,) = torch.autograd.grad(loss, raw)
    cls_grad = grad[0, 0, 1, 2, 5:]  # anchor 0, cell (1, 2): BCE gradient σ(0) − target
    assert cls_grad.tolist() == [-0.5, 0.5, 0.5]  # GT 0's class 0, not GT 1's class 2
    # under `centre`, a near-copy in the same cell still goes to the highest index, as before
    boxes2 = torch.tensor([_box_at(1, 2, 0.4, 0.5), _box_at(1, 2, 0.6, 0.5)], dtype=torch.float64)
    raw2 = torch.zeros_like(raw, requires_grad=True)
    loss2 = _head("centre").loss(
        raw2, [boxes2], [labels], weights=DetectionLossWeights(box=0.0, cls=1.0, obj=0.0, noobj=0.0)
    )
    (grad2,) = torch.autograd.grad(loss2, raw2)
    assert grad2[0, 0, 1, 2, 5:].tolist() == [0.5, 0.5, -0.5]


def test_neighbours_ratio_matches_anchors_by_width_and_height_ratio():
    # a 6×14 box: anchor 1 (20×10) is within a ratio of 4 (20/6 = 3.3, 14/10 = 1.4) but its shape IoU is
    # 60/224 = 0.27 < 0.3; anchor 2 (30×30) is neither (30/6 = 5, IoU 84/900)
    anchors = torch.tensor([[6.0, 14.0], [20.0, 10.0], [30.0, 30.0]])
    box = _box_at(1, 2, 0.3, 0.7)
    cells = ((1, 2), (1, 1), (2, 2))
    assert _positives(_head("neighbours", anchors), [box]) == {(0, i, j) for i, j in cells}
    assert _positives(_head("neighbours_ratio", anchors), [box]) == {(a, i, j) for a in (0, 1) for i, j in cells}
    # a 1×60 box is within a ratio of 4 of no anchor: it still claims its best one (by shape IoU, anchor 0)
    thin = _box_at(1, 2, 0.3, 0.7, w=1.0, h=60.0)
    assert _positives(_head("neighbours_ratio", anchors), [thin]) == {(0, i, j) for i, j in cells}


# ------------------------------------------------------------------ parameterisation
def test_decode_boxes_under_neighbours_uses_two_sigma_minus_half():
    raw = torch.zeros(1, 3, GH, GW, 8, dtype=torch.float64)
    # at anchor 0, cell (row 1, column 2): σ(t_x) = 0.5, σ(t_y) = 0.75, w = a_w, h = a_h·e
    raw[0, 0, 1, 2, :4] = torch.tensor([0.0, math.log(3.0), 0.0, 1.0], dtype=torch.float64)
    # at anchor 2, cell (3, 5): σ(t_x) = 0.25, σ(t_y) → 0 (t = −40), w = a_w·e^{-1}, h = a_h
    raw[0, 2, 3, 5, :4] = torch.tensor([-math.log(3.0), -40.0, -1.0, 0.0], dtype=torch.float64)
    out = _head("neighbours").decode_boxes(raw)
    # c_x = (2 + 2·0.5 − 0.5)·8 = 20, c_y = (1 + 2·0.75 − 0.5)·8 = 16, 6 × 14e
    h = 14.0 * math.e
    torch.testing.assert_close(out[0, 0, 1, 2], torch.tensor([17.0, 16 - h / 2, 23.0, 16 + h / 2], dtype=torch.float64))
    # c_x = (5 + 2·0.25 − 0.5)·8 = 40, c_y = (3 + 0 − 0.5)·8 = 20 (the lowest reachable), 30/e × 30
    w = 30.0 / math.e
    torch.testing.assert_close(out[0, 2, 3, 5], torch.tensor([40 - w / 2, 5.0, 40 + w / 2, 35.0], dtype=torch.float64))
    # the same raw values under `centre`: c = (j + σ(t))·s
    torch.testing.assert_close(_head("neighbours_ratio").decode_boxes(raw), out)
    old = _head("centre").decode_boxes(raw)
    torch.testing.assert_close(old[0, 0, 1, 2], torch.tensor([17.0, 14 - h / 2, 23.0, 14 + h / 2], dtype=torch.float64))
    torch.testing.assert_close(old[0, 2, 3, 5], torch.tensor([42 - w / 2, 9.0, 42 + w / 2, 39.0], dtype=torch.float64))


def test_decode_under_neighbours_uses_the_same_boxes():
    head = _head("neighbours").eval()
    raw = torch.full((1, 3, GH, GW, 8), -20.0)
    raw[0, 0, 1, 2, :5] = torch.tensor([-math.log(3.0), math.log(3.0), 0.0, 0.0, 10.0])
    raw[0, 0, 1, 2, 5] = 10.0
    (det,) = head.decode(raw, (GH * S, GW * S), score_threshold=0.5)
    assert det.labels.tolist() == [0]
    torch.testing.assert_close(det.boxes[0], torch.tensor([13.0, 9.0, 19.0, 23.0]))  # centre (16, 16)


def test_the_ignore_overlap_uses_the_neighbours_parameterisation():
    # a prediction at cell (1, 1) with offset 1.5 − ε lands on a ground truth centred in cell (1, 2):
    # under `neighbours` it overlaps it (and is not penalised), under `centre` it cannot reach it
    gt = torch.tensor([[_box_at(1, 2, 0.5, 0.5, w=30.0, h=30.0)]], dtype=torch.float64)
    targets = pad_detection_targets([gt[0]], [torch.tensor([0])], None, device=torch.device("cpu"))
    losses = {}
    for assignment in ("centre", "neighbours"):
        head = _head(assignment)
        raw = torch.zeros(1, 3, GH, GW, 8, dtype=torch.float64)
        raw[0, 2, 0, 0, 0:2] = 40.0  # anchor 2 (30×30) at cell (0, 0): far from the GT unless shifted 1.5 cells
        raw[0, 2, 0, 0, 4] = 5.0  # a confident negative: costly unless ignored
        weights = DetectionLossWeights(box=0.0, cls=0.0, obj=0.0, noobj=1.0)
        losses[assignment] = head.loss_on_targets(raw, targets, weights=weights, ignore_iou=0.5)
    # (0, 0) at offset 1.5 predicts centre (12, 12) vs GT centre (20, 12): IoU 22·30 / (2·900 − 660) ≈ 0.58
    assert losses["neighbours"] < losses["centre"] - 4.0


# ------------------------------------------------------------------ `centre` is unchanged
def _fixed_problem(assignment: str):
    g = torch.Generator().manual_seed(31)
    anchors = torch.tensor([[6.0, 14.0], [12.0, 10.0], [20.0, 36.0]])
    head = _head(assignment, anchors)
    raw = torch.randn(2, 3, 4, 6, 8, generator=g, dtype=torch.float64)
    boxes = [
        torch.tensor(
            [[3.0, 2.0, 9.0, 17.0], [17.0, 6.0, 23.0, 20.0], [18.0, 7.0, 24.0, 21.0], [30.0, 10.0, 46.0, 30.0]]
        ),
        torch.tensor([[0.0, 20.0, 12.0, 32.0], [40.0, 0.0, 47.0, 15.0]]),
    ]
    labels = [torch.tensor([0, 1, 2, 0]), torch.tensor([2, 1])]
    ignore: list[Tensor | None] = [torch.tensor([[24.0, 0.0, 40.0, 8.0]]), None]
    return head, raw, boxes, labels, ignore


def _fixed_loss(assignment: str) -> tuple[float, float, dict[str, float]]:
    head, raw, boxes, labels, ignore = _fixed_problem(assignment)
    raw.requires_grad_(True)
    details: dict = {}
    weights = DetectionLossWeights(box=3.0, cls=0.5, obj=2.0, noobj=0.25)
    loss = head.loss(raw, boxes, labels, ignore, details=details, weights=weights)
    (grad,) = torch.autograd.grad(loss, raw)
    return loss.item(), grad.abs().sum().item(), {k: v.item() for k, v in details.items()}


def test_centre_gives_the_loss_recorded_before_the_option_existed():
    loss, grad_l1, details = _fixed_loss("centre")
    # recorded with the head of commit b9e1c36 (no `assignment` option) on the same input, float64
    assert loss == pytest.approx(38.0435024876778, rel=1e-12)
    assert grad_l1 == pytest.approx(23.820907112790366, rel=1e-12)
    assert details == pytest.approx(
        {"det_box": 4.465376151769826, "det_cls": 9.383423076117008, "det_obj": 19.95566249430982}, rel=1e-12
    )


def test_neighbours_loss_differs_and_has_finite_gradients():
    loss_c, _, details_c = _fixed_loss("centre")
    loss_n, grad_l1, details_n = _fixed_loss("neighbours")
    assert math.isfinite(loss_n) and math.isfinite(grad_l1) and grad_l1 > 0
    assert loss_n != pytest.approx(loss_c)
    assert details_n["det_cls"] > details_c["det_cls"]  # more positives: more class terms


def test_neighbours_loss_ignores_padding_and_unlabelled_images():
    head, raw, boxes, labels, ignore = _fixed_problem("neighbours")
    base = head.loss(raw, boxes, labels, ignore)
    device = torch.device("cpu")
    padded = pad_detection_targets(boxes, labels, ignore, device=device, num_boxes=9, num_ignore=3)
    torch.testing.assert_close(head.loss_on_targets(raw, padded), base)
    # a third image with boxes but not labelled for detection adds nothing
    raw3 = torch.cat([raw, torch.randn(1, *raw.shape[1:], dtype=raw.dtype)])
    extra = boxes + [torch.tensor([[8.0, 8.0, 20.0, 30.0]])]
    targets = pad_detection_targets(extra, labels + [torch.tensor([1])], ignore + [None], device=device)
    labelled = torch.tensor([True, True, False])
    torch.testing.assert_close(head.loss_on_targets(raw3, targets, labelled=labelled), base)


# ------------------------------------------------------------------ the option
def test_the_option_defaults_to_centre_and_reaches_the_head():
    assert TrainConfig().model.det_assignment == "centre"
    assert resnet10_multitask(width=0.25, image_height=64).det_head.assignment == "centre"
    config = TrainConfig.model_validate({"model": {"det_assignment": "neighbours"}})
    model = build_model(config, None)
    assert model.det_head.assignment == "neighbours"
    ratio = TrainConfig.model_validate({"model": {"det_assignment": "neighbours_ratio"}})
    assert build_model(ratio, None).det_head.assignment == "neighbours_ratio"
    # the option changes no parameter: a checkpoint of either loads into the other
    model.load_state_dict(build_model(TrainConfig(), None).state_dict())
    with pytest.raises(ValueError, match="det_assignment"):
        TrainConfig.model_validate({"model": {"det_assignment": "nearest"}})
    with pytest.raises(ValueError, match="assignment must be one of"):
        _head("nearest")


def test_the_config_offers_exactly_the_heads_assignments():
    from typing import get_args

    from taskweight.config import ModelConfig
    from taskweight.models.detection import DET_ASSIGNMENTS

    assert get_args(ModelConfig.model_fields["det_assignment"].annotation) == DET_ASSIGNMENTS
