"""The batch-vectorised YOLO detection loss equals the former per-image loop implementation.

``reference_loss`` is a verbatim copy (as a free function) of ``YoloDetectionHead.loss`` as it
was before vectorisation: a Python loop over the images with per-image target assignment. The
vectorised loss must reproduce its value, its gradient w.r.t. the raw predictions and its
``details`` on many random batches, including the corner cases (empty images, no boxes in the
whole batch, ignore regions, several ground truths claiming the same anchor and cell).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_iou, generalized_box_iou_loss

from taskweight.models.detection import DetectionLossWeights, YoloDetectionHead, _giou_loss, _pairwise_iou

RTOL = ATOL = 1e-5


def reference_loss(
    head: YoloDetectionHead,
    raw: Tensor,
    boxes: list[Tensor],
    labels: list[Tensor],
    ignore_boxes: list[Tensor] | None = None,
    *,
    weights: DetectionLossWeights = DetectionLossWeights(),
    match_iou: float = 0.3,
    ignore_iou: float = 0.6,
    details: dict[str, float] | None = None,
    stats: dict[str, int] | None = None,
) -> Tensor:
    """The per-image loop loss, copied unchanged (``self`` → ``head``).

    The only addition is ``stats``, which counts how often each special case occurred so the
    random tests can check that they exercise it; it does not change the result.
    """
    num_images = raw.shape[0]
    if num_images == 0:
        raise ValueError("detection loss needs at least one labelled image")
    pred_boxes = head.decode_boxes(raw)
    a_count, gh, gw = raw.shape[1:4]
    obj_logit = raw[..., 4]
    total_box = raw.new_zeros(())
    total_cls = raw.new_zeros(())
    obj_target = torch.zeros_like(obj_logit)
    obj_weight = torch.full_like(obj_logit, weights.noobj)
    for i in range(num_images):
        gt = boxes[i].to(raw.dtype)
        ign = ignore_boxes[i] if ignore_boxes is not None else None
        flat_pred = pred_boxes[i].reshape(-1, 4)
        if ign is not None and ign.numel():
            centres = (flat_pred[:, :2] + flat_pred[:, 2:]) / 2
            inside = (
                (centres[:, None, 0] >= ign[None, :, 0])
                & (centres[:, None, 0] <= ign[None, :, 2])
                & (centres[:, None, 1] >= ign[None, :, 1])
                & (centres[:, None, 1] <= ign[None, :, 3])
            ).any(dim=1)
            obj_weight[i].view(-1)[inside] = 0.0
            if stats is not None:
                stats["region_ignored"] = stats.get("region_ignored", 0) + int(inside.sum())
        if gt.numel() == 0:
            continue
        with torch.no_grad():
            overlap = box_iou(flat_pred.detach(), gt).amax(dim=1)
            obj_weight[i].view(-1)[overlap > ignore_iou] = 0.0
            wh = (gt[:, 2:] - gt[:, :2]).clamp(min=1e-3)
            inter = torch.minimum(wh[:, None, :], head.anchors[None]).prod(-1)
            shape_iou = inter / (wh.prod(-1)[:, None] + head.anchors.prod(-1)[None] - inter)
            match = shape_iou > match_iou
            match[torch.arange(len(gt)), shape_iou.argmax(dim=1)] = True
            centre = (gt[:, :2] + gt[:, 2:]) / 2
            gx = (centre[:, 0] / head.stride).long().clamp(0, gw - 1)
            gy = (centre[:, 1] / head.stride).long().clamp(0, gh - 1)
            gt_idx, anchor_idx = match.nonzero(as_tuple=True)
            owner = torch.full((a_count, gh, gw), -1, dtype=torch.long, device=raw.device)
            owner[anchor_idx, gy[gt_idx], gx[gt_idx]] = gt_idx
            pos = owner >= 0
            assigned = owner[pos]
            if stats is not None:
                claims = torch.zeros((a_count, gh, gw), dtype=torch.long)
                claims.index_put_((anchor_idx, gy[gt_idx], gx[gt_idx]), torch.ones_like(gt_idx), accumulate=True)
                stats["conflicts"] = stats.get("conflicts", 0) + int((claims > 1).sum())
                stats["overlap_ignored"] = stats.get("overlap_ignored", 0) + int((overlap > ignore_iou).sum())
                stats["positives"] = stats.get("positives", 0) + int(pos.sum())
        obj_target[i][pos] = 1.0
        obj_weight[i][pos] = weights.obj
        total_box = total_box + generalized_box_iou_loss(pred_boxes[i][pos], gt[assigned], reduction="sum")
        cls_target = F.one_hot(labels[i][assigned], head.num_classes).to(raw.dtype)
        total_cls = total_cls + F.binary_cross_entropy_with_logits(raw[i][pos][:, 5:], cls_target, reduction="sum")
    total_obj = (F.binary_cross_entropy_with_logits(obj_logit, obj_target, reduction="none") * obj_weight).sum()
    loss = (weights.box * total_box + weights.cls * total_cls + total_obj) / num_images
    if details is not None:
        details["det_box"] = float(total_box.detach()) / num_images
        details["det_cls"] = float(total_cls.detach()) / num_images
        details["det_obj"] = float(total_obj.detach()) / num_images
    return loss


# ---------------------------------------------------------------------------- helpers
def _head(anchors: Tensor, num_classes: int = 3) -> YoloDetectionHead:
    return YoloDetectionHead({"s8": 4, "s16": 4, "s32": 4}, num_classes=num_classes, anchors=anchors, channels=4)


def _random_problem(g: torch.Generator, *, dtype: torch.dtype = torch.float32, no_boxes: bool = False):
    """A random batch: predictions, boxes (overlapping, shared cells, off-image centres), ignore regions."""
    b = int(torch.randint(1, 7, (), generator=g))
    a = int(torch.randint(3, 6, (), generator=g))
    k = 3
    gh, gw = 4, 12
    height, width = gh * 8, gw * 8
    anchors = torch.rand(a, 2, generator=g) * 34 + 6
    head = _head(anchors, k)
    raw = torch.randn(b, a, gh, gw, 5 + k, generator=g, dtype=torch.float64) * 1.5
    raw[..., :4] *= 0.5  # boxes near their anchors, so predictions overlap the ground truths often
    boxes, labels = [], []
    for _ in range(b):
        n = 0 if no_boxes or torch.rand((), generator=g) < 0.15 else int(torch.randint(0, 13, (), generator=g))
        out = []
        for j in range(n):
            if j and torch.rand((), generator=g) < 0.4:  # near-copy of an earlier box: same cell, same anchor
                src = out[int(torch.randint(0, j, (), generator=g))]
                box = src + (torch.rand(4, generator=g) - 0.5) * 2
            else:
                c = torch.rand(2, generator=g) * torch.tensor([width + 8.0, height + 8.0]) - 4  # some off-image
                wh = torch.rand(2, generator=g) * 40 + 3
                box = torch.cat([c - wh / 2, c + wh / 2])
            if torch.rand((), generator=g) < 0.03:  # a degenerate (zero-width) box
                box[2] = box[0]
            out.append(box)
        boxes.append(torch.stack(out) if out else torch.zeros(0, 4))
        labels.append(torch.randint(0, k, (n,), generator=g))
    ignore: list[Tensor | None] | None
    if torch.rand((), generator=g) < 0.2:
        ignore = None
    else:
        ignore = []
        for _ in range(b):
            u = float(torch.rand((), generator=g))
            if u < 0.1:
                ignore.append(None)
                continue
            m = int(torch.randint(0, 4, (), generator=g))
            lo = torch.rand(m, 2, generator=g) * torch.tensor([width, height])
            hi = lo + torch.rand(m, 2, generator=g) * 30
            ignore.append(torch.cat([lo, hi], dim=1))
    return head, raw.to(dtype), boxes, labels, ignore


def _compare(head, raw, boxes, labels, ignore, **kw):
    raw_ref = raw.detach().clone().requires_grad_(True)
    raw_new = raw.detach().clone().requires_grad_(True)
    d_ref: dict = {}
    d_new: dict = {}
    stats: dict = {}
    ref = reference_loss(head, raw_ref, boxes, labels, ignore, details=d_ref, stats=stats, **kw)
    new = head.loss(raw_new, boxes, labels, ignore, details=d_new, **kw)
    assert new.dtype == ref.dtype and new.ndim == 0
    torch.testing.assert_close(new, ref, rtol=RTOL, atol=ATOL)
    (g_ref,) = torch.autograd.grad(ref, raw_ref)
    (g_new,) = torch.autograd.grad(new, raw_new)
    torch.testing.assert_close(g_new, g_ref, rtol=RTOL, atol=ATOL)
    assert set(d_new) == set(d_ref) == {"det_box", "det_cls", "det_obj"}
    for key, value in d_new.items():
        assert isinstance(value, Tensor) and value.ndim == 0 and not value.requires_grad
        assert value.item() == pytest.approx(d_ref[key], rel=RTOL, abs=ATOL)
    return stats


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vectorised_loss_matches_loop_reference_on_random_batches(dtype):
    g = torch.Generator().manual_seed(1234)
    totals: dict[str, int] = {}
    for _ in range(60):
        head, raw, boxes, labels, ignore = _random_problem(g, dtype=dtype)
        stats = _compare(head, raw, boxes, labels, ignore)
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
    # the random batches exercise every special case
    assert totals["conflicts"] > 20, totals
    assert totals["overlap_ignored"] > 20, totals
    assert totals["region_ignored"] > 20, totals
    assert totals["positives"] > 200, totals


def test_vectorised_loss_matches_reference_with_other_weights_and_thresholds():
    g = torch.Generator().manual_seed(7)
    weights = DetectionLossWeights(box=3.0, cls=0.5, obj=2.0, noobj=0.25)
    for _ in range(15):
        head, raw, boxes, labels, ignore = _random_problem(g)
        _compare(head, raw, boxes, labels, ignore, weights=weights, match_iou=0.15, ignore_iou=0.4)


def test_batch_without_any_box_and_empty_images():
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        head, raw, boxes, labels, ignore = _random_problem(g, no_boxes=True)
        _compare(head, raw, boxes, labels, ignore)
    # one image, no boxes, no ignore list at all: only the negatives' objectness term remains
    head = _head(torch.tensor([[16.0, 16.0], [8.0, 24.0], [30.0, 20.0]]))
    raw = torch.randn(1, 3, 4, 12, 8, generator=g)
    details: dict = {}
    loss = head.loss(raw, [torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)], None, details=details)
    expected = F.binary_cross_entropy_with_logits(raw[..., 4], torch.zeros_like(raw[..., 4]), reduction="sum")
    torch.testing.assert_close(loss, expected)
    assert details["det_box"].item() == 0.0 and details["det_cls"].item() == 0.0


def test_highest_gt_index_wins_a_shared_anchor_and_cell():
    """Two identical ground truths with different labels: the later one owns the cell."""
    head = _head(torch.tensor([[16.0, 16.0]]), num_classes=2)
    raw = torch.zeros(1, 1, 3, 4, 7, requires_grad=True)
    box = torch.tensor([[8.0, 8.0, 24.0, 24.0]])
    for order in ([0, 1], [1, 0]):
        loss = head.loss(raw, [box.repeat(2, 1)], [torch.tensor(order)], None)
        (grad,) = torch.autograd.grad(loss, raw)
        cls_grad = grad[0, 0, 2, 2, 5:]  # d BCE / d logit = σ(0) − target = 0.5 − onehot(label of gt 1)
        winner = order[1]
        assert cls_grad[winner].item() == pytest.approx(-0.5) and cls_grad[1 - winner].item() == pytest.approx(0.5)


def test_hand_worked_single_box():
    """One 3×4 grid image, one 16×16 anchor, one ground truth, all terms computed by hand."""
    head = _head(torch.tensor([[16.0, 16.0]]), num_classes=2)
    raw = torch.zeros(1, 1, 3, 4, 7)  # B, A, H/8, W/8, 5 + K
    # GT [8, 8, 24, 24] (label 1): centre (16, 16) → cell gx = 16/8 = 2, gy = 2; its 16×16 shape
    # equals the anchor (shape IoU 1 > 0.3), so the only positive is (anchor 0, row 2, col 2).
    # With zero raw values a cell (i, j) predicts centre ((j + σ(0))·8, (i + σ(0))·8) = ((j+.5)·8, (i+.5)·8)
    # and size 16·e⁰ = 16, so the positive predicts [12, 12, 28, 28]:
    #   intersection [12, 12, 24, 24] = 12·12 = 144, union 256 + 256 − 144 = 368, IoU = 144/368
    #   enclosing box [8, 8, 28, 28] = 20·20 = 400, GIoU = 144/368 − (400 − 368)/400 = 0.391304 − 0.08
    #   box term = 1 − GIoU = 0.688696
    raw[0, 0, 2, 2, 4] = 2.0  # objectness logit of the positive
    raw[0, 0, 2, 2, 5:] = torch.tensor([1.0, -1.0])  # class logits of the positive (label 1)
    # cell (1, 1) moves its centre to (1 + σ(20))·8 ≈ 16 in x and y: it predicts [8, 8, 24, 24], IoU 1 > 0.6
    # with the GT, so this negative is not penalised (obj weight 0).
    raw[0, 0, 1, 1, :2] = 20.0
    # the ignore region [0, 0, 8, 8] holds the predicted centre (4, 4) of cell (0, 0) (weight 0), and no
    # other centre (the next ones are (12, 4) and (4, 12)).
    ignore = [torch.tensor([[0.0, 0.0, 8.0, 8.0]])]
    # every other negative overlaps the GT by at most 144/368 < 0.6 (e.g. cell (2, 1): [4, 12, 20, 28]).
    details: dict = {}
    loss = head.loss(raw, [torch.tensor([[8.0, 8.0, 24.0, 24.0]])], [torch.tensor([1])], ignore, details=details)

    box = 1 - (144 / 368 - (400 - 368) / 400)  # 0.688696
    # cls: BCE(1, target 0) + BCE(−1, target 1) = log(1 + e¹) + log(1 + e¹) = 2·1.313262 = 2.626523
    cls = 2 * math.log1p(math.exp(1.0))
    # obj: positive BCE(2, 1) = log(1 + e⁻²) = 0.126928; 12 cells − 1 positive − 2 unpenalised = 9
    # negatives with BCE(0, 0) = log 2 = 0.693147 each → 6.238325; total 6.365253
    obj = math.log1p(math.exp(-2.0)) + 9 * math.log(2.0)
    # loss = (2·box + 1·cls + obj) / 1 image = 1.377391 + 2.626523 + 6.365253 = 10.369168
    assert details["det_box"].item() == pytest.approx(box, rel=1e-5)
    assert details["det_cls"].item() == pytest.approx(cls, rel=1e-5)
    assert details["det_obj"].item() == pytest.approx(obj, rel=1e-5)
    assert loss.item() == pytest.approx(2 * box + cls + obj, rel=1e-5)
    assert loss.item() == pytest.approx(10.369168, rel=1e-5)
    # and the reference agrees
    assert reference_loss(head, raw, [torch.tensor([[8.0, 8.0, 24.0, 24.0]])], [torch.tensor([1])], ignore).item() == (
        pytest.approx(loss.item(), rel=1e-6)
    )


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_half_precision_raw_gives_float32_loss(half):
    g = torch.Generator().manual_seed(11)
    for _ in range(5):
        head, raw, boxes, labels, ignore = _random_problem(g)
        raw_half = raw.to(half).requires_grad_(True)
        loss = head.loss(raw_half, boxes, labels, ignore)
        assert loss.dtype == torch.float32
        expected = head.loss(raw_half.detach().float(), boxes, labels, ignore)  # the same values in fp32
        torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
        (grad,) = torch.autograd.grad(loss, raw_half)
        assert grad.dtype == half and torch.isfinite(grad.float()).all()
        # and close to the fp32 loss of the unrounded predictions
        assert loss.item() == pytest.approx(head.loss(raw, boxes, labels, ignore).item(), rel=0.05)


def test_sync_free_giou_equals_torchvision():
    g = torch.Generator().manual_seed(5)
    a = torch.rand(500, 2, generator=g) * 50
    b = torch.rand(500, 2, generator=g) * 50
    boxes1 = torch.cat([a, a + torch.rand(500, 2, generator=g) * 30], dim=1).requires_grad_(True)
    boxes2 = torch.cat([b, b + torch.rand(500, 2, generator=g) * 30], dim=1)
    ours = _giou_loss(boxes1, boxes2)
    theirs = generalized_box_iou_loss(boxes1, boxes2)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    (g1,) = torch.autograd.grad(ours.sum(), boxes1)
    (g2,) = torch.autograd.grad(theirs.sum(), boxes1)
    torch.testing.assert_close(g1, g2, rtol=0, atol=0)


def test_batched_pairwise_iou_is_torchvisions_box_iou_bit_for_bit():
    """The in-place, three-buffer IoU in either argument order (the loss passes the ground truths
    first) equals torchvision's ``box_iou`` image by image, including empty and zero-area boxes."""
    g = torch.Generator().manual_seed(9)
    corners = torch.rand(3, 40, 2, generator=g) * 100
    preds = torch.cat([corners, corners + torch.rand(3, 40, 2, generator=g) * 30], dim=-1)
    preds[0, :5, 2:] = preds[0, :5, :2]  # zero-area predictions
    corners = torch.rand(3, 6, 2, generator=g) * 100
    gts = torch.cat([corners, corners + torch.rand(3, 6, 2, generator=g) * 40], dim=-1)
    gts[1, 0] = preds[1, 3]  # one exact match: IoU 1
    for first, second in ((gts, preds), (preds, gts)):
        ours = _pairwise_iou(first, second)
        assert ours.shape == (3, len(first[0]), len(second[0]))
        for b in range(3):
            assert torch.equal(ours[b], box_iou(first[b], second[b])), b
    assert _pairwise_iou(gts, preds)[1, 0, 3] == 1.0
    assert torch.equal(_pairwise_iou(gts, preds), _pairwise_iou(preds, gts).transpose(1, 2))


