"""FCN8-style semantic segmentation decoder (paper §V-A, Fig. 2; Long et al. 2015).

Skips at strides 32, 16 and 8: each encoder map is projected by a 1×1 convolution, the
coarser map is upsampled ×2 and added to the finer one (32 → 16 → 8), a 3×3 convolution
refines the stride-8 fusion, a 1×1 classifier scores the classes and bilinear upsampling
brings the scores to the input size. The loss is the per-pixel cross-entropy averaged over
labelled pixels (label 255 is ignored).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from taskweight.classes import IGNORE_INDEX


class FCN8SegmentationHead(nn.Module):
    """FCN8 decoder producing class logits at input resolution."""

    def __init__(self, in_channels: dict[str, int], num_classes: int, channels: int = 64) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.lateral = nn.ModuleDict({k: nn.Conv2d(in_channels[k], channels, 1) for k in ("s8", "s16", "s32")})
        self.refine = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: dict[str, Tensor], output_size: tuple[int, int]) -> Tensor:
        p = self.lateral["s32"](features["s32"])
        p = F.interpolate(p, size=features["s16"].shape[-2:], mode="bilinear", align_corners=False)
        p = p + self.lateral["s16"](features["s16"])
        p = F.interpolate(p, size=features["s8"].shape[-2:], mode="bilinear", align_corners=False)
        p = p + self.lateral["s8"](features["s8"])
        logits = self.classifier(self.refine(p))
        return F.interpolate(logits, size=output_size, mode="bilinear", align_corners=False)

    @staticmethod
    def loss(logits: Tensor, target: Tensor) -> Tensor:
        """Mean cross-entropy over labelled pixels (``IGNORE_INDEX`` excluded); 0 when none is
        labelled. Summed, then divided by the count of labelled pixels: no host synchronisation."""
        total = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="sum")
        return total / (target != IGNORE_INDEX).sum().clamp_min(1)
