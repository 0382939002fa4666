"""The two-task network: shared ResNet10 encoder + detection and segmentation decoders.

Paper §III, Eq. 1: f(x; θ_shared, {θ_τ}) with hard parameter sharing. The model exposes
its shared parameters and its last shared layer (GradNorm, PCGrad and MGDA need them) and
returns the task losses as a dict (Eq. 2 leaves their weighting to a strategy).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from taskweight.classes import IGNORE_INDEX, NUM_DET_CLASSES, NUM_SEG_CLASSES
from taskweight.models.detection import DetectionLossWeights, Detections, YoloDetectionHead, default_anchors
from taskweight.models.encoder import ResNet10Encoder, load_imagenet_weights
from taskweight.models.segmentation import FCN8SegmentationHead

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MultiTaskNet(nn.Module):
    """Shared encoder with a YOLO-style detection head and an FCN8-style segmentation head.

    ``forward(images)`` takes float images in [0, 1] (B×3×H×W, H and W multiples of 32) and
    returns ``{"det": raw detection map, "seg": class logits}``.
    """

    tasks: tuple[str, ...] = ("det", "seg")
    mean: Tensor  # buffers registered in __init__
    std: Tensor

    def __init__(
        self,
        encoder: ResNet10Encoder,
        det_head: YoloDetectionHead,
        seg_head: FCN8SegmentationHead,
        det_loss_weights: DetectionLossWeights = DetectionLossWeights(),
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.det_head = det_head
        self.seg_head = seg_head
        self.det_loss_weights = det_loss_weights
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    # ------------------------------------------------------------ structure
    def shared_parameters(self) -> list[nn.Parameter]:
        """θ_shared: the encoder's parameters."""
        return list(self.encoder.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """θ_τ: the parameters of one task's decoder."""
        heads = {"det": self.det_head, "seg": self.seg_head}
        if task not in heads:
            raise KeyError(f"unknown task {task!r}; tasks are {list(heads)}")
        return list(heads[task].parameters())

    @property
    def last_shared_layer(self) -> nn.Module:
        """The encoder's last stage (layer4), where GradNorm measures gradient norms."""
        return self.encoder.last_layer

    # -------------------------------------------------------------- compute
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        height, width = images.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(f"input size {height}×{width} must be a multiple of 32 (set data.image_size)")
        features = self.encoder((images - self.mean) / self.std)
        return {"det": self.det_head(features), "seg": self.seg_head(features, (height, width))}

    def compute_losses(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any], details: dict[str, Any] | None = None
    ) -> dict[str, Tensor]:
        """Task losses over the samples labelled for each task.

        A task none of whose samples is labelled in this batch is absent from the result
        (real KITTI labels detection and segmentation on different images).
        """
        losses: dict[str, Tensor] = {}
        has_det: Tensor = batch["has_det"]
        has_seg: Tensor = batch["has_seg"]
        # unlabelled images are masked out, not indexed away: no scatter in the backward pass;
        # which tasks are present comes from the host-side list of a collated batch when there is one
        present = batch.get("labelled_tasks")
        if present is None:
            present = tuple(t for t, flags in (("det", has_det), ("seg", has_seg)) if bool(flags.any()))
        if "det" in present:
            losses["det"] = self.det_head.loss(
                outputs["det"],
                batch["boxes"],
                batch["labels"],
                batch["ignore_boxes"],
                weights=self.det_loss_weights,
                details=details,
                labelled=has_det,
            )
        if "seg" in present:
            target = torch.where(has_seg.view(-1, 1, 1), batch["seg"], IGNORE_INDEX)
            losses["seg"] = self.seg_head.loss(outputs["seg"], target)
        return losses

    @torch.no_grad()
    def predict(
        self, images: Tensor, *, score_threshold: float = 0.01, nms_iou: float = 0.5
    ) -> tuple[list[Detections], Tensor]:
        """Detections per image and the segmentation class map (B×H×W)."""
        outputs = {task: value.float() for task, value in self(images).items()}  # decode in fp32 under autocast
        dets = self.det_head.decode(
            outputs["det"], (images.shape[-2], images.shape[-1]), score_threshold=score_threshold, nms_iou=nms_iou
        )
        return dets, outputs["seg"].argmax(dim=1)


def resnet10_multitask(
    *,
    width: float = 1.0,
    image_height: int = 128,
    anchors: Tensor | None = None,
    num_det_classes: int = NUM_DET_CLASSES,
    num_seg_classes: int = NUM_SEG_CLASSES,
    head_channels: int | None = None,
    pretrained_encoder: str | Path | None = None,
) -> MultiTaskNet:
    """Build the paper's network (§V-A): ResNet10 encoder, YOLO and FCN8 decoders.

    Args:
        width: width multiplier of the encoder (1.0 = ResNet10 proper).
        image_height: input height; used for the default anchors when ``anchors`` is None.
        anchors: A×2 anchor (w, h) in input pixels (e.g. from :func:`kmeans_anchors`).
        head_channels: decoder width (default: the encoder's stride-8 width).
        pretrained_encoder: local path of an ImageNet ResNet checkpoint; nothing is downloaded.
    """
    encoder = ResNet10Encoder(width)
    if pretrained_encoder is not None:
        load_imagenet_weights(encoder, pretrained_encoder)
    channels = head_channels or encoder.out_channels["s8"]
    if anchors is None:
        anchors = default_anchors(image_height)
    det = YoloDetectionHead(encoder.out_channels, num_det_classes, anchors, channels=channels)
    seg = FCN8SegmentationHead(encoder.out_channels, num_seg_classes, channels=channels)
    return MultiTaskNet(encoder, det, seg)
