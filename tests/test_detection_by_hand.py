"""The YOLO detection head worked out by hand on a 2×3 grid (issue 18).

The expected values come from the formulas in :mod:`taskweight.models.detection`'s docstring,
evaluated in plain Python (``math``) in the test, never from the head itself:

* box of anchor a at cell (i, j):  c_x = (j + σ(t_x))·8, c_y = (i + σ(t_y))·8,
  w = a_w·e^{t_w}, h = a_h·e^{t_h};
* a ground truth goes to the cell holding its centre (⌊c/8⌋, clamped to the grid) and to every
  anchor whose shape IoU with it exceeds 0.3, always at least its best one; on a conflict the
  highest ground-truth index wins;
* L = [λ_box·Σ_pos (1 − GIoU) + λ_cls·Σ_pos BCE(cls) + λ_obj·Σ_pos BCE(obj, 1)
       + λ_noobj·Σ_penalised neg BCE(obj, 0)] / (images labelled for detection),
  where a negative is not penalised if its predicted box overlaps a ground truth by IoU > 0.6
  or its predicted centre lies in a DontCare region;
* score = σ(obj)·σ(cls_k); class-wise NMS.

Image 16×24 px → a grid of 2 rows × 3 columns at stride 8.
Anchors (w, h): A0 = (8, 8), A1 = (24, 4) (wide), A2 = (4, 20) (tall).
"""

from __future__ import annotations

import math

import pytest
import torch

from taskweight.models.detection import DetectionLossWeights, YoloDetectionHead

H, W, S = 16, 24, 8
GH, GW = 2, 3
ANCHORS = [(8.0, 8.0), (24.0, 4.0), (4.0, 20.0)]
K = 3
CAR, PED, CYC = 0, 1, 2


def _head() -> YoloDetectionHead:
    return YoloDetectionHead({"s8": 4, "s16": 4, "s32": 4}, num_classes=K, anchors=torch.tensor(ANCHORS), channels=4)


# --------------------------------------------------------------- plain-Python references


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def bce(x: float, y: float) -> float:
    """−[y·log σ(x) + (1−y)·log(1−σ(x))]."""
    return -(y * math.log(sig(x)) + (1 - y) * math.log(1 - sig(x)))


def box_of(t: list[float], a: int, i: int, j: int) -> tuple[float, float, float, float]:
    aw, ah = ANCHORS[a]
    cx, cy = (j + sig(t[0])) * S, (i + sig(t[1])) * S
    w, h = aw * math.exp(t[2]), ah * math.exp(t[3])
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def area(b) -> float:
    return (b[2] - b[0]) * (b[3] - b[1])


def inter(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a, b) -> float:
    i = inter(a, b)
    return i / (area(a) + area(b) - i)


def giou(a, b) -> float:
    i = inter(a, b)
    u = area(a) + area(b) - i
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return i / u - (hull - u) / hull


