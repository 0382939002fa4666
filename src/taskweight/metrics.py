"""Task metrics of the paper's Table II.

- Detection "mAP": mean over the three classes of the average precision at IoU 0.5
  (COCO-style 101-point interpolation, computed by torchmetrics' ``MeanAveragePrecision``
  with the faster-coco-eval backend). COCO mAP@[.5:.95] is reported beside it.
  KITTI ``DontCare`` regions are passed as COCO "crowd" boxes of every class, so detections
  inside them are neither true nor false positives.
- Segmentation "mIoU": mean IoU over void, road and sidewalk (torchmetrics
  ``MulticlassJaccardIndex``, label 255 ignored). A class absent from both the prediction and
  the ground truth of the whole split has an undefined IoU (0/0, reported as NaN) and is left
  out of the mean, as a detection class without ground truth is left out of mAP.
- Depth (issue 15): over the pixels with a measured depth (ground truth > 0), per image, then
  averaged over the images: ``AbsRel`` = mean |d̂ − d| / d, ``RMSE`` = sqrt(mean (d̂ − d)²)
  (metres) and ``delta1`` = the fraction with max(d̂/d, d/d̂) < 1.25 (Eigen et al. 2014), the
  depth score of the geometric mean.
- "Geometric mean" = (Π score_τ)^(1/T) over the configured tasks' scores (mAP for det, mIoU
  for seg, δ<1.25 for depth, :data:`taskweight.classes.TASK_SCORES`): sqrt(mAP · mIoU) for the paper's two tasks,
  its compromise value (§IV-C, Table II). A task the run does not train reports NaN metrics
  and stays out of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.detection import MeanAveragePrecision

from taskweight.classes import (
    DEFAULT_TASKS,
    DEPTH_METRICS,
    DET_CLASSES,
    IGNORE_INDEX,
    NUM_DET_CLASSES,
    NUM_SEG_CLASSES,
    SEG_CLASSES,
    TASK_SCORES,
    TASKS,
    check_tasks,
)
from taskweight.models.detection import Detections


def geometric_mean(*values: float) -> float:
    """(Π v)^(1/n); 0 when any value is 0, NaN when any is NaN or negative."""
    if any(math.isnan(v) or v < 0 for v in values):
        return float("nan")
    if any(v == 0 for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


def improves(candidate: float | None, incumbent: float | None) -> bool:
    """Model selection by geometric mean (paper §V), the one rule for every "best so far":
    a finite value above the incumbent wins; NaN or None never wins; a tie keeps the incumbent."""
    if candidate is None or not math.isfinite(candidate):
        return False
    return incumbent is None or math.isnan(incumbent) or candidate > incumbent


def map_prediction(detections: Detections) -> dict[str, Tensor]:
    """One image's detections as torchmetrics' ``MeanAveragePrecision`` takes them (on the CPU)."""
    return {
        "boxes": detections.boxes.float().cpu(),
        "scores": detections.scores.float().cpu(),
        "labels": detections.labels.cpu(),
    }


def map_target(boxes: Tensor, labels: Tensor, ignore_boxes: Tensor, num_classes: int) -> dict[str, Tensor]:
    """One image's ground truth as ``MeanAveragePrecision`` takes it: the boxes, then every ignore region
    (KITTI DontCare, Cityscapes crowd) as a COCO crowd box of each of the ``num_classes`` classes."""
    gt_boxes, gt_labels = boxes.float().cpu(), labels.long().cpu()
    crowd = ignore_boxes.float().cpu().reshape(-1, 4)
    crowd_labels = torch.arange(num_classes).repeat(len(crowd))
    iscrowd = torch.cat(
        [torch.zeros(len(gt_labels), dtype=torch.long), torch.ones(len(crowd_labels), dtype=torch.long)]
    )
    return {
        "boxes": torch.cat([gt_boxes, crowd.repeat_interleave(num_classes, dim=0)]),
        "labels": torch.cat([gt_labels, crowd_labels]),
        "iscrowd": iscrowd,
    }


class MultiTaskEvaluator:
    """Accumulates detections and segmentation maps over a split, then computes the metrics.

    Only images labelled for detection count towards mAP and only images labelled for
    segmentation towards mIoU; only the ``tasks`` given are scored.
    """

    def __init__(
        self,
        num_det_classes: int = NUM_DET_CLASSES,
        num_seg_classes: int = NUM_SEG_CLASSES,
        *,
        tasks: Sequence[str] = DEFAULT_TASKS,
    ) -> None:
        self.tasks = check_tasks(tasks)
        # the per-class results are named after the classes of taskweight.classes: a count that differs
        # would otherwise fail only at compute(), after a whole split was scored
        for option, count, names in (
            ("num_det_classes", num_det_classes, DET_CLASSES),
            ("num_seg_classes", num_seg_classes, SEG_CLASSES),
        ):
            if count != len(names):
                raise ValueError(f"{option} must be {len(names)} (the classes {', '.join(names)}), got {count}")
        self.num_det_classes = num_det_classes
        # sync_on_compute=False: the evaluator scores what it was given in this process. Inside a
        # multi-process run only rank 0 validates (on the whole split): a torchmetrics gather there
        # would wait forever for ranks that are not scoring.
        self.map_coco = MeanAveragePrecision(
            box_format="xyxy", iou_type="bbox", backend="faster_coco_eval", sync_on_compute=False
        )
        self.map_50 = MeanAveragePrecision(
            box_format="xyxy",
            iou_type="bbox",
            iou_thresholds=[0.5],
            class_metrics=True,
            backend="faster_coco_eval",
            sync_on_compute=False,
        )
        self.iou = MulticlassJaccardIndex(
            num_seg_classes,
            average="none",
            ignore_index=IGNORE_INDEX,
            zero_division=float("nan"),
            sync_on_compute=False,
        )  # 0/0 (class neither predicted nor labelled) → NaN, left out of the mean
        self.images = dict.fromkeys(TASKS, 0)  # images scored, per task
        self.depth_sums = dict.fromkeys(DEPTH_METRICS, 0.0)

    def update(
        self,
        detections: Sequence[Detections] | None,
        seg_pred: Tensor | None,
        batch: Mapping[str, Any],
        depth_pred: Tensor | None = None,
    ) -> None:
        """Add a batch's predictions (None, or left out by the tasks given, for a task not scored)."""
        if depth_pred is not None and "depth" in self.tasks and "depth" in batch:
            self._update_depth(depth_pred, batch)
        if detections is not None and "det" in self.tasks:
            self._update_det(detections, batch)
        if seg_pred is not None and "seg" in self.tasks:
            has_seg = batch["has_seg"]
            if bool(has_seg.any()):
                self.iou.update(seg_pred[has_seg].cpu(), batch["seg"][has_seg].cpu())
                self.images["seg"] += int(has_seg.sum())

    def _update_depth(self, depth_pred: Tensor, batch: Mapping[str, Any]) -> None:
        target = batch["depth"].float().cpu()
        pred = depth_pred.float().cpu().clamp_min(1e-6)
        for i, labelled in enumerate(batch["has_depth"].tolist()):
            valid = target[i] > 0
            if not labelled or not bool(valid.any()):
                continue
            d, p = target[i][valid].double(), pred[i][valid].double()
            self.depth_sums["AbsRel"] += float(((p - d).abs() / d).mean())
            self.depth_sums["RMSE"] += float((p - d).pow(2).mean().sqrt())
            self.depth_sums["delta1"] += float((torch.maximum(p / d, d / p) < 1.25).double().mean())
            self.images["depth"] += 1

    def _update_det(self, detections: Sequence[Detections], batch: Mapping[str, Any]) -> None:
        has_det = batch["has_det"].tolist()
        preds, targets = [], []
        for i, labelled in enumerate(has_det):
            if not labelled:
                continue
            preds.append(map_prediction(detections[i]))
            targets.append(
                map_target(batch["boxes"][i], batch["labels"][i], batch["ignore_boxes"][i], self.num_det_classes)
            )
        if preds:
            self.map_coco.update(preds, targets)
            self.map_50.update(preds, targets)
            self.images["det"] += len(preds)

    def compute(self) -> dict[str, float]:
        """Return ``mAP``, ``mAP_coco``, ``mIoU``, ``geometric_mean``, per-class values, when depth is
        scored ``AbsRel``, ``RMSE`` and ``delta1``, and ``images_<task>``: how many images each scored
        task was measured on (those labelled for it)."""
        result: dict[str, float] = {f"images_{task}": self.images[task] for task in self.tasks}
        if self.images["det"]:
            coco = self.map_coco.compute()
            at50 = self.map_50.compute()
            result["mAP"] = max(float(at50["map"]), 0.0)
            result["mAP_coco"] = max(float(coco["map"]), 0.0)
            classes = at50["classes"].flatten().tolist()
            per_class = at50["map_per_class"].flatten().tolist()
            for k, name in enumerate(DET_CLASSES):
                value = per_class[classes.index(k)] if k in classes else -1.0
                result[f"AP50_{name}"] = value if value >= 0 else float("nan")  # -1: class absent from ground truth
        else:
            result.update({"mAP": float("nan"), "mAP_coco": float("nan")})
        if self.images["seg"]:
            ious = self.iou.compute().tolist()
            defined = [v for v in ious if not math.isnan(v)]
            result["mIoU"] = sum(defined) / len(defined) if defined else float("nan")
            for name, value in zip(SEG_CLASSES, ious, strict=True):
                result[f"IoU_{name}"] = value
        else:
            result["mIoU"] = float("nan")
        if "depth" in self.tasks:
            for key, total in self.depth_sums.items():
                result[key] = total / self.images["depth"] if self.images["depth"] else float("nan")
        result["geometric_mean"] = geometric_mean(*(result[TASK_SCORES[task]] for task in self.tasks))
        return result
