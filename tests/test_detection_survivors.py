"""Detection head behaviours the other detection tests left open (issue 18, mutation survivors).

Checked against values worked out by hand (arithmetic in the comments), against torchvision's
``generalized_box_iou_loss`` (the reference ``_giou_loss`` documents), or against the loss of a
smaller, equivalent problem:

* the conv-BN-ReLU fuse block by hand, and the 5×5 receptive field of the two fuse blocks;
* anchor validation and storage, and the initial objectness / class prior (1 % / 10 %);
* box decoding: dtype kept, size saturating at e⁴ times the anchor;
* GIoU loss of touching and of sub-pixel boxes (the 1e-7 guards);
* argument validation of the loss, and unlabelled images whose label lists do not fit their boxes;
* closed DontCare regions, strict ``ignore_iou`` / ``match_iou`` thresholds, the grid clamp of a
  centre above the image, sub-pixel ground truths, and the dtypes of boxes and labels;
* the padded targets a CUDA graph needs: the loss on them with its own default thresholds, and the
  padded shapes of empty images and of an empty batch.

Grid: image 16×24 px → 2 rows × 3 columns at stride 8. With every raw value 0 a cell (i, j) predicts
the centre ((j + ½)·8, (i + ½)·8) and an anchor-sized box, and ∂BCE(0, y)/∂x = σ(0) − y = ±½, so the
objectness gradient tells a positive (−½), a penalised negative (+½) and an unpenalised one (0) apart.
"""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import generalized_box_iou_loss

from taskweight.models.detection import YoloDetectionHead, _conv_bn_relu, _giou_loss, pad_detection_targets

F64 = torch.float64
GH, GW, K = 2, 3, 3
ANCHORS = [(8.0, 8.0), (24.0, 4.0), (4.0, 20.0)]
LN2 = math.log(2.0)


def _head(anchors=ANCHORS, num_classes: int = K, channels: int = 4) -> YoloDetectionHead:
    chans = {"s8": 4, "s16": 4, "s32": 4}
    return YoloDetectionHead(chans, num_classes=num_classes, anchors=torch.tensor(anchors), channels=channels)


def _zeros(num_anchors: int = len(ANCHORS), batch: int = 1, dtype=F64) -> torch.Tensor:
    return torch.zeros(batch, num_anchors, GH, GW, 5 + K, dtype=dtype)


def _boxes(rows) -> list[torch.Tensor]:
    return [torch.tensor(rows, dtype=F64).reshape(-1, 4)]


def _obj_grad(head, raw, boxes, labels, ignore=None, **kw) -> torch.Tensor:
    """∂L/∂(objectness logit) of image 0, shape (A, GH, GW)."""
    raw = raw.clone().requires_grad_(True)
    loss = head.loss(raw, boxes, labels, ignore, **kw)
    (grad,) = torch.autograd.grad(loss, raw)
    return grad[0, ..., 4]


def _cells_with(grad: torch.Tensor, value: float) -> set[tuple[int, int, int]]:
    return {tuple(c) for c in (grad - value).abs().lt(1e-9).nonzero().tolist()}


# ------------------------------------------------------------------ conv-BN-ReLU and the fuse path


