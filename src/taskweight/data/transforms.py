"""Geometric transforms of a sample dict, applied consistently to image, mask and boxes.

A sample holds ``image`` (3 x H x W, uint8 or float), optionally ``seg`` (H x W label map),
``boxes`` and ``ignore_boxes`` (N x 4 xyxy, continuous pixel coordinates: pixel column j
spans [j, j+1)).  Functions return a new dict and never modify their input in place.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

BOX_KEYS = ("boxes", "ignore_boxes")


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize (antialiased when shrinking) of a 3 x H x W image; keeps the dtype."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    x = image.unsqueeze(0).float()
    shrink = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)[0]
    if image.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    return out.to(image.dtype)


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of an H x W label map (samples at pixel centres); keeps the dtype."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    out = F.interpolate(mask[None, None].float(), size=size, mode="nearest-exact")[0, 0]
    return out.to(mask.dtype)


def scale_boxes(boxes: Tensor, sx: float, sy: float) -> Tensor:
    if boxes.numel() == 0:
        return boxes.clone()
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


def resize(sample: dict[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    """Resize image (bilinear), seg and depth (nearest) and boxes (scaled) to ``size`` = (H, W)."""
    out = dict(sample)
    h, w = sample["image"].shape[-2:]
    size = (int(size[0]), int(size[1]))
    out["image"] = resize_image(sample["image"], size)
    if sample.get("seg") is not None:
        out["seg"] = resize_mask(sample["seg"], size)
    if sample.get("depth") is not None:  # nearest: a resampled depth is a measured one, 0 stays "none"
        out["depth"] = resize_mask(sample["depth"], size)
    sx, sy = size[1] / w, size[0] / h
    for key in BOX_KEYS:
        if key in sample:
            out[key] = scale_boxes(sample[key], sx, sy)
    return out


def flip_boxes(boxes: Tensor, width: int) -> Tensor:
    if boxes.numel() == 0:
        return boxes.clone()
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


def hflip(sample: dict[str, Any]) -> dict[str, Any]:
    """Mirror image, seg, depth and boxes left-right."""
    out = dict(sample)
    width = sample["image"].shape[-1]
    out["image"] = sample["image"].flip(-1)
    if sample.get("seg") is not None:
        out["seg"] = sample["seg"].flip(-1)
    if sample.get("depth") is not None:
        out["depth"] = sample["depth"].flip(-1)
    for key in BOX_KEYS:
        if key in sample:
            out[key] = flip_boxes(sample[key], width)
    return out


def random_hflip(sample: dict[str, Any], p: float = 0.5, *, generator: torch.Generator | None = None) -> dict[str, Any]:
    """``hflip`` with probability p, drawn with ``torch.rand`` from ``generator`` (default: torch's
    global generator; :mod:`taskweight.data.sampler` says which one a loader uses)."""
    if float(torch.rand((), generator=generator)) < p:
        return hflip(sample)
    return sample
