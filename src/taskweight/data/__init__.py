"""Datasets for joint detection + segmentation, behind a small format registry.

``open_dataset("kitti", root, "train", image_size=(128, 416))`` returns a torch Dataset of
dict items:

- ``image``: uint8 3 x H x W, as decoded (:func:`batch_to_device` gives the network float32 in [0, 1]);
- ``boxes``: float32 N x 4 xyxy pixels; ``labels``: int64 N (``classes.DET_CLASSES``);
- ``ignore_boxes``: float32 M x 4 (DontCare regions: detections there are not penalised);
- ``seg``: uint8 H x W (0 void, 1 road, 2 sidewalk, 255 no label; int64 after :func:`batch_to_device`);
- ``has_det`` / ``has_seg``: bool, whether the image is labelled for each task; ``name``: str;
- ``has_depth``: bool, and ``depth``: float32 H x W metres along the optical axis, 0 = no
  measurement, when the image has depth ground truth (read with ``depth=True`` by every built-in
  format: KITTI depth PNGs, Cityscapes disparity + camera files, WoodScape user-brought depth;
  :mod:`taskweight.data.depth`).

Formats: ``kitti`` (:mod:`taskweight.data.kitti`), ``cityscapes``
(:mod:`taskweight.data.cityscapes`), ``woodscape`` (:mod:`taskweight.data.woodscape`).
Their class mappings are YAML data in ``taskweight/data/mappings/{format}.yaml``; ``mapping=``
takes a dict or a YAML path merged over them.  Every format honours ``on_error`` ("raise":
the first bad input is a :class:`~taskweight.errors.DataFormatError` naming file and line;
"skip": bad samples are dropped, listed in ``dataset.skipped`` (split, id, file, line,
problem; :func:`skipped_report` gathers them) / ``dataset.problems`` and warned about).
:func:`taskweight.data.check.check_dataset` lists every problem of a dataset.

:func:`collate_batch` stacks them; :func:`batch_to_device` moves a batch to a device and
converts it there.  Other formats register a factory with
:func:`register_format`; a factory is called as
``factory(root, split, image_size=..., augment=..., on_error=..., mapping=..., cache=..., **options)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from taskweight.data.cityscapes import CityscapesDataset
from taskweight.data.class_mapping import default_mapping, merged_mapping
from taskweight.data.collate import batch_to_device, collate_batch, network_input
from taskweight.data.kitti import DEFAULT_MAPPING, KittiDataset, resolve_mapping, resolve_split
from taskweight.data.kitti_labels import KittiObject, parse_label_file, parse_label_line
from taskweight.data.problems import SkippedSample, skipped_report
from taskweight.data.sampler import EpochSampler, SampleKey
from taskweight.data.splits import DEFAULT_SPLIT_SEED, seeded_split
from taskweight.data.woodscape import WoodScapeDataset
from taskweight.errors import ConfigError

DatasetFactory = Callable[..., Dataset]
_FORMATS: dict[str, DatasetFactory] = {}


def register_format(name: str, factory: DatasetFactory, *, replace: bool = False) -> None:
    """Make ``open_dataset(name, ...)`` build datasets with ``factory``."""
    if not name or not isinstance(name, str):
        raise ValueError(f"format name must be a non-empty string, got {name!r}")
    if name in _FORMATS and not replace and _FORMATS[name] is not factory:
        raise ValueError(f"dataset format {name!r} is already registered")
    _FORMATS[name] = factory


def available_formats() -> list[str]:
    return sorted(_FORMATS)


def format_option(format: str, option: str) -> bool:
    """Whether the dataset format ``format`` takes the keyword option ``option`` (e.g. ``depth``)."""
    if format not in _FORMATS:
        return False
    params = inspect.signature(_FORMATS[format]).parameters
    return option in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def open_dataset(
    format: str,
    root: str | Path,
    split: str,
    *,
    image_size: tuple[int, int] | None = None,
    augment: bool = False,
    on_error: str = "raise",
    mapping: dict | str | Path | None = None,
    cache: bool = False,
    **options,
) -> Dataset:
    """Open ``split`` of the dataset at ``root`` stored in layout ``format``.

    ``image_size`` = (H, W) resizes images (bilinear), masks (nearest) and boxes;
    ``augment`` adds a random horizontal flip (drawn with ``torch.rand``);
    ``on_error`` = "raise" (default) or "skip" bad samples; ``mapping`` overrides the
    format's class mapping; ``cache`` keeps decoded samples in memory.
    """
    if format not in _FORMATS:
        raise ValueError(f"unknown dataset format {format!r}: available {available_formats()}")
    params = inspect.signature(_FORMATS[format]).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [
            n
            for n, p in params.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
            and n not in ("image_size", "augment", "on_error", "mapping", "cache")
        ]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"option 'data.options': the {format} format has no option(s) {', '.join(unknown)}; "
                f"its options: {', '.join(accepted) or 'none'}"
            )
    return _FORMATS[format](
        root, split, image_size=image_size, augment=augment, on_error=on_error, mapping=mapping, cache=cache, **options
    )


register_format("kitti", KittiDataset)
register_format("cityscapes", CityscapesDataset)
register_format("woodscape", WoodScapeDataset)

__all__ = [
    "DEFAULT_MAPPING",
    "DEFAULT_SPLIT_SEED",
    "CityscapesDataset",
    "EpochSampler",
    "KittiDataset",
    "KittiObject",
    "SampleKey",
    "SkippedSample",
    "WoodScapeDataset",
    "available_formats",
    "batch_to_device",
    "collate_batch",
    "default_mapping",
    "format_option",
    "merged_mapping",
    "network_input",
    "open_dataset",
    "parse_label_file",
    "parse_label_line",
    "register_format",
    "resolve_mapping",
    "resolve_split",
    "seeded_split",
    "skipped_report",
]
