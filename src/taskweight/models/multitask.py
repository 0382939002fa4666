"""The multi-task network: shared ResNet10 encoder + detection, segmentation and/or depth decoders.

Paper §III, Eq. 1: f(x; θ_shared, {θ_τ}) with hard parameter sharing. The model exposes
its shared parameters and its last shared layer (GradNorm, PCGrad and MGDA need them) and
returns the task losses as a dict (Eq. 2 leaves their weighting to a strategy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from taskweight.classes import DEFAULT_TASKS, IGNORE_INDEX, NUM_DET_CLASSES, NUM_SEG_CLASSES, PAPER_TASKS, check_tasks
from taskweight.models.depth import DepthHead
from taskweight.models.detection import (
    DetAssignment,
    DetectionLossWeights,
    Detections,
    DetStride,
    YoloDetectionHead,
    default_anchors,
    pad_detection_targets,
)
from taskweight.models.encoder import ResNet10Encoder, load_imagenet_weights
from taskweight.models.segmentation import FCN8SegmentationHead

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MultiTaskNet(nn.Module):
    """Shared encoder with a YOLO-style detection head, an FCN8-style segmentation head and/or
    an FCN-style depth head.

    Only the heads given are built (a run's configured ``tasks``); ``tasks`` lists them in the
    canonical order of :data:`taskweight.classes.TASKS`. ``forward(images)`` takes float images
    in [0, 1] (B×3×H×W, H and W multiples of 32) and returns one output per task:
    ``{"det": raw detection map, "seg": class logits, "depth": log depth (B×H×W)}``.
    """

    tasks: tuple[str, ...]
    det_head: YoloDetectionHead  # present when "det" in tasks
    seg_head: FCN8SegmentationHead  # present when "seg" in tasks
    depth_head: DepthHead  # present when "depth" in tasks
    mean: Tensor  # buffers registered in __init__
    std: Tensor

    def __init__(
        self,
        encoder: ResNet10Encoder,
        det_head: YoloDetectionHead | None = None,
        seg_head: FCN8SegmentationHead | None = None,
        det_loss_weights: DetectionLossWeights = DetectionLossWeights(),
        depth_head: DepthHead | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        heads: dict[str, nn.Module | None] = {"det": det_head, "seg": seg_head, "depth": depth_head}
        for task, head in heads.items():
            if head is not None:
                self.add_module(f"{task}_head", head)
        self.tasks = check_tasks([t for t, head in heads.items() if head is not None])
        self.det_loss_weights = det_loss_weights
        fine = det_head is not None and "s4" in det_head.levels
        self.representation_levels: tuple[str, ...] = ("s4", "s8", "s16", "s32") if fine else ("s8", "s16", "s32")
        """The encoder maps the heads read: the shared representation (``s4`` only for a stride-4 detection grid)."""
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def head(self, task: str) -> nn.Module:
        """The decoder of ``task`` (a KeyError names the tasks this network has)."""
        if task not in self.tasks:
            raise KeyError(f"task {task!r} has no head in this network; its tasks are {list(self.tasks)}")
        module: nn.Module = getattr(self, f"{task}_head")
        return module

    def require_tasks(self, *tasks: str) -> None:
        """Raise a ValueError naming what is missing when the network lacks one of ``tasks``."""
        missing = [t for t in tasks if t not in self.tasks]
        if missing:
            raise ValueError(f"this needs the {', '.join(missing)} head(s); the network's tasks are {list(self.tasks)}")

    # ------------------------------------------------------------ structure
    def shared_parameters(self) -> list[nn.Parameter]:
        """θ_shared: the encoder's parameters."""
        return list(self.encoder.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """θ_τ: the parameters of one task's decoder."""
        return list(self.head(task).parameters())

    @property
    def last_shared_layer(self) -> nn.Module:
        """The encoder's last stage (layer4), where GradNorm measures gradient norms."""
        return self.encoder.last_layer

    # -------------------------------------------------------------- compute
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.decode(self.encode(images), (images.shape[-2], images.shape[-1]))

    def encode(self, images: Tensor) -> dict[str, Tensor]:
        """The shared representation: the encoder's feature maps of ``images`` that the heads read
        (:attr:`representation_levels`: ``s8``, ``s16``, ``s32``, and ``s4`` for a stride-4 detection grid)."""
        height, width = images.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(f"input size {height}×{width} must be a multiple of 32 (set data.image_size)")
        features: dict[str, Tensor] = self.encoder((images - self.mean) / self.std)
        return {level: features[level] for level in self.representation_levels}

    def decode(self, features: dict[str, Tensor], size: tuple[int, int]) -> dict[str, Tensor]:
        """Every head's output from the shared representation of images of ``size`` (H, W)."""
        outputs: dict[str, Tensor] = {}
        if "det" in self.tasks:
            outputs["det"] = self.det_head(features)
        if "seg" in self.tasks:
            outputs["seg"] = self.seg_head(features, size)
        if "depth" in self.tasks:
            outputs["depth"] = self.depth_head(features, size)
        return outputs

    def compute_losses(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any], details: dict[str, Any] | None = None
    ) -> dict[str, Tensor]:
        """Task losses over the samples labelled for each task.

        A task none of whose samples is labelled in this batch is absent from the result
        (real KITTI labels detection and segmentation on different images).
        """
        losses: dict[str, Tensor] = {}
        # unlabelled images are masked out, not indexed away: no scatter in the backward pass;
        # which tasks are present comes from the host-side list of a collated batch when there is one
        present = batch.get("labelled_tasks")
        if present is None:
            present = tuple(t for t in self.tasks if bool(batch[f"has_{t}"].any()))
        present = tuple(t for t in present if t in self.tasks)
        if "det" in present:
            has_det: Tensor = batch["has_det"]
            targets = batch.get("det_targets")  # padded to fixed shapes by a CUDA-graph step
            if targets is None:
                targets = pad_detection_targets(
                    batch["boxes"], batch["labels"], batch["ignore_boxes"], device=outputs["det"].device
                )
            losses["det"] = self.det_head.loss_on_targets(
                outputs["det"], targets, weights=self.det_loss_weights, details=details, labelled=has_det
            )
        if "seg" in present:
            has_seg: Tensor = batch["has_seg"]
            target = torch.where(has_seg.view(-1, 1, 1), batch["seg"], IGNORE_INDEX)
            losses["seg"] = self.seg_head.loss(outputs["seg"], target)
        if "depth" in present:
            losses["depth"] = self.depth_head.loss(outputs["depth"], batch["depth"], batch["has_depth"])
        return losses

    @torch.no_grad()
    def predict_tasks(self, images: Tensor, *, score_threshold: float = 0.01, nms_iou: float = 0.5) -> dict[str, Any]:
        """The decoded prediction of each task: ``det`` detections per image, ``seg`` the class map
        (B×H×W), ``depth`` the depth in metres (B×H×W)."""
        outputs = {task: value.float() for task, value in self(images).items()}  # decode in fp32 under autocast
        predictions: dict[str, Any] = {}
        if "det" in outputs:
            predictions["det"] = self.det_head.decode(
                outputs["det"], (images.shape[-2], images.shape[-1]), score_threshold=score_threshold, nms_iou=nms_iou
            )
        if "seg" in outputs:
            predictions["seg"] = outputs["seg"].argmax(dim=1)
        if "depth" in outputs:
            predictions["depth"] = self.depth_head.to_depth(outputs["depth"])
        return predictions

    @torch.no_grad()
    def predict(
        self, images: Tensor, *, score_threshold: float = 0.01, nms_iou: float = 0.5
    ) -> tuple[list[Detections], Tensor]:
        """Detections per image and the segmentation class map (B×H×W); needs both heads."""
        self.require_tasks(*PAPER_TASKS)
        predictions = self.predict_tasks(images, score_threshold=score_threshold, nms_iou=nms_iou)
        return predictions["det"], predictions["seg"]


def resnet10_multitask(
    *,
    width: float = 1.0,
    image_height: int = 128,
    anchors: Tensor | None = None,
    num_det_classes: int = NUM_DET_CLASSES,
    num_seg_classes: int = NUM_SEG_CLASSES,
    head_channels: int | None = None,
    pretrained_encoder: str | Path | None = None,
    tasks: Sequence[str] = DEFAULT_TASKS,
    det_assignment: DetAssignment = "centre",
    det_stride: DetStride = 8,
) -> MultiTaskNet:
    """Build the paper's network (§V-A): ResNet10 encoder, YOLO and FCN8 decoders.

    Args:
        width: width multiplier of the encoder (1.0 = ResNet10 proper).
        image_height: input height; used for the default anchors when ``anchors`` is None.
        anchors: A×2 anchor (w, h) in input pixels (e.g. from :func:`kmeans_anchors`).
        head_channels: decoder width (default: the encoder's stride-8 width).
        pretrained_encoder: local path of an ImageNet ResNet checkpoint; nothing is downloaded.
        tasks: the heads built (a non-empty subset of :data:`taskweight.classes.TASKS`).
        det_assignment: the detection head's target assignment and box parameterisation
            (``centre``: c = (j + σ(t))·s; ``neighbours``: c = (j + 2σ(t) − 0.5)·s, YOLOv5;
            see :mod:`taskweight.models.detection`).
        det_stride: the detection grid's stride, 8 (the paper's) or 4 (:class:`YoloDetectionHead`).
    """
    tasks = check_tasks(tasks)
    encoder = ResNet10Encoder(width)
    if pretrained_encoder is not None:
        load_imagenet_weights(encoder, pretrained_encoder)
    channels = head_channels or encoder.out_channels["s8"]
    if anchors is None:
        anchors = default_anchors(image_height)
    det = (
        YoloDetectionHead(
            encoder.out_channels,
            num_det_classes,
            anchors,
            channels=channels,
            assignment=det_assignment,
            stride=det_stride,
        )
        if "det" in tasks
        else None
    )
    seg = FCN8SegmentationHead(encoder.out_channels, num_seg_classes, channels=channels) if "seg" in tasks else None
    depth = DepthHead(encoder.out_channels, channels=channels) if "depth" in tasks else None
    return MultiTaskNet(encoder, det, seg, depth_head=depth)
