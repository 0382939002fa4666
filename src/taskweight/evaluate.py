"""Run a model over a split and compute the paper's metrics (see :mod:`taskweight.metrics`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from taskweight.metrics import MultiTaskEvaluator
from taskweight.models import MultiTaskNet


def batch_to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Move the tensors of a collated batch (and the per-image box lists) to ``device``."""
    moved: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            moved[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            moved[key] = [v.to(device, non_blocking=True) for v in value]
        else:
            moved[key] = value
    return moved


@torch.no_grad()
def evaluate(
    model: MultiTaskNet,
    loader: Iterable[Mapping[str, Any]],
    device: torch.device,
    *,
    score_threshold: float = 0.01,
    nms_iou: float = 0.5,
) -> dict[str, float]:
    """mAP (IoU 0.5), COCO mAP, mIoU and their geometric mean over every batch of ``loader``."""
    was_training = model.training
    model.eval()
    evaluator = MultiTaskEvaluator()
    try:
        for batch in loader:
            batch = batch_to_device(batch, device)
            detections, seg = model.predict(batch["image"], score_threshold=score_threshold, nms_iou=nms_iou)
            evaluator.update(detections, seg, batch)
    finally:
        model.train(was_training)
    return evaluator.compute()
