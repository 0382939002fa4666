"""Run a model over a split and compute the paper's metrics (see :mod:`taskweight.metrics`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from taskweight.data import batch_to_device
from taskweight.failpoints import failpoint
from taskweight.metrics import MultiTaskEvaluator
from taskweight.models import MultiTaskNet
from taskweight.precision import autocast


@torch.no_grad()
def evaluate(
    model: MultiTaskNet,
    loader: Iterable[Mapping[str, Any]],
    device: torch.device,
    *,
    score_threshold: float = 0.01,
    nms_iou: float = 0.5,
    precision: str = "fp32",
    channels_last: bool = False,
) -> dict[str, float]:
    """mAP (IoU 0.5), COCO mAP, mIoU and the geometric mean of the model's tasks' scores over every batch of ``loader``.

    ``precision`` is a resolved precision (:func:`taskweight.precision.resolve_precision`):
    the network runs under its autocast, box decoding, NMS and the metrics in fp32.
    """
    was_training = model.training
    model.eval()
    evaluator = MultiTaskEvaluator(tasks=model.tasks)
    try:
        for batch in loader:
            failpoint("validation_batch")
            batch = batch_to_device(batch, device, channels_last=channels_last)
            with autocast(precision, device):
                predictions = model.predict_tasks(batch["image"], score_threshold=score_threshold, nms_iou=nms_iou)
            evaluator.update(predictions.get("det"), predictions.get("seg"), batch, predictions.get("depth"))
    finally:
        model.train(was_training)
    return evaluator.compute()
