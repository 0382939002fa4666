"""The reported metrics against independent references (issue 18).

Detection: :class:`MultiTaskEvaluator` reports ``mAP`` = mean over classes of AP at IoU 0.5
and ``mAP_coco`` = AP averaged over IoU 0.50:0.05:0.95, both COCO-style (greedy matching by
descending score, IoU ≥ threshold, 101-point interpolated precision, maxDets = 100 per image
and class, area range "all"; classes without ground truth are left out of the mean; KITTI
DontCare regions are crowd boxes of every class, so detections inside them count for nothing).
Every designed case below is checked twice:

* against a value worked out by hand in the test (the precision/recall steps are written in a
  comment next to it), and
* against pycocotools' own ``COCOeval`` run on the same ground truth and detections.

Segmentation: ``mIoU`` against a confusion matrix accumulated by hand with numpy over the
images labelled for segmentation (label 255 ignored).
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from taskweight.classes import DET_CLASSES, IGNORE_INDEX
from taskweight.metrics import MultiTaskEvaluator
from taskweight.models import Detections

CAR, PED, CYC = 0, 1, 2
COCO_IOUS = np.linspace(0.5, 0.95, 10)
R = 101  # COCO recall thresholds 0, 0.01, …, 1


@dataclass
class Img:
    """One image: ground truth, DontCare regions, detections and which labels it carries."""

    gt: list[list[float]] = field(default_factory=list)
    gt_labels: list[int] = field(default_factory=list)
    dontcare: list[list[float]] = field(default_factory=list)
    dets: list[list[float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    has_det: bool = True


def _t(rows, width=4) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, width)


def _evaluate(images: list[Img], batch_size: int = 2) -> dict[str, float]:
    """Feed ``images`` to the evaluator in batches of ``batch_size`` (no segmentation labels)."""
    ev = MultiTaskEvaluator()
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = {
            "has_det": torch.tensor([im.has_det for im in chunk]),
            "has_seg": torch.zeros(len(chunk), dtype=torch.bool),
            "boxes": [_t(im.gt) for im in chunk],
            "labels": [torch.tensor(im.gt_labels, dtype=torch.long) for im in chunk],
            "ignore_boxes": [_t(im.dontcare) for im in chunk],
            "seg": torch.zeros(len(chunk), 2, 2, dtype=torch.long),
        }
        dets = [
            Detections(
                _t(im.dets), torch.tensor(im.scores, dtype=torch.float32), torch.tensor(im.labels, dtype=torch.long)
            )
            for im in chunk
        ]
        ev.update(dets, torch.zeros(len(chunk), 2, 2, dtype=torch.long), batch)
    return ev.compute()


def _coco_reference(images: list[Img]) -> tuple[dict[int, float], dict[int, float]]:
    """Per-class AP at IoU 0.5 and per-class AP averaged over 0.50:0.95, by pycocotools.

    Only the images labelled for detection are given to COCO; DontCare regions become crowd
    annotations of every class (the convention documented in :mod:`taskweight.metrics`).
    Classes without ground truth are absent from the returned dicts.
    """
    gt_anns, dt_anns, img_ids = [], [], []
    for image_id, im in enumerate((im for im in images if im.has_det), start=1):
        img_ids.append(image_id)
        crowd = [(b, k, 1) for b in im.dontcare for k in range(len(DET_CLASSES))]
        for b, k, is_crowd in [(b, k, 0) for b, k in zip(im.gt, im.gt_labels, strict=True)] + crowd:
            w, h = b[2] - b[0], b[3] - b[1]
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": image_id,
                    "category_id": k + 1,
                    "bbox": [b[0], b[1], w, h],
                    "area": w * h,
                    "iscrowd": is_crowd,
                }
            )
        for b, s, k in zip(im.dets, im.scores, im.labels, strict=True):
            dt_anns.append(
                {"image_id": image_id, "category_id": k + 1, "score": s, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": [{"id": i} for i in img_ids],
            "annotations": gt_anns,
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(DET_CLASSES)],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dt_anns)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.iouThrs = COCO_IOUS
        ev.evaluate()
        ev.accumulate()
    # precision: [T, R, K, A, M]; area "all" = 0, maxDets 100 = last
    prec = ev.eval["precision"][:, :, :, 0, -1]
    ap50, ap_coco = {}, {}
    for k in range(len(DET_CLASSES)):
        if (prec[:, :, k] > -1).all():
            ap50[k] = float(prec[0, :, k].mean())
            ap_coco[k] = float(prec[:, :, k].mean())
    return ap50, ap_coco


def _check(
    images: list[Img], *, ap50: dict[int, float], ap_coco: dict[int, float] | None = None, batch_size: int = 2
) -> dict[str, float]:
    """The evaluator and pycocotools both give the hand-computed per-class APs and their means."""
    m = _evaluate(images, batch_size)
    ref50, ref_coco = _coco_reference(images)
    assert set(ref50) == set(ap50), "the hand-worked case disagrees with pycocotools on which classes count"
    for k, name in enumerate(DET_CLASSES):
        if k in ap50:
            assert ref50[k] == pytest.approx(ap50[k], abs=1e-9), f"pycocotools AP50 {name}"
            assert m[f"AP50_{name}"] == pytest.approx(ap50[k], abs=1e-6), f"AP50 {name}"
        else:
            assert math.isnan(m[f"AP50_{name}"]), f"{name} has no ground truth: its AP is undefined"
    assert m["mAP"] == pytest.approx(sum(ap50.values()) / len(ap50), abs=1e-6)
    if ap_coco is not None:
        for k in ap_coco:
            assert ref_coco[k] == pytest.approx(ap_coco[k], abs=1e-9), f"pycocotools COCO AP {DET_CLASSES[k]}"
        assert m["mAP_coco"] == pytest.approx(sum(ap_coco.values()) / len(ap_coco), abs=1e-6)
    return m


GT = [0.0, 0.0, 100.0, 100.0]


def _cut(h: float) -> list[float]:
    """A box inside GT with IoU h/100 against it (same width, height h)."""
    return [0.0, 0.0, 100.0, h]


# --------------------------------------------------------------- IoU thresholds


@pytest.mark.parametrize(
    ("height", "ap50", "ap_coco"),
    [
        # IoU 0.51: a TP at t = 0.50 only → AP50 = 1, COCO = 1/10
        (51.0, 1.0, 0.1),
        # IoU 0.49: an FP and a missed GT at every threshold → 0
        (49.0, 0.0, 0.0),
        # IoU 0.74: TP at 0.50 0.55 0.60 0.65 0.70 (5 of 10)
        (74.0, 1.0, 0.5),
        # IoU 0.76: TP at 0.50 … 0.75 (6 of 10)
        (76.0, 1.0, 0.6),
        # IoU 0.94: TP up to 0.90 (9 of 10); IoU 0.96: all 10
        (94.0, 1.0, 0.9),
        (96.0, 1.0, 1.0),
    ],
)
def test_iou_just_above_and_below_each_threshold(height, ap50, ap_coco):
    _check(
        [Img(gt=[GT], gt_labels=[CAR], dets=[_cut(height)], scores=[0.9], labels=[CAR])],
        ap50={CAR: ap50},
        ap_coco={CAR: ap_coco},
    )


def test_wrong_class_is_not_a_match():
    # a perfect box with the pedestrian label: FP for pedestrian (which has no GT: left out),
    # the car is missed → car AP 0
    _check([Img(gt=[GT], gt_labels=[CAR], dets=[GT], scores=[0.9], labels=[PED])], ap50={CAR: 0.0}, ap_coco={CAR: 0.0})


# ------------------------------------------------------ duplicates, misses, ranking


def test_duplicate_after_the_true_positive_does_not_lower_ap():
    # two perfect boxes on one GT: TP (0.9), FP (0.8); precision 1, 1/2 at recall 1, 1
    # → interpolated precision at every recall threshold = max precision at recall ≥ r = 1
    _check(
        [Img(gt=[GT], gt_labels=[CAR], dets=[GT, GT], scores=[0.9, 0.8], labels=[CAR, CAR])],
        ap50={CAR: 1.0},
        ap_coco={CAR: 1.0},
    )


def test_matching_is_greedy_by_score_not_by_iou():
    # det A (score 0.9) IoU 0.62, det B (score 0.8) IoU 0.88 with the one GT.
    #  t = .50 .55 .60: A matches first, B is a duplicate FP → precision 1, 1/2 → AP 1
    #  t = .65 … .85 (5 thresholds): A fails, B matches → FP then TP: precision 0, 1/2 at
    #    recall 0, 1 → interpolated 1/2 everywhere → AP 1/2
    #  t = .90 .95: neither → 0
    # COCO = (3·1 + 5·0.5 + 2·0) / 10 = 0.55
    _check(
        [Img(gt=[GT], gt_labels=[CAR], dets=[_cut(62), _cut(88)], scores=[0.9, 0.8], labels=[CAR, CAR])],
        ap50={CAR: 1.0},
        ap_coco={CAR: 0.55},
    )


def test_missed_object_halves_recall_with_101_point_interpolation():
    # 2 GT, one found: recall 1/2 reached with precision 1; thresholds r = 0, .01, …, .50 (51 of
    # 101) get 1, the 50 above recall 0.5 get 0 → AP = 51/101 (all-point AP would be 0.5)
    gt2 = [GT, [200.0, 0.0, 300.0, 100.0]]
    m = _check(
        [Img(gt=gt2, gt_labels=[CAR, CAR], dets=[GT], scores=[0.9], labels=[CAR])],
        ap50={CAR: 51 / 101},
        ap_coco={CAR: 51 / 101},
    )
    assert m["mAP"] != pytest.approx(0.5, abs=1e-4)


def test_false_positives_ranked_above_true_positives():
    # 3 car GT; detections by score: TP .9, FP .8, TP .7, FP .6 (third GT missed)
    #   recall    1/3  1/3  2/3  2/3
    #   precision 1    1/2  2/3  1/2   → interpolated (max to the right): 1, 2/3, 2/3, 1/2
    # r = 0 … .33 (34 thresholds) → 1;  r = .34 … .66 (33) → 2/3;  r = .67 … 1 (34) → 0
    # AP = (34 + 33·2/3) / 101 = 56/101  (VOC 11-point would be 6/11, all-point 5/9)
    gts = [[0.0, 0.0, 100.0, 100.0], [200.0, 0.0, 300.0, 100.0], [400.0, 0.0, 500.0, 100.0]]
    fps = [[600.0, 0.0, 700.0, 100.0], [800.0, 0.0, 900.0, 100.0]]
    dets = [gts[0], fps[0], gts[1], fps[1]]
    _check(
        [Img(gt=gts, gt_labels=[CAR] * 3, dets=dets, scores=[0.9, 0.8, 0.7, 0.6], labels=[CAR] * 4)],
        ap50={CAR: 56 / 101},
        ap_coco={CAR: 56 / 101},
    )
    # the same detections scored in the opposite order: FP .9, TP .8, FP .7, TP .6
    #   precision 0, 1/2, 1/3, 1/2 at recall 0, 1/3, 1/3, 2/3 → interpolated 1/2 up to recall 2/3
    #   AP = 67·(1/2) / 101 = 33.5/101
    _check(
        [Img(gt=gts, gt_labels=[CAR] * 3, dets=dets, scores=[0.6, 0.7, 0.8, 0.9], labels=[CAR] * 4)],
        ap50={CAR: 33.5 / 101},
        ap_coco={CAR: 33.5 / 101},
    )


@pytest.mark.filterwarnings("ignore:Encountered more than 100 detections")
def test_at_most_100_detections_per_image_and_class():
    # 99 FPs scored above the TP: the TP is the 100th detection → precision 1/100 at recall 1
    # → AP = 0.01; with 100 FPs above it the TP is cut by maxDets = 100 → AP = 0
    fps = [[float(200 + 10 * i), 200.0, float(205 + 10 * i), 205.0] for i in range(100)]
    for n_fp, ap in ((99, 0.01), (100, 0.0)):
        dets = fps[:n_fp] + [GT]
        scores = [0.99 - 0.001 * i for i in range(n_fp)] + [0.5]
        _check(
            [Img(gt=[GT], gt_labels=[CAR], dets=dets, scores=scores, labels=[CAR] * (n_fp + 1))],
            ap50={CAR: ap},
            ap_coco={CAR: ap},
        )


# ------------------------------------------------- several images, absent classes


def test_several_images_and_classes_absent_from_an_image():
    # image 1: a car (found, .8) and a pedestrian FP (.9) — no pedestrian in this image;
    # image 2: a pedestrian (found, .5), a cyclist FP (.7) — no cyclist GT anywhere;
    # image 3: no ground truth at all, a car FP (.95).
    #   car: FP .95 (img 3), TP .8 → precision 0, 1/2 → AP 1/2
    #   pedestrian: FP .9 (img 1), TP .5 → AP 1/2
    #   cyclist: no GT in the split → undefined, left out of the mean
    # mAP = (1/2 + 1/2) / 2 = 1/2
    ped = [300.0, 20.0, 330.0, 90.0]
    images = [
        Img(gt=[GT], gt_labels=[CAR], dets=[GT, ped], scores=[0.8, 0.9], labels=[CAR, PED]),
        Img(gt=[ped], gt_labels=[PED], dets=[ped, GT], scores=[0.5, 0.7], labels=[PED, CYC]),
        Img(dets=[GT], scores=[0.95], labels=[CAR]),
    ]
    m = _check(images, ap50={CAR: 0.5, PED: 0.5}, ap_coco={CAR: 0.5, PED: 0.5})
    assert m["mAP"] == pytest.approx(0.5)
    # an image without ground truth and without detections changes nothing
    _check(images + [Img()], ap50={CAR: 0.5, PED: 0.5}, ap_coco={CAR: 0.5, PED: 0.5}, batch_size=3)


def test_per_class_values_keep_their_names_when_a_middle_class_is_absent():
    # no pedestrian at all (neither GT nor detection): car FP .9 then TP .8 → 1/2; cyclist TP → 1
    cyc = [300.0, 20.0, 330.0, 90.0]
    m = _check(
        [
            Img(
                gt=[GT, cyc],
                gt_labels=[CAR, CYC],
                dets=[[500.0, 0.0, 600.0, 100.0], GT, cyc],
                scores=[0.9, 0.8, 0.7],
                labels=[CAR, CAR, CYC],
            )
        ],
        ap50={CAR: 0.5, CYC: 1.0},
        ap_coco={CAR: 0.5, CYC: 1.0},
    )
    assert m["mAP"] == pytest.approx(0.75)


def test_per_class_means_not_pooled_detections():
    # car: 1 GT found (.9) → AP 1; pedestrian: 2 GT, one found (.3), FP .95 above it
    #   pedestrian: precision 0, 1/2 at recall 0, 1/2 → interpolated 1/2 for r ≤ .5 (51) → 25.5/101
    # mAP = (1 + 25.5/101) / 2; pooling all detections into one class would give something else
    p1, p2 = [300.0, 20.0, 330.0, 90.0], [400.0, 20.0, 430.0, 90.0]
    _check(
        [
            Img(
                gt=[GT, p1, p2],
                gt_labels=[CAR, PED, PED],
                dets=[GT, p1, [600.0, 0.0, 630.0, 70.0]],
                scores=[0.9, 0.3, 0.95],
                labels=[CAR, PED, PED],
            )
        ],
        ap50={CAR: 1.0, PED: 25.5 / 101},
        ap_coco={CAR: 1.0, PED: 25.5 / 101},
    )


# ------------------------------------------------------------------ DontCare = crowd


def test_dontcare_regions_are_crowd_boxes_of_every_class():
    # one car and one pedestrian GT, found exactly (car .8, pedestrian .7); a DontCare region
    # DC = [200, 0, 300, 100] and three detections relative to it:
    #   car .95 fully inside DC, pedestrian .99 fully inside DC → ignored at every threshold
    #     (crowd IoU = intersection / detection area = 1; DC is a crowd box of *every* class)
    #   car .9 = [162, 0, 262, 100]: 62 % of it lies in DC → crowd IoU 0.62 → ignored for
    #     t ≤ 0.60 (3 thresholds), an FP ranked above the car TP for t ≥ 0.65 (7 thresholds)
    # AP50: car 1, pedestrian 1 → mAP 1
    # COCO: car (3·1 + 7·1/2)/10 = 0.65, pedestrian 1 → mAP_coco 0.825
    ped = [400.0, 0.0, 450.0, 100.0]
    dc = [200.0, 0.0, 300.0, 100.0]
    inside = [210.0, 10.0, 290.0, 90.0]
    img = Img(
        gt=[GT, ped],
        gt_labels=[CAR, PED],
        dontcare=[dc],
        dets=[GT, ped, inside, inside, [162.0, 0.0, 262.0, 100.0]],
        scores=[0.8, 0.7, 0.95, 0.99, 0.9],
        labels=[CAR, PED, CAR, PED, CAR],
    )
    m = _check([img], ap50={CAR: 1.0, PED: 1.0}, ap_coco={CAR: 0.65, PED: 1.0})
    assert m["mAP_coco"] == pytest.approx(0.825)
    # without the DontCare region those detections are false positives ranked first:
    #   car: FP .95, FP .9, TP .8 → precision 1/3 at recall 1 → AP50 1/3; pedestrian: FP, TP → 1/2
    img.dontcare = []
    _check([img], ap50={CAR: 1 / 3, PED: 0.5})


def test_dontcare_does_not_swallow_a_true_positive():
    # the car overlaps the DontCare region; its detection must match the car, not the crowd box
    dc = [50.0, 0.0, 150.0, 100.0]
    _check(
        [Img(gt=[GT], gt_labels=[CAR], dontcare=[dc], dets=[GT], scores=[0.9], labels=[CAR])],
        ap50={CAR: 1.0},
        ap_coco={CAR: 1.0},
    )


# ------------------------------------------------ images labelled for segmentation only


def test_images_labelled_for_segmentation_only_do_not_count_in_detection():
    # image 1 (detection labels): car found → AP 1. Image 2 (segmentation only, in the same
    # batch, before image 1) carries boxes and detections that would be a missed car and a
    # higher-scored FP; they must not count.
    seg_only = Img(
        gt=[GT, [200.0, 0.0, 300.0, 100.0]],
        gt_labels=[CAR, PED],
        dets=[[500.0, 0.0, 600.0, 100.0]],
        scores=[0.99],
        labels=[CAR],
        has_det=False,
    )
    labelled = Img(gt=[GT], gt_labels=[CAR], dets=[GT], scores=[0.6], labels=[CAR])
    m = _check([seg_only, labelled], ap50={CAR: 1.0}, ap_coco={CAR: 1.0})
    assert math.isnan(m["AP50_pedestrian"])  # its pedestrian is not ground truth either
    # only segmentation-labelled images: no detection metric at all
    m = _evaluate([seg_only, seg_only])
    assert math.isnan(m["mAP"]) and math.isnan(m["mAP_coco"]) and math.isnan(m["geometric_mean"])


# ----------------------------------------------------------------------------- mIoU


def _confusion(target: np.ndarray, pred: np.ndarray, k: int = 3) -> np.ndarray:
    """k×k confusion matrix (rows: ground truth, columns: prediction), 255 targets ignored."""
    cm = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(target.ravel(), pred.ravel(), strict=True):
        if t != IGNORE_INDEX:
            cm[t, p] += 1
    return cm


def _iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """IoU_c = TP / (TP + FP + FN); NaN for a class absent from both prediction and ground truth."""
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def _seg_batch(targets, has_seg):
    n = len(targets)
    return {
        "has_det": torch.zeros(n, dtype=torch.bool),
        "has_seg": torch.tensor(has_seg),
        "boxes": [torch.zeros(0, 4)] * n,
        "labels": [torch.zeros(0, dtype=torch.long)] * n,
        "ignore_boxes": [torch.zeros(0, 4)] * n,
        "seg": torch.tensor(np.asarray(targets), dtype=torch.long),
    }


def _no_dets(n):
    return [Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))] * n


def test_miou_equals_a_confusion_matrix_accumulated_over_images():
    rng = np.random.default_rng(0)
    ev = MultiTaskEvaluator()
    cm = np.zeros((3, 3), dtype=np.int64)
    for _ in range(3):  # 3 batches of 2 images, 6×8 pixels, ~10 % ignored, one image without seg labels
        target = rng.integers(0, 3, size=(2, 6, 8))
        target[rng.random(target.shape) < 0.1] = IGNORE_INDEX
        pred = np.where(rng.random(target.shape) < 0.6, np.clip(target, 0, 2), rng.integers(0, 3, size=target.shape))
        has_seg = [True, bool(rng.random() < 0.5)]
        ev.update(_no_dets(2), torch.tensor(pred), _seg_batch(target, has_seg))
        for i in range(2):
            if has_seg[i]:
                cm += _confusion(target[i], pred[i])
    m = ev.compute()
    iou = _iou_from_confusion(cm)
    assert np.isfinite(iou).all()
    for name, value in zip(("void", "road", "sidewalk"), iou, strict=True):
        assert m[f"IoU_{name}"] == pytest.approx(value, abs=1e-6)
    assert m["mIoU"] == pytest.approx(iou.mean(), abs=1e-6)
    # dataset-level IoU (one confusion matrix), not the mean of per-image IoUs
    assert math.isnan(m["mAP"]) and math.isnan(m["geometric_mean"])


def test_miou_hand_worked_with_ignore_pixels_and_unlabelled_images():
    # image 1 target / prediction (255 = ignore, its prediction must not count):
    #   target  0 0 1 1 2 255      pred  0 1 1 1 0 2
    # image 2 is not labelled for segmentation (its all-sidewalk target and prediction would
    # otherwise make sidewalk perfect).
    # confusion (rows GT, cols pred): void: [1,1,0], road: [0,2,0], sidewalk: [1,0,0]
    #   void:     TP 1, FP 1 (sidewalk pixel), FN 1 (→ road) → 1/3
    #   road:     TP 2, FP 1, FN 0 → 2/3
    #   sidewalk: TP 0, FP 0 (the 255 pixel is ignored), FN 1 → 0
    target = np.array([[[0, 0, 1, 1, 2, 255]], [[2, 2, 2, 2, 2, 2]]])
    pred = np.array([[[0, 1, 1, 1, 0, 2]], [[2, 2, 2, 2, 2, 2]]])
    ev = MultiTaskEvaluator()
    ev.update(_no_dets(2), torch.tensor(pred), _seg_batch(target, [True, False]))
    m = ev.compute()
    expected = _iou_from_confusion(_confusion(target[0], pred[0]))
    np.testing.assert_allclose(expected, [1 / 3, 2 / 3, 0.0])
    assert [m["IoU_void"], m["IoU_road"], m["IoU_sidewalk"]] == pytest.approx([1 / 3, 2 / 3, 0.0], abs=1e-6)
    assert m["mIoU"] == pytest.approx(1 / 3, abs=1e-6)


def test_miou_leaves_out_a_class_absent_from_prediction_and_ground_truth():
    # no sidewalk pixel anywhere, neither predicted nor labelled (the 255 pixel predicted as
    # sidewalk is ignored): sidewalk IoU is 0/0, undefined, and must not drag the mean down.
    #   target 0 0 1 1 255   pred 0 1 1 1 2
    #   void: TP 1 / (1 + 0 + 1) = 1/2;  road: TP 2 / (2 + 1 + 0) = 2/3
    #   mIoU = (1/2 + 2/3) / 2 = 7/12 (not (1/2 + 2/3 + 0) / 3)
    target = np.array([[[0, 0, 1, 1, 255]]])
    pred = np.array([[[0, 1, 1, 1, 2]]])
    ev = MultiTaskEvaluator()
    ev.update(_no_dets(1), torch.tensor(pred), _seg_batch(target, [True]))
    m = ev.compute()
    expected = _iou_from_confusion(_confusion(target[0], pred[0]))
    assert expected[:2] == pytest.approx([0.5, 2 / 3]) and math.isnan(expected[2])
    assert m["IoU_void"] == pytest.approx(0.5) and m["IoU_road"] == pytest.approx(2 / 3)
    assert math.isnan(m["IoU_sidewalk"])
    assert m["mIoU"] == pytest.approx(7 / 12, abs=1e-6)


def test_no_segmentation_labels_gives_nan_miou_and_geometric_mean():
    ev = MultiTaskEvaluator()
    ev.update(
        _no_dets(2), torch.zeros(2, 1, 3, dtype=torch.long), _seg_batch([[[0, 1, 2]], [[0, 1, 2]]], [False, False])
    )
    m = ev.compute()
    assert math.isnan(m["mIoU"]) and math.isnan(m["geometric_mean"])


def test_geometric_mean_combines_the_two_reported_metrics():
    # detection: 2 GT, one found → mAP 51/101; segmentation: perfect except one void pixel
    # predicted road (worked out below); geometric mean = sqrt(mAP·mIoU)
    ev = MultiTaskEvaluator()
    target = np.array([[[0, 0, 0, 1, 2]]])
    pred = np.array([[[0, 0, 1, 1, 2]]])
    # void: TP 2 / (2 + 0 + 1) = 2/3; road: TP 1 / (1 + 1 + 0) = 1/2; sidewalk 1 → mIoU 13/18
    batch = _seg_batch(target, [True])
    batch["has_det"] = torch.tensor([True])
    batch["boxes"] = [torch.tensor([GT, [200.0, 0.0, 300.0, 100.0]])]
    batch["labels"] = [torch.tensor([CAR, CAR])]
    ev.update([Detections(torch.tensor([GT]), torch.tensor([0.9]), torch.tensor([CAR]))], torch.tensor(pred), batch)
    m = ev.compute()
    assert m["mAP"] == pytest.approx(51 / 101, abs=1e-6)
    assert m["mIoU"] == pytest.approx(13 / 18, abs=1e-6)
    assert m["geometric_mean"] == pytest.approx(math.sqrt(51 / 101 * 13 / 18), abs=1e-6)