def _block_by_hand() -> tuple[torch.nn.Sequential, torch.Tensor, list[list[float]]]:
    """A 1→1 channel block whose 3×3 kernel is 2 at the centre and −1 left of it: y[i, j] = 2·x[i, j] − x[i, j−1]
    (zero padding keeps the 2×3 size). x = [[1, −2, 3], [4, 0, −1]] →
    y = [[2, −4 − 1, 6 + 2], [8, 0 − 4, −2 − 0]] = [[2, −5, 8], [8, −4, −2]]."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        block = _conv_bn_relu(1, 1).double()
    with torch.no_grad():
        block[0].weight.zero_()
        block[0].weight[0, 0, 1, 1] = 2.0
        block[0].weight[0, 0, 1, 0] = -1.0
    x = torch.tensor([[1.0, -2.0, 3.0], [4.0, 0.0, -1.0]], dtype=F64)[None, None]
    return block, x, [[2.0, -5.0, 8.0], [8.0, -4.0, -2.0]]


def test_conv_bn_relu_block_in_eval_mode_by_hand():
    # fresh BatchNorm in eval mode: running mean 0, variance 1, γ = 1, β = 0 → y / √(1 + 1e-5), then ReLU;
    # the convolution has no bias of its own (BatchNorm's β is the shift)
    block, x, y = _block_by_hand()
    assert block[0].bias is None
    out = block.eval()(x)
    expected = [[max(v, 0.0) / math.sqrt(1 + 1e-5) for v in row] for row in y]  # [[2, 0, 8], [8, 0, 0]]/√1.00001
    assert out.shape == (1, 1, 2, 3)
    assert out[0, 0].tolist() == [pytest.approx(row, rel=1e-12, abs=1e-12) for row in expected]


def test_conv_bn_relu_block_in_train_mode_normalises_over_the_map():
    # batch statistics of y: mean = (2 − 5 + 8 + 8 − 4 − 2)/6 = 7/6;
    # biased variance = (4 + 25 + 64 + 64 + 16 + 4)/6 − (7/6)² = 177/6 − 49/36 = 1013/36
    block, x, y = _block_by_hand()
    out = block.train()(x)
    mean, var = 7 / 6, 1013 / 36
    expected = [[max((v - mean) / math.sqrt(var + 1e-5), 0.0) for v in row] for row in y]
    assert expected[0][1] == 0.0 and expected[0][2] > 1  # the ReLU cuts the negatives
    assert out[0, 0].tolist() == [pytest.approx(row, rel=1e-12, abs=1e-12) for row in expected]


def test_a_prediction_sees_a_five_by_five_window_of_the_fused_map():
    # two 3×3 conv blocks after the (1×1) laterals: changing the stride-8 map at one cell changes the raw
    # predictions at every cell within 2 rows and 2 columns of it, and nowhere else
    with torch.random.fork_rng():
        torch.manual_seed(3)
        head = _head(channels=8).double().eval()
        feats = {
            "s8": torch.randn(1, 4, 7, 7, dtype=F64),
            "s16": torch.randn(1, 4, 4, 4, dtype=F64),
            "s32": torch.randn(1, 4, 2, 2, dtype=F64),
        }
    with torch.no_grad():
        base = head(feats)
        bumped = {**feats, "s8": feats["s8"].clone()}
        bumped["s8"][0, :, 3, 3] += torch.tensor([5.0, -4.0, 3.0, 6.0], dtype=F64)
        changed = (head(bumped) - base).abs().amax(dim=(0, 1, 4)) > 1e-9  # H×W
    window = {(i, j) for i in range(1, 6) for j in range(1, 6)}
    assert {tuple(c) for c in changed.nonzero().tolist()} == window


# ------------------------------------------------------------------ anchors and the initial prior


def _re_list(values) -> str:
    """The anchors as the error message lists them, as a regular expression."""
    return str(torch.tensor(values, dtype=torch.float32).tolist()).replace("[", r"\[").replace("]", r"\]")


@pytest.mark.parametrize(
    "anchors",
    [
        [[8.0, 0.0]],  # zero height
        [[8.0, 8.0], [-1.0, 4.0]],  # negative width
        [[8.0, 8.0, 8.0]],  # A×3
        [8.0, 8.0],  # not 2-D
    ],
)
def test_anchors_must_be_an_a_by_2_table_of_positive_sizes(anchors):
    with pytest.raises(ValueError, match=r"positive \(w, h\), got " + _re_list(anchors)):
        _head(anchors)


def test_sub_pixel_and_integer_anchors_are_stored_as_float32():
    # any positive size is valid, below one pixel too; the buffer is float32 whatever the input type
    small = _head([[0.5, 0.25], [1.0, 3.0]])
    assert small.anchors.dtype == torch.float32 and small.anchors.tolist() == [[0.5, 0.25], [1.0, 3.0]]
    for given in ([[8, 16]], torch.tensor([[8.0, 16.0]], dtype=F64)):
        head = YoloDetectionHead({"s8": 4, "s16": 4, "s32": 4}, num_classes=K, anchors=given, channels=4)
        assert head.anchors.dtype == torch.float32 and head.anchors.tolist() == [[8.0, 16.0]]


def test_initial_predictions_are_anchor_boxes_with_a_one_percent_object_prior():
    # with the prediction convolution's weights at zero only its initial bias is left: objectness
    # σ(b_obj) = 0.01 (low prior), every class σ(b_cls) = 0.1, and t = 0 (the anchor box on the cell centre)
    head = _head().double().eval()
    with torch.no_grad():
        head.pred.weight.zero_()
        feats = {"s8": torch.randn(1, 4, GH, GW, dtype=F64), "s16": torch.randn(1, 4, 1, 2, dtype=F64)}
        raw = head({**feats, "s32": torch.randn(1, 4, 1, 1, dtype=F64)})
    assert raw.shape == (1, 3, GH, GW, 5 + K)
    assert torch.sigmoid(raw[..., 4]).flatten().tolist() == pytest.approx([0.01] * 18, rel=1e-6)
    assert torch.sigmoid(raw[..., 5:]).flatten().tolist() == pytest.approx([0.1] * 54, rel=1e-6)
    assert torch.count_nonzero(raw[..., :4]).item() == 0
    # so an empty image costs 18 cells × BCE(logit 0.01, 0) = 18·(−ln 0.99) at the start
    loss = head.loss(raw, _boxes([]), [torch.zeros(0, dtype=torch.long)])
    assert loss.item() == pytest.approx(-18 * math.log(0.99), rel=1e-6)


# ------------------------------------------------------------------ decode_boxes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, F64])
def test_decoded_boxes_keep_the_dtype_of_the_predictions(dtype):
    # raw 0 at anchor A0 (8×8), cell (1, 2): centre (20, 12) → [16, 8, 24, 16] (exact in every dtype)
    boxes = _head().decode_boxes(_zeros(dtype=dtype))
    assert boxes.dtype == dtype
    assert boxes[0, 0, 1, 2].tolist() == [16.0, 8.0, 24.0, 16.0]


@pytest.mark.parametrize(("t", "power"), [(3.0, 3.0), (4.0, 4.0), (4.5, 4.0), (1e3, 4.0)])
def test_box_size_saturates_at_e4_times_the_anchor(t, power):
    # w = a_w·e^{min(t_w, 4)}, h = a_h·e^{min(t_h, 4)}: a huge t gives a finite box, not inf
    raw = _zeros()
    raw[0, 1, 0, 0, 2:4] = t  # anchor (24, 4), cell (0, 0): centre (4, 4)
    box = _head().decode_boxes(raw)[0, 1, 0, 0].tolist()
    w, h = 24 * math.exp(power), 4 * math.exp(power)
    assert box == pytest.approx([4 - w / 2, 4 - h / 2, 4 + w / 2, 4 + h / 2], rel=1e-12)


# ------------------------------------------------------------------ GIoU loss


@pytest.mark.parametrize(
    ("other", "coord"),
    [
        ([1.0, 2.0, 3.0, 4.0], 3),  # touches b = [0, 0, 2, 2] along y = 2, overlapping x ∈ [1, 2]
        ([2.0, 1.0, 4.0, 3.0], 2),  # touches it along x = 2, overlapping y ∈ [1, 2]
    ],
)
def test_giou_gradient_of_boxes_that_touch(other, coord):
    # inter = 0, union U = 4 + 4 = 8, hull C = 3·4 = 4·3 = 12: L = 1 − 0 + (C − U)/C = 4/3.
    # Moving b's touching edge outwards grows U by b's side (2) and not C, and the empty intersection has no
    # gradient (as in torchvision): ∂L/∂(that edge) = −2/C = −1/6. (Differentiating the overlap product
    # instead would add ∂I/∂edge = 1: ∂L/∂edge = −1/U − 1/C = −5/24.)
    box = torch.tensor([0.0, 0.0, 2.0, 2.0], dtype=F64, requires_grad=True)
    ours = _giou_loss(box, torch.tensor(other, dtype=F64))
    assert ours.item() == pytest.approx(4 / 3, rel=1e-7)
    (grad,) = torch.autograd.grad(ours, box)
    assert grad[coord].item() == pytest.approx(-1 / 6, rel=1e-7)
    ref_box = box.detach().clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(generalized_box_iou_loss(ref_box, torch.tensor(other, dtype=F64)), ref_box)
    torch.testing.assert_close(grad, ref, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        # the same 1e-3 square: I = U = C = 1e-6, L = 1 − 1e-6/(1e-6 + 1e-7) − 0 = 1 − 1/1.1 = 1/11 (≥ 0)
        ([0.0, 0.0, 1e-3, 1e-3], 1 / 11),
        # the square next to it: I = 0, U = 2e-6, C = 3e-6, L = 1 + (C − U)/(C + 1e-7) = 1 + 1/3.1
        ([2e-3, 0.0, 3e-3, 1e-3], 1 + 1 / 3.1),
    ],
)
def test_giou_of_sub_pixel_boxes_uses_the_guard_in_both_divisions(other, expected):
    box = torch.tensor([0.0, 0.0, 1e-3, 1e-3], dtype=F64)
    ours = _giou_loss(box, torch.tensor(other, dtype=F64))
    assert ours.item() == pytest.approx(expected, rel=1e-9)
    assert ours.item() == generalized_box_iou_loss(box, torch.tensor(other, dtype=F64)).item()


# ------------------------------------------------------------------ loss: arguments


def test_loss_needs_an_image():
    with pytest.raises(ValueError, match="at least one labelled image"):
        _head().loss(_zeros(batch=0), [], [])


@pytest.mark.parametrize(("n_boxes", "n_labels"), [(2, 1), (1, 2), (2, 3)])
def test_loss_needs_one_box_and_one_label_list_per_image(n_boxes, n_labels):
    empty_boxes, empty_labels = torch.zeros(0, 4, dtype=F64), torch.zeros(0, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"got {n_boxes} box and {n_labels} label lists for 2 images"):
        _head().loss(_zeros(batch=2), [empty_boxes] * n_boxes, [empty_labels] * n_labels)


def test_label_count_must_match_box_count_when_every_image_is_labelled():
    boxes = _boxes([[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0]])
    with pytest.raises(ValueError, match=r"label counts \[1\] differ from box counts \[2\]"):
        _head().loss(_zeros(), boxes, [torch.tensor([0])])


def test_unlabelled_images_may_carry_label_lists_that_do_not_fit_their_boxes():
    # image 0 (labelled): two boxes, two labels; image 1 (unlabelled): three boxes, two labels (one short);
    # image 2 (unlabelled): one box, three labels (two too many). Images 1 and 2 add nothing and the mean
    # is over one image, so the loss is image 0's loss alone.
    head = _head()
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(3, 3, GH, GW, 5 + K, generator=g, dtype=F64)
    boxes = [
        torch.tensor([[2.0, 2.0, 10.0, 10.0], [4.0, 10.0, 24.0, 14.0]], dtype=F64),
        torch.tensor([[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0], [16.0, 8.0, 24.0, 16.0]], dtype=F64),
        torch.tensor([[0.0, 0.0, 24.0, 16.0]], dtype=F64),
    ]
    labels = [torch.tensor([0, 2]), torch.tensor([1, 1]), torch.tensor([2, 0, 1])]
    loss = head.loss(raw, boxes, labels, labelled=torch.tensor([True, False, False]))
    alone = head.loss(raw[:1], boxes[:1], labels[:1])
    assert loss.item() == pytest.approx(alone.item(), rel=1e-12)


def test_boxes_and_labels_of_any_dtype_give_the_loss_in_the_predictions_dtype():
    # float64 boxes and int32 / uint8 labels with float32 predictions: the same loss as with float32 boxes
    # and int64 labels, and float32
    head = _head()
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(1, 3, GH, GW, 5 + K, generator=g)
    rows = [[2.0, 2.0, 10.0, 10.0], [4.0, 10.0, 24.0, 14.0]]
    expected = head.loss(raw, [torch.tensor(rows)], [torch.tensor([0, 2])])
    for label_dtype in (torch.int32, torch.uint8):
        loss = head.loss(raw, [torch.tensor(rows, dtype=F64)], [torch.tensor([0, 2], dtype=label_dtype)])
        assert loss.dtype == torch.float32
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


# ------------------------------------------------------------------ loss: DontCare regions


@pytest.mark.parametrize(
    "region",
    [
        [4.0, 0.0, 8.0, 8.0],  # c_x = 4 on its left edge
        [0.0, 0.0, 4.0, 8.0],  # c_x = 4 on its right edge
        [0.0, 4.0, 8.0, 8.0],  # c_y = 4 on its top edge
        [0.0, 0.0, 8.0, 4.0],  # c_y = 4 on its bottom edge
    ],
)
def test_a_predicted_centre_on_the_edge_of_a_dontcare_region_is_inside(region):
    # raw 0: all three anchors at cell (0, 0) predict the centre (4, 4), which lies on the region's edge (a closed
    # box); every other centre ((12, 4), (4, 12), …) is outside. No ground truth: 18 − 3 = 15 penalised cells
    # of BCE(0, 0) = ln 2.
    head = _head()
    raw = _zeros()
    ign = [torch.tensor([region], dtype=F64)]
    no_gt = (_boxes([]), [torch.zeros(0, dtype=torch.long)])
    assert head.loss(raw, *no_gt, ign).item() == pytest.approx(15 * LN2, rel=1e-12)
    grad = _obj_grad(head, raw, *no_gt, ign)
    assert _cells_with(grad, 0.0) == {(0, 0, 0), (1, 0, 0), (2, 0, 0)}


def test_missing_or_empty_dontcare_lists_exempt_nothing():
    # t_x = t_y = −1000 puts the predicted centre of (A0, 0, 0) exactly on the image corner (0, 0): σ(−1000) = 0.
    # "None" for an image means no region (not a degenerate region at the origin), and an empty list of
    # regions is no regions: all 18 cells are penalised negatives, 18·ln 2.
    head = _head()
    raw = _zeros()
    raw[0, 0, 0, 0, :2] = -1000.0
    assert head.decode_boxes(raw)[0, 0, 0, 0, :2].tolist() == [-4.0, -4.0]  # box [−4, −4, 4, 4], centre (0, 0)
    no_gt = (_boxes([]), [torch.zeros(0, dtype=torch.long)])
    for ignore in (None, [None], [], [torch.zeros(0, 4, dtype=F64)]):
        assert head.loss(raw, *no_gt, ignore).item() == pytest.approx(18 * LN2, rel=1e-12), ignore


# ------------------------------------------------------------------ loss: thresholds and assignment


@pytest.mark.parametrize(("ignore_iou", "penalised"), [(0.5, True), (0.45, False)])
def test_a_negative_is_exempt_only_above_ignore_iou(ignore_iou, penalised):
    # GT [0, 0, 8, 16] (8×16, centre (4, 8) → cell (1, 0)); shape IoUs A0 64/128 = .5, A1 32/192 = .17,
    # A2 64/144 = .44 → positives (A0, 1, 0) and (A2, 1, 0).
    # The negative (A0, 0, 0) predicts [0, 0, 8, 8]: IoU with the GT = 64/(64 + 128 − 64) = 0.5 exactly,
    # so it is exempt at ignore_iou 0.45 but penalised at 0.5 ("IoU > ignore_iou").
    # The other negatives overlap less: (A2, 0, 0) [2, −6, 6, 14] 56/152 = .37, (A1, ·, 0) 32/192 = .17.
    grad = _obj_grad(_head(), _zeros(), _boxes([[0.0, 0.0, 8.0, 16.0]]), [torch.tensor([1])], ignore_iou=ignore_iou)
    assert _cells_with(grad, -0.5) == {(0, 1, 0), (2, 1, 0)}
    assert grad[0, 0, 0].item() == pytest.approx(0.5 if penalised else 0.0)
    assert _cells_with(grad, 0.0) == (set() if penalised else {(0, 0, 0)})


@pytest.mark.parametrize(("match_iou", "positives"), [(0.5, {(0, 0, 0)}), (0.49, {(0, 0, 0), (1, 0, 0)})])
def test_a_second_anchor_is_matched_only_above_match_iou(match_iou, positives):
    # anchors (8, 8), (16, 8); GT [0, 0, 8, 8] (centre (4, 4) → cell (0, 0)): shape IoU 1 with A0 (the best,
    # always matched) and 64/128 = 0.5 exactly with A1, matched only when 0.5 > match_iou
    head = _head([(8.0, 8.0), (16.0, 8.0)])
    grad = _obj_grad(head, _zeros(2), _boxes([[0.0, 0.0, 8.0, 8.0]]), [torch.tensor([0])], match_iou=match_iou)
    assert _cells_with(grad, -0.5) == positives


def test_a_sub_pixel_wide_ground_truth_is_matched_by_its_true_shape():
    # anchors (1, 8), (0.5, 8); GT [4, 0, 4.5, 8]: 0.5×8, centre (4.25, 4) → cell (0, 0).
    # Shape IoU: A0 min(.5, 1)·8 = 4 / (4 + 8 − 4) = 0.5;  A1 4 / (4 + 4 − 4) = 1.
    # With match_iou 0.6 only A1 is a positive (the 1e-3 px floor on the size must not make it 1 px wide,
    # which would turn the IoUs into 8/8.008 ≈ 1 for A0 and 4/8.008 ≈ 0.5 for A1).
    head = _head([(1.0, 8.0), (0.5, 8.0)])
    grad = _obj_grad(head, _zeros(2), _boxes([[4.0, 0.0, 4.5, 8.0]]), [torch.tensor([2])], match_iou=0.6)
    assert _cells_with(grad, -0.5) == {(1, 0, 0)}


@pytest.mark.parametrize(
    ("box", "cell"),
    [
        ([0.0, -16.0, 8.0, -8.0], (0, 0, 0)),  # centre (4, −12): row −1.5 → clamped to row 0
        ([16.0, -40.0, 24.0, -32.0], (0, 0, 2)),  # centre (20, −36): row −4.5 → row 0, column 2
    ],
)
def test_a_centre_above_the_image_is_assigned_to_the_top_row(box, cell):
    # 8×8 boxes: shape IoU 1 with A0, .25 with A1 and .29 with A2 → A0 only
    grad = _obj_grad(_head(), _zeros(), _boxes([box]), [torch.tensor([0])])
    assert _cells_with(grad, -0.5) == {cell}


# ------------------------------------------------------------------ padded targets (the CUDA-graph path)


def test_the_loss_on_padded_targets_keeps_the_papers_thresholds_by_default():
    # anchors (8, 8), (16, 8); GT [4, 0, 12, 8], centre (8, 4) → cell (0, 1). Shape IoU 1 with A0 and
    # 64/128 = 0.5 with A1: both positives at match_iou 0.3, only A0 at 1.3. The negative (A0, 0, 0) with
    # t_x = 10 predicts the centre (8·σ(10), 4) ≈ (7.9996, 4), an 8×8 box ≈ the GT (IoU 0.9999): exempt at
    # ignore_iou 0.6, penalised at 1.6. Called without thresholds, loss_on_targets must be loss at (0.3, 0.6).
    head = _head([(8.0, 8.0), (16.0, 8.0)])
    raw = _zeros(2)
    raw[0, 0, 0, 0, 0] = 10.0
    boxes, labels = _boxes([[4.0, 0.0, 12.0, 8.0]]), [torch.tensor([1])]
    targets = pad_detection_targets(boxes, labels, None, device=raw.device, num_boxes=8)
    at_defaults = head.loss_on_targets(raw, targets).item()
    assert at_defaults == pytest.approx(head.loss(raw, boxes, labels, match_iou=0.3, ignore_iou=0.6).item(), rel=1e-12)
    for other in ({"match_iou": 1.3}, {"ignore_iou": 1.6}):  # the case tells each threshold apart
        assert head.loss(raw, boxes, labels, **other).item() != pytest.approx(at_defaults, rel=1e-6), other
    grad = _obj_grad(head, raw, boxes, labels)
    assert _cells_with(grad, -0.5) == {(0, 0, 1), (1, 0, 1)} and grad[0, 0, 0].item() == 0.0


def test_padding_is_as_long_as_the_largest_list_unless_asked_for_more():
    cpu = torch.device("cpu")
    no_boxes = [torch.zeros(0, 4), torch.zeros(0, 4)]
    no_labels = [torch.zeros(0, dtype=torch.long)] * 2
    empty = pad_detection_targets(no_boxes, no_labels, None, device=cpu)  # images without objects or DontCare
    assert (empty.boxes.shape, empty.labels.shape, empty.valid.shape) == ((2, 0, 4), (2, 0), (2, 0))
    assert (empty.ignore.shape, empty.ignore_valid.shape) == ((2, 0, 4), (2, 0))
    batch = pad_detection_targets(
        [torch.tensor([[0.0, 0.0, 4.0, 4.0]]), torch.zeros(0, 4)],
        [torch.tensor([2]), torch.zeros(0, dtype=torch.long)],
        [None, torch.tensor([[1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 5.0, 5.0]])],
        device=cpu,
        num_boxes=4,
    )
    assert batch.boxes.shape == (2, 4, 4) and batch.ignore.shape == (2, 2, 4)  # 4 asked for; 2 DontCare at most
    assert batch.valid.tolist() == [[True, False, False, False], [False] * 4]
    assert batch.ignore_valid.tolist() == [[False, False], [True, True]]
    assert batch.labels.tolist() == [[2, 0, 0, 0], [0, 0, 0, 0]]
    # no images at all: nothing to pad, unless fixed sizes are asked for (a graph's shapes)
    for asked, n, m in (({}, 0, 0), ({"num_boxes": 8, "num_ignore": 2}, 8, 2)):
        none = pad_detection_targets([], [], None, device=cpu, **asked)
        assert (none.boxes.shape, none.labels.shape, none.valid.shape) == ((0, n, 4), (0, n), (0, n)), asked
        assert (none.ignore.shape, none.ignore_valid.shape) == ((0, m, 4), (0, m)), asked


def test_padding_needs_one_label_list_per_box_list():
    with pytest.raises(ValueError, match="zip"):  # strict zip: no label list is silently dropped
        pad_detection_targets([torch.zeros(1, 4)] * 2, [torch.tensor([0])], None, device=torch.device("cpu"))
