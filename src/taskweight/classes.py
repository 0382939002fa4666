"""Class conventions shared by every loader, the model and the metrics.

Detection classes (paper §V-B: cars, pedestrians, cyclists) and the three segmentation
classes the paper keeps (§V-B: "road, sidewalk and merged the other classes into void").
"""

from __future__ import annotations

from typing import Final

TASKS: Final[tuple[str, ...]] = ("det", "seg")
"""Task names used as keys of loss and weight dicts everywhere (paper's w_det, w_seg)."""

DET_CLASSES: Final[tuple[str, ...]] = ("car", "pedestrian", "cyclist")
CAR: Final[int] = 0
PEDESTRIAN: Final[int] = 1
CYCLIST: Final[int] = 2

SEG_CLASSES: Final[tuple[str, ...]] = ("void", "road", "sidewalk")
VOID: Final[int] = 0
ROAD: Final[int] = 1
SIDEWALK: Final[int] = 2
IGNORE_INDEX: Final[int] = 255
"""Segmentation pixels with this value carry no label and are excluded from loss and mIoU."""

NUM_DET_CLASSES: Final[int] = len(DET_CLASSES)
NUM_SEG_CLASSES: Final[int] = len(SEG_CLASSES)