# ------------------------------------------------------------------- the scenario
#
# Shape IoU of a w×h box with an anchor = min(w,a_w)·min(h,a_h) / (w·h + a_w·a_h − that).
#
# g0 car      [2, 2, 10, 10]  8×8,  centre (6, 6)   → cell (0, 0)
#     A0: 64/64 = 1;  A1: 8·4=32/(64+96−32) = .25;  A2: 4·8=32/(64+80−32) = .286   → A0 only
# g1 pedestrian [6, 0, 10, 16] 4×16, centre (8, 8) on the corner of four cells → ⌊1⌋, ⌊1⌋ = cell (1, 1)
#     A0: 4·8=32/(64+64−32) = .333 > .3;  A1: 4·4=16/144 = .111;  A2: 4·16=64/(64+80−64) = .8
#     → A2 (best) and A0 (above 0.3)
# g2 cyclist  [4, 10, 24, 14] 20×4, centre (14, 12) → cell (1, 1), the *second* anchor fits best
#     A0: 8·4=32/(80+64−32) = .286;  A1: 20·4=80/(80+96−80) = .833;  A2: 4·4=16/144 = .111 → A1 only
# g3 cyclist  [0, 0, 7, 7]   7×7,  centre (3.5, 3.5) → cell (0, 0)
#     A0: 49/64 = .766;  A1: 7·4=28/(49+96−28) = .239;  A2: 4·7=28/(49+80−28) = .277 → A0 only
#     g0 and g3 both claim (A0, 0, 0): the higher index, g3, wins although g0 fits A0 better.
#
# Positives (anchor, row, col) → ground truth:
POSITIVES = {(0, 0, 0): 3, (0, 1, 1): 1, (2, 1, 1): 1, (1, 1, 1): 2}
GTS = [[2.0, 2.0, 10.0, 10.0], [6.0, 0.0, 10.0, 16.0], [4.0, 10.0, 24.0, 14.0], [0.0, 0.0, 7.0, 7.0]]
GT_LABELS = [CAR, PED, CYC, CYC]
DONTCARE = [16.0, 0.0, 24.0, 8.0]  # holds the default predicted centre (20, 4) of every anchor at cell (0, 2)
# Negatives that are not penalised:
#   (1, 0, 0): predicted [2, 2, 10, 7.2] → IoU with g0 = 8·5.2/64 = 0.65 > 0.6
#   (a, 0, 2) for every a: predicted centre (20, 4) inside the DontCare region
# and (2, 0, 0): predicted [2, 2, 10, 6.6] → IoU with g0 = 8·4.6/64 = 0.575 ≤ 0.6: still penalised
UNPENALISED = {(1, 0, 0), (0, 0, 2), (1, 0, 2), (2, 0, 2)}


