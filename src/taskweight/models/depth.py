"""Monocular depth decoder and its loss (issue 15: a third task on the shared encoder).

The decoder is the FCN8 decoder of the segmentation head (skips at strides 32, 16 and 8,
bilinear upsampling to the input size) with a single output channel: the natural log of
the depth in metres, so the predicted depth exp(·) is always positive. Its output bias
starts at log(10 m), the order of a driving scene's depths.

Loss: the **scale-invariant log loss** of Eigen, Puhrsch & Fergus (NIPS 2014, Eq. 4) with
λ = 0.5, the value they train with: for one image with n valid pixels and
d_i = log ŷ_i − log y_i,

    L = (1/n) Σ d_i² − (λ/n²) (Σ d_i)²,

averaged over the images of the batch that have valid pixels. Only pixels with a measured
depth (y > 0; KITTI's 0 = no measurement) count. The choice over berHu: it is the loss of
the paper that made monocular depth a benchmark on KITTI, it is defined on the same log
scale the head predicts on, and λ = 0.5 keeps half of the absolute-scale error, which a
single camera at a fixed height can learn.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from taskweight.models.segmentation import FCN8SegmentationHead

SILOG_LAMBDA = 0.5
"""λ of the scale-invariant log loss (Eigen et al. 2014)."""
INITIAL_DEPTH_M = 10.0
"""Depth the untrained head predicts everywhere (its output bias is log of it)."""


class DepthHead(nn.Module):
    """FCN8-style decoder predicting log depth (metres) at input resolution: B×H×W."""

    def __init__(self, in_channels: dict[str, int], channels: int = 64) -> None:
        super().__init__()
        self.decoder = FCN8SegmentationHead(in_channels, 1, channels=channels)
        bias = self.decoder.classifier.bias
        assert bias is not None  # nn.Conv2d has a bias by default
        nn.init.constant_(bias, math.log(INITIAL_DEPTH_M))

    def forward(self, features: dict[str, Tensor], output_size: tuple[int, int]) -> Tensor:
        return self.decoder(features, output_size)[:, 0]

    @staticmethod
    def to_depth(log_depth: Tensor) -> Tensor:
        """Depth in metres from the head's output."""
        return log_depth.float().exp()

    @staticmethod
    def loss(log_depth: Tensor, target: Tensor, labelled: Tensor | None = None) -> Tensor:
        """Scale-invariant log loss (λ = :data:`SILOG_LAMBDA`) over the valid pixels (``target`` > 0,
        metres) of the ``labelled`` images; 0 when there is none. No host synchronisation."""
        valid = target > 0
        if labelled is not None:
            valid = valid & labelled.view(-1, 1, 1)
        diff = torch.where(valid, log_depth.float() - torch.log(target.float().clamp_min(1e-6)), 0.0)
        count = valid.sum(dim=(1, 2)).float()
        n = count.clamp_min(1.0)
        mean_sq = diff.pow(2).sum(dim=(1, 2)) / n
        mean = diff.sum(dim=(1, 2)) / n
        per_image = mean_sq - SILOG_LAMBDA * mean.pow(2)
        has = (count > 0).float()
        return (per_image * has).sum() / has.sum().clamp_min(1.0)