def test_boxes_from_raw_values_by_hand():
    """c = (cell + σ(t_xy))·8, (w, h) = anchor·exp(min(t_wh, 4)): σ(0) = ½, exp(0) = 1, exp(ln 2) = 2, and
    t_w = 9 is clamped to 4."""
    head = YoloDetectionHead({"s8": 8, "s16": 8, "s32": 8}, num_classes=1, anchors=torch.tensor([[10.0, 20.0]]))
    raw = torch.tensor([[0.0, 0.0, 0.0, math.log(2.0)], [0.0, 0.0, 9.0, 0.0]])
    boxes = head.boxes_from(raw, torch.tensor([[3.0, 1.0], [0.0, 0.0]]), torch.tensor([10.0, 20.0]))
    # cell (j, i) = (3, 1): centre (28, 12), size (10, 40); cell (0, 0): centre (4, 4), size (10·e⁴, 20)
    expected = torch.tensor([[23.0, -8.0, 33.0, 32.0], [4 - 5 * math.exp(4), -6.0, 4 + 5 * math.exp(4), 14.0]])
    torch.testing.assert_close(boxes, expected)
    grid = head.decode_boxes(torch.zeros(1, 1, 2, 3, 6))  # every t = 0 on a 2×3 grid: centres (8j + 4, 8i + 4)
    torch.testing.assert_close(grid[0, 0, 1, 2], torch.tensor([15.0, 2.0, 25.0, 22.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loss_matches_and_does_not_synchronise():
    g = torch.Generator().manual_seed(21)
    for _ in range(10):
        head, raw, boxes, labels, ignore = _random_problem(g)
        ref = head.loss(raw, boxes, labels, ignore)
        dev = torch.device("cuda")
        head = head.to(dev)
        boxes_d = [t.to(dev) for t in boxes]
        labels_d = [t.to(dev) for t in labels]
        ignore_d = None if ignore is None else [None if t is None else t.to(dev) for t in ignore]
        raw_d = raw.to(dev).requires_grad_(True)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            details: dict = {}
            loss = head.loss(raw_d, boxes_d, labels_d, ignore_d, details=details)
            loss.backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        torch.testing.assert_close(loss.cpu(), ref, rtol=1e-4, atol=1e-4)
        assert all(v.device.type == "cuda" for v in details.values())