def _t_for(box, a: int, i: int, j: int) -> list[float]:
    """Raw (t_x, t_y, t_w, t_h) that decode to ``box`` at anchor a, cell (i, j) (inverse formula)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    aw, ah = ANCHORS[a]
    return [logit(cx / S - j), logit(cy / S - i), math.log((box[2] - box[0]) / aw), math.log((box[3] - box[1]) / ah)]


def _scenario_raw(shift: float = 0.0) -> torch.Tensor:
    """Raw predictions (A, GH, GW, 5+K) as nested Python values → tensor (float64)."""
    raw = torch.zeros(len(ANCHORS), GH, GW, 5 + K, dtype=torch.float64)
    n = 0
    for a in range(len(ANCHORS)):
        for i in range(GH):
            for j in range(GW):
                raw[a, i, j, :4] = torch.tensor([0.0, 0.0, math.log(0.25), math.log(0.25)])  # small boxes
                raw[a, i, j, 4] = -1.5 + 0.2 * n + shift
                raw[a, i, j, 5:] = torch.tensor([0.3 * (k - 1) + 0.1 * a - 0.05 * n for k in range(K)])
                n += 1
    # box predictions of the positives: arbitrary values, decoded by hand below
    raw[0, 0, 0, :4] = torch.tensor([0.4, -0.3, 0.1, -0.2])
    raw[0, 1, 1, :4] = torch.tensor([-0.2, 0.5, -0.6, 0.3])
    raw[2, 1, 1, :4] = torch.tensor([0.1, 0.1, 0.2, -0.4])
    raw[1, 1, 1, :4] = torch.tensor([0.7, -0.1, -0.3, 0.25])
    # the two designed negatives at cell (0, 0)
    raw[1, 0, 0, :4] = torch.tensor(_t_for([2.0, 2.0, 10.0, 7.2], 1, 0, 0), dtype=torch.float64)
    raw[2, 0, 0, :4] = torch.tensor(_t_for([2.0, 2.0, 10.0, 6.6], 2, 0, 0), dtype=torch.float64)
    return raw


def _cells():
    return [(a, i, j) for a in range(len(ANCHORS)) for i in range(GH) for j in range(GW)]


def _hand_terms(raw, gts, labels, positives, unpenalised, w: DetectionLossWeights):
    """(Σ box, Σ cls, Σ obj) of one image, from the formulas in plain Python."""
    box = cls = obj = 0.0
    for a, i, j in _cells():
        t = raw[a, i, j].tolist()
        if (a, i, j) in positives:
            g = positives[(a, i, j)]
            box += 1 - giou(box_of(t[:4], a, i, j), gts[g])
            cls += sum(bce(t[5 + k], 1.0 if k == labels[g] else 0.0) for k in range(K))
            obj += w.obj * bce(t[4], 1.0)
        elif (a, i, j) not in unpenalised:
            obj += w.noobj * bce(t[4], 0.0)
    return box, cls, obj


def test_scenario_is_what_the_comments_say():
    """The hand-made set-up itself (plain Python only): decoded boxes and overlaps as designed."""
    raw = _scenario_raw()
    for a, i, j in _cells():
        b = box_of(raw[a, i, j, :4].tolist(), a, i, j)
        best = max(iou(b, g) for g in GTS)
        if (a, i, j) == (1, 0, 0):
            assert best == pytest.approx(0.65)
        elif (a, i, j) == (2, 0, 0):
            assert best == pytest.approx(0.575)
        elif (a, i, j) not in POSITIVES:
            assert best < 0.6
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            in_dc = DONTCARE[0] <= cx <= DONTCARE[2] and DONTCARE[1] <= cy <= DONTCARE[3]
            assert in_dc == ((a, i, j) in UNPENALISED)


# --------------------------------------------------------------------- assignment


def _loss_with_grad(raw_one: torch.Tensor, *, gts=GTS, labels=GT_LABELS, dontcare=DONTCARE, weights=None):
    raw = raw_one[None].clone().requires_grad_(True)
    ign = [torch.tensor([dontcare], dtype=torch.float64)] if dontcare is not None else None
    details: dict = {}
    loss = _head().loss(
        raw,
        [torch.tensor(gts, dtype=torch.float64).reshape(-1, 4)],
        [torch.tensor(labels, dtype=torch.long)],
        ign,
        weights=weights or DetectionLossWeights(),
        details=details,
    )
    loss.backward()
    return loss, details, raw.grad[0]


def test_assignment_cells_anchors_and_winners():
    # with every objectness logit at 0, ∂L/∂obj = λ·(σ(0) − target) = −λ_obj/2 at a positive,
    # +λ_noobj/2 at a penalised negative and 0 at an unpenalised one
    raw = _scenario_raw()
    raw[..., 4] = 0.0
    _, _, grad = _loss_with_grad(raw)
    status = {}
    for a, i, j in _cells():
        gobj = grad[a, i, j, 4].item()
        status[(a, i, j)] = (
            "pos"
            if gobj == pytest.approx(-0.5)
            else "ign"
            if gobj == 0
            else "neg"
            if gobj == pytest.approx(0.5)
            else gobj
        )
    assert {c for c, s in status.items() if s == "pos"} == set(POSITIVES)
    assert {c for c, s in status.items() if s == "ign"} == UNPENALISED
    assert all(s in ("pos", "neg", "ign") for s in status.values()), status
    # which ground truth owns a positive: ∂L/∂cls_k = σ(x_k) − [k = class], negative only for its class;
    # (0, 0, 0) belongs to g3 (cyclist), not to the better-fitting g0 (car)
    for (a, i, j), g in POSITIVES.items():
        assert grad[a, i, j, 5:].argmin().item() == GT_LABELS[g], (a, i, j)
        assert (grad[a, i, j, 5:] < 0).sum().item() == 1
    # negatives get no class or box gradient
    for c in set(_cells()) - set(POSITIVES):
        assert torch.count_nonzero(grad[c][:4]).item() == 0 and torch.count_nonzero(grad[c][5:]).item() == 0


def test_the_higher_ground_truth_index_wins_a_shared_anchor_and_cell():
    raw = _scenario_raw()
    # swap g0 and g3: now the car (index 3) owns (A0, 0, 0)
    gts = [GTS[3], GTS[1], GTS[2], GTS[0]]
    labels = [GT_LABELS[3], GT_LABELS[1], GT_LABELS[2], GT_LABELS[0]]
    _, _, grad = _loss_with_grad(raw, gts=gts, labels=labels)
    assert grad[0, 0, 0, 5:].argmin().item() == CAR
    # and the box gradient pulls towards the car's box, i.e. equals the one with only the car present
    _, _, grad_car_only = _loss_with_grad(raw, gts=[GTS[0]], labels=[CAR], dontcare=None)
    torch.testing.assert_close(grad[0, 0, 0, :4], grad_car_only[0, 0, 0, :4])


def test_centre_on_the_far_image_edge_is_clamped_into_the_last_cell():
    # centre (24, 16) = the bottom-right image corner → ⌊3⌋, ⌊2⌋ clamped to cell (1, 2); 8×8 → A0
    raw = torch.zeros(len(ANCHORS), GH, GW, 5 + K, dtype=torch.float64)
    _, _, grad = _loss_with_grad(raw, gts=[[20.0, 12.0, 28.0, 20.0]], labels=[PED], dontcare=None)
    pos = {c for c in _cells() if grad[c][4].item() < 0}
    assert pos == {(0, 1, 2)}


# ------------------------------------------------------------------------ loss terms


@pytest.mark.parametrize(
    "weights", [DetectionLossWeights(), DetectionLossWeights(box=2.5, cls=0.7, obj=1.3, noobj=0.4)]
)
def test_each_loss_term_equals_the_hand_formula(weights):
    raw = _scenario_raw()
    loss, details, _ = _loss_with_grad(raw, weights=weights)
    box, cls, obj = _hand_terms(raw, GTS, GT_LABELS, POSITIVES, UNPENALISED, weights)
    assert box > 0.5 and cls > 1 and obj > 1  # every term is non-trivial here
    assert details["det_box"].item() == pytest.approx(box, rel=1e-9)
    assert details["det_cls"].item() == pytest.approx(cls, rel=1e-9)
    assert details["det_obj"].item() == pytest.approx(obj, rel=1e-9)
    assert loss.item() == pytest.approx(weights.box * box + weights.cls * cls + obj, rel=1e-9)


def test_loss_is_averaged_over_images_labelled_for_detection():
    head = _head()
    w = DetectionLossWeights()
    raw0, raw1 = _scenario_raw(), _scenario_raw(shift=0.7)
    raw = torch.stack([raw0, raw1])
    gts = [torch.tensor(GTS, dtype=torch.float64), torch.zeros(0, 4, dtype=torch.float64)]
    labels = [torch.tensor(GT_LABELS), torch.zeros(0, dtype=torch.long)]
    ign = [torch.tensor([DONTCARE], dtype=torch.float64), None]
    # image 1 has no ground truth: every one of its 18 cells is a penalised negative
    b0, c0, o0 = _hand_terms(raw0, GTS, GT_LABELS, POSITIVES, UNPENALISED, w)
    _, _, o1 = _hand_terms(raw1, [], [], {}, set(), w)
    loss = head.loss(raw, gts, labels, ign)
    assert loss.item() == pytest.approx((w.box * b0 + w.cls * c0 + o0 + o1) / 2, rel=1e-9)
    # image 1 not labelled for detection: it adds nothing, whatever its lists hold, and the mean is over 1 image
    junk = [gts[0], torch.tensor([[0.0, 0.0, 24.0, 16.0]], dtype=torch.float64)]
    loss = head.loss(raw, junk, [labels[0], torch.tensor([CAR])], ign, labelled=torch.tensor([True, False]))
    assert loss.item() == pytest.approx(w.box * b0 + w.cls * c0 + o0, rel=1e-9)


def test_regression_targets_give_zero_box_loss():
    # boxes with centres inside their cells; the raw values that make the box term vanish are
    # t_x = logit(c_x/8 − j), t_y = logit(c_y/8 − i), t_w = ln(w/a_w), t_h = ln(h/a_h):
    #   car [3, 1, 11, 9] (8×8, centre (7, 5), cell (0, 0), A0):   t = (logit .875, logit .625, 0, 0)
    #   cyclist [3, 10, 21, 14] (18×4, centre (12, 12), cell (1, 1), A1: 72/96 = .75; A0 32/(72+64−32) = .31!)
    # the cyclist also claims A0 (shape IoU 0.308 > 0.3), so give it A0's targets there too:
    #   A0 at (1, 1): t = (logit .5, logit .5, ln(18/8), ln(4/8)); A1: (0, 0, ln(18/24), ln(4/4))
    gts = [[3.0, 1.0, 11.0, 9.0], [3.0, 10.0, 21.0, 14.0]]
    raw = torch.zeros(len(ANCHORS), GH, GW, 5 + K, dtype=torch.float64)
    expected = {
        (0, 0, 0): [logit(0.875), logit(0.625), 0.0, 0.0],
        (0, 1, 1): [0.0, 0.0, math.log(18 / 8), math.log(0.5)],
        (1, 1, 1): [0.0, 0.0, math.log(18 / 24), 0.0],
    }
    for (a, i, j), t in expected.items():
        assert t == pytest.approx(_t_for(gts[0 if (i, j) == (0, 0) else 1], a, i, j))  # the inverse formula agrees
        raw[a, i, j, :4] = torch.tensor(t, dtype=torch.float64)
    _, details, grad = _loss_with_grad(raw, gts=gts, labels=[CAR, CYC], dontcare=None)
    assert details["det_box"].item() == pytest.approx(0.0, abs=1e-7)  # GIoU has a 1e-7 guard in its division
    positives = {c for c in _cells() if grad[c][4].item() < 0}
    assert positives == set(expected)
    # one step off the target in any coordinate of any positive makes the box term positive
    for c in expected:
        for d in range(4):
            bumped = raw.clone()
            bumped[c][d] += 0.2
            _, det2, _ = _loss_with_grad(bumped, gts=gts, labels=[CAR, CYC], dontcare=None)
            assert det2["det_box"].item() > 1e-3, (c, d)


# ---------------------------------------------------------------------- decode + NMS


def _decode_raw() -> torch.Tensor:
    raw = torch.full((len(ANCHORS), GH, GW, 5 + K), -10.0)
    raw[..., :4] = 0.0
    # P1 car at (A0, 0, 0): t = (ln 3, 0, 0, ln 2) → centre (8·.75, 8·.5) = (6, 4), 8×16 → [2, −4, 10, 12]
    #   clipped to the image → [2, 0, 10, 12]; score σ(2)·σ(3)
    raw[0, 0, 0, :4] = torch.tensor([math.log(3), 0.0, 0.0, math.log(2)])
    raw[0, 0, 0, 4], raw[0, 0, 0, 5 + CAR] = 2.0, 3.0
    # P2 car at (A2, 0, 0) (4×20 anchor): t = (ln 3, 0, ln 2, ln .6) → centre (6, 4), 8×12 → [2, −2, 10, 10]
    #   clipped → [2, 0, 10, 10]: IoU with P1 = 80/96 = .833; score σ(1)·σ(3) < P1's → suppressed
    raw[2, 0, 0, :4] = torch.tensor([math.log(3), 0.0, math.log(2), math.log(0.6)])
    raw[2, 0, 0, 4], raw[2, 0, 0, 5 + CAR] = 1.0, 3.0
    # P3 the same place as P1 but a pedestrian (class logit 1): not suppressed by the car (class-wise NMS)
    raw[0, 0, 0, 5 + PED] = 1.0
    # P4 car at (A1, 1, 2) (24×4 anchor): t = (0, 0, ln(10/24), ln 3) → centre (20, 12), 10×12 → [15, 6, 25, 18]
    #   clipped to the 24×16 image → [15, 6, 24, 16]; IoU with P1 = 0: kept; score σ(0.5)·σ(0.5)
    raw[1, 1, 2, :4] = torch.tensor([0.0, 0.0, math.log(10 / 24), math.log(3)])
    raw[1, 1, 2, 4], raw[1, 1, 2, 5 + CAR] = 0.5, 0.5
    # P5 cyclist at (A0, 1, 0): t = (0, 0, ln .5, ln .5) → centre (4, 12), 4×4 → [2, 10, 6, 14];
    #   score σ(−3)·σ(−1) = 0.0127: above a 0.01 threshold, below 0.02
    raw[0, 1, 0, :4] = torch.tensor([0.0, 0.0, math.log(0.5), math.log(0.5)])
    raw[0, 1, 0, 4], raw[0, 1, 0, 5 + CYC] = -3.0, -1.0
    return raw


def test_decode_and_nms_round_trip():
    head = _head()
    raw = _decode_raw()
    (det,) = head.decode(raw[None], (H, W), score_threshold=0.01, nms_iou=0.5)
    p1 = ([2.0, 0.0, 10.0, 12.0], sig(2) * sig(3), CAR)
    p3 = ([2.0, 0.0, 10.0, 12.0], sig(2) * sig(1), PED)
    p4 = ([15.0, 6.0, 24.0, 16.0], sig(0.5) * sig(0.5), CAR)
    p5 = ([2.0, 10.0, 6.0, 14.0], sig(-3) * sig(-1), CYC)
    assert p5[1] == pytest.approx(0.0127, abs=1e-4)
    expected = sorted([p1, p3, p4, p5], key=lambda p: -p[1])  # highest score first
    assert det.labels.tolist() == [p[2] for p in expected]
    torch.testing.assert_close(det.boxes, torch.tensor([p[0] for p in expected]), atol=1e-4, rtol=0)
    torch.testing.assert_close(det.scores, torch.tensor([p[1] for p in expected]), atol=1e-6, rtol=1e-5)

    # the duplicate P2 (IoU 0.833 with P1) survives only when NMS allows IoU 0.9
    p2 = ([2.0, 0.0, 10.0, 10.0], sig(1) * sig(3), CAR)
    (loose,) = head.decode(raw[None], (H, W), score_threshold=0.01, nms_iou=0.9)
    assert len(loose.labels) == 5
    assert any(
        torch.allclose(b, torch.tensor(p2[0]), atol=1e-4) and s.item() == pytest.approx(p2[1], rel=1e-5)
        for b, s in zip(loose.boxes, loose.scores, strict=True)
    )
    (tight,) = head.decode(raw[None], (H, W), score_threshold=0.01, nms_iou=0.8)
    assert len(tight.labels) == 4  # 0.833 > 0.8: suppressed

    # the score threshold: P5 (0.0127) is dropped at 0.02, every other cell (≈ σ(−10)·σ(·)) at 0.01
    (strict,) = head.decode(raw[None], (H, W), score_threshold=0.02, nms_iou=0.5)
    assert CYC not in strict.labels.tolist() and len(strict.labels) == 3
    # the cap on detections keeps the highest scores
    (top2,) = head.decode(raw[None], (H, W), score_threshold=0.01, nms_iou=0.5, max_detections=2)
    assert top2.labels.tolist() == [p[2] for p in expected[:2]]
    # before NMS only the 2 best-scored candidates are kept: P1 (0.839) and P2 (0.696), not P3
    # (0.644); NMS then removes P2 → P1 alone
    (pre2,) = head.decode(raw[None], (H, W), score_threshold=0.01, nms_iou=0.5, pre_nms_top_k=2)
    assert pre2.labels.tolist() == [CAR] and pre2.scores.tolist() == pytest.approx([p1[1]], rel=1e-5)


def test_decode_keeps_images_apart():
    head = _head()
    raw = torch.stack([_decode_raw(), torch.full((len(ANCHORS), GH, GW, 5 + K), -10.0)])
    first, second = head.decode(raw, (H, W), score_threshold=0.01)
    assert len(first.labels) == 4 and len(second.labels) == 0
