"""Batching of dataset items (variable numbers of boxes stay lists) and moving batches to a device.

Images and label maps travel as they were decoded, uint8, until they reach the step's device:
:func:`batch_to_device` copies the uint8 batch (a quarter of the bytes of float32 images, an
eighth of int64 masks) and converts it there, :func:`network_input` (x / 255 → float32 in
[0, 1]) and ``seg`` → int64. On a CUDA device the host then neither converts nor pins float
images; on the CPU the conversion is the same arithmetic as before, made once per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from taskweight.classes import TASKS


def collate_batch(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch.

    Returns ``image`` (B, 3, H, W) and ``seg`` (B, H, W) in the items' dtypes (uint8 from a
    dataset: :func:`batch_to_device` makes them the network's float32 and int64), ``boxes`` /
    ``labels`` / ``ignore_boxes`` lists of per-image tensors, ``has_det`` / ``has_seg``
    bool tensors (B,), ``labelled_tasks`` (the tasks at least one image is labelled for, read
    on the host so a step on a GPU never waits to learn it) and ``names`` (list of str).
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    shapes = {tuple(it["image"].shape) for it in items}
    if len(shapes) > 1:
        raise ValueError(
            f"images of one batch differ in size {sorted(shapes)}: open the dataset with image_size=(H, W)"
        )
    return {
        "image": torch.stack([it["image"] for it in items]),
        "seg": torch.stack([it["seg"] for it in items]),
        "boxes": [it["boxes"] for it in items],
        "labels": [it["labels"] for it in items],
        "ignore_boxes": [it["ignore_boxes"] for it in items],
        "has_det": torch.tensor([bool(it["has_det"]) for it in items], dtype=torch.bool),
        "has_seg": torch.tensor([bool(it["has_seg"]) for it in items], dtype=torch.bool),
        "labelled_tasks": tuple(task for task in TASKS if any(bool(it.get(f"has_{task}", False)) for it in items)),
        "names": [str(it["name"]) for it in items],
        "has_depth": torch.tensor([bool(it.get("has_depth", False)) for it in items], dtype=torch.bool),
        **_depth(items),
    }


def _depth(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``depth`` (B, H, W) float32 metres, 0 = no measurement (also for images without depth),
    when any item has one."""
    if not any(it.get("depth") is not None for it in items):
        return {}
    shape = next(it["depth"].shape for it in items if it.get("depth") is not None)
    return {"depth": torch.stack([it["depth"] if it.get("depth") is not None else torch.zeros(shape) for it in items])}


def network_input(images: Tensor, *, channels_last: bool = False) -> Tensor:
    """The network's input from a batch of images: uint8 x (0–255) becomes float32 x / 255 in
    [0, 1] (the same arithmetic as a per-image ``x.float() / 255``); floating images pass through
    as they are. ``channels_last`` lays the result out NHWC in the same pass."""
    layout = torch.channels_last if channels_last and images.dim() == 4 else torch.preserve_format
    if images.dtype == torch.uint8:
        return images.to(dtype=torch.float32, memory_format=layout).div_(255.0)
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0-255) or floating point in [0, 1], got {images.dtype}")
    return images.contiguous(memory_format=layout) if layout is torch.channels_last else images


def batch_to_device(batch: Mapping[str, Any], device: torch.device, *, channels_last: bool = False) -> dict[str, Any]:
    """Move a collated batch's tensors (and per-image box lists) to ``device``, then make its
    ``image`` the network's input (:func:`network_input`) and its ``seg`` int64 there.

    Copies are non-blocking (a real overlap with a pinned-memory loader on CUDA); with
    ``channels_last`` the image batch is laid out NHWC to match a channels-last model.
    """
    moved: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            moved[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            moved[key] = [v.to(device, non_blocking=True) for v in value]
        else:
            moved[key] = value
    if "image" in moved:
        moved["image"] = network_input(moved["image"], channels_last=channels_last)
    if "seg" in moved:
        moved["seg"] = moved["seg"].long()
    return moved
