"""Check a dataset: count images and labels per split and class, list every problem.

:func:`check_dataset` opens each split with ``on_error="skip"`` and ``verify="crc"`` (so
every PNG is read completely), collects the problems the loader found (missing images or
labels, malformed lines, unknown classes, bad boxes, corrupt PNGs, size mismatches), then
decodes every remaining sample (finding e.g. label PNG pixels that hold unknown ids) and
counts images, detection / segmentation labels, boxes per class, ignore regions and
segmentation pixels per class.  Problems are (path, line, message) triples, each listed once.
An extra pass over split ``"all"`` finds files that no split names.

A sample counts as ``bad`` exactly when ``on_error="skip"`` (with its default ``verify="crc"``)
drops it: the loaders decode every label mask when they open a split that way, so the
problems that used to surface only when a sample was loaded (a 16-bit mask with ids past
255, a WoodScape class index outside the mapping) are found and skipped at opening too.

Warnings do not make a dataset bad: segmentation labels that the class mapping does not
cover (label ids outside it, colours it does not list) become void; they are reported per
label with their pixels and images (``id 37: 1204 px in 3 images``).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from taskweight.classes import DET_CLASSES, IGNORE_INDEX, SEG_CLASSES
from taskweight.data.problems import EmptySplitError
from taskweight.errors import DataFormatError

DEFAULT_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


@dataclass
class Unmapped:
    """A segmentation label found in masks but not covered by the class mapping (void)."""

    id: int | str
    """Label id, or ``"R,G,B"`` of a colour-coded mask."""
    pixels: int = 0
    images: int = 0
    example: str = ""
    """One mask file that holds it."""

    @property
    def message(self) -> str:
        what = f"colour {self.id}" if isinstance(self.id, str) else f"id {self.id}"
        return (
            f"{what}: {self.pixels} px in {self.images} image(s), not in the class mapping (void), e.g. {self.example}"
        )


@dataclass
class SplitCounts:
    images: int = 0
    """Usable images (opened and decoded without a problem)."""
    bad: int = 0
    """Images dropped because of a problem."""
    with_detection: int = 0
    with_segmentation: int = 0
    with_depth: int = 0
    """Images paired with a depth file (counted when the dataset is checked with ``depth=True``)."""
    boxes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DET_CLASSES, 0))
    ignore_boxes: int = 0
    seg_pixels: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*SEG_CLASSES, "ignore"), 0))


@dataclass
class CheckReport:
    format: str
    root: str
    splits: dict[str, SplitCounts] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    unmapped: dict[int | str, Unmapped] = field(default_factory=dict)
    """Segmentation labels outside the class mapping (warnings, see :meth:`warnings`)."""

    @property
    def ok(self) -> bool:
        """No problems (warnings do not count)."""
        return not self.problems

    @property
    def warnings(self) -> list[str]:
        """One line per unmapped segmentation label: ids in increasing order, then colours."""
        return [f"segmentation {self.unmapped[k].message}" for k in self._unmapped_keys()]

    def _unmapped_keys(self) -> list[int | str]:
        return sorted(self.unmapped, key=lambda k: (isinstance(k, str), k if isinstance(k, int) else 0, str(k)))

    def add_unmapped(self, masks: dict[str, dict[int | str, int]]) -> None:
        """Count ``{mask file: {label: pixels}}``; a mask file already counted is skipped."""
        for mask, counts in masks.items():
            if mask in self._masks:
                continue
            self._masks.add(mask)
            for label, pixels in counts.items():
                entry = self.unmapped.setdefault(label, Unmapped(label, example=mask))
                entry.pixels += int(pixels)
                entry.images += 1

    def add(self, error: DataFormatError | Problem) -> None:
        p = error if isinstance(error, Problem) else Problem(str(error.path), error.line, error.reason)
        if p not in self._seen:
            self._seen.add(p)
            self.problems.append(p)

    def __post_init__(self) -> None:
        self._seen: set[Problem] = set(self.problems)
        self._masks: set[str] = set()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "root": self.root,
            "ok": self.ok,
            "splits": {k: asdict(v) for k, v in self.splits.items()},
            "problems": [asdict(p) for p in self.problems],
            "warnings": [
                {
                    "kind": "unmapped_segmentation_label",
                    **asdict(self.unmapped[k]),
                    "message": f"segmentation {self.unmapped[k].message}",
                }
                for k in self._unmapped_keys()
            ],
        }

    def to_text(self) -> str:
        lines = [f"{self.format} dataset at {self.root}"]
        for split, c in self.splits.items():
            boxes = ", ".join(f"{k} {v}" for k, v in c.boxes.items())
            lines.append(
                f"  {split}: {c.images} images ({c.bad} bad), detection labels {c.with_detection}, "
                f"segmentation labels {c.with_segmentation}, depth {c.with_depth}; boxes: {boxes}; ignore regions "
                f"{c.ignore_boxes}"
            )
        lines.append(f"{len(self.problems)} problem(s)" + (":" if self.problems else ""))
        lines += [f"  {p}" for p in self.problems]
        warnings_ = self.warnings
        if warnings_:
            lines.append(f"{len(warnings_)} warning(s):")
            lines += [f"  {w}" for w in warnings_]
        return "\n".join(lines)


def _count(counts: SplitCounts, item: dict[str, Any], has_det: bool, has_seg: bool) -> None:
    counts.images += 1
    counts.with_detection += bool(has_det)
    counts.with_segmentation += bool(has_seg)
    if has_det:
        for label in item["labels"].tolist():
            counts.boxes[DET_CLASSES[int(label)]] += 1
        counts.ignore_boxes += int(item["ignore_boxes"].shape[0])
    if has_seg:
        hist = np.bincount(item["seg"].numpy().ravel(), minlength=256)
        for i, name in enumerate(SEG_CLASSES):
            counts.seg_pixels[name] += int(hist[i])
        counts.seg_pixels["ignore"] += int(hist[IGNORE_INDEX])


def _open(format: str, root: Path, split: str, mapping: Any, options: dict[str, Any]):
    from taskweight.data import open_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return open_dataset(format, root, split, on_error="skip", mapping=mapping, verify="crc", **options)


def check_dataset(
    format: str,
    root: str | Path,
    splits: str | list[str] | tuple[str, ...] | None = None,
    *,
    mapping: dict | str | Path | None = None,
    decode: bool = True,
    **options: Any,
) -> CheckReport:
    """Check ``splits`` (default train, val, test; ``"all"``: every image as one split) of the
    dataset at ``root``; never raises for bad data (bad arguments still raise ValueError)."""
    root = Path(root)
    if splits is None:
        splits = list(DEFAULT_SPLITS)
    elif isinstance(splits, str):
        splits = [splits]
    report = CheckReport(format=format, root=str(root))
    for split in splits:
        counts = report.splits.setdefault(split, SplitCounts())
        try:
            ds = _open(format, root, split, mapping, options)
        except EmptySplitError as exc:  # every sample bad: still list and count them
            for error in exc.problems:
                report.add(error)
            report.add_unmapped(exc.unmapped)
            counts.bad += len(exc.skipped)
            report.add(exc)
            continue
        except DataFormatError as exc:
            report.add(exc)
            continue
        for error in getattr(ds, "problems", []):
            report.add(error)
        report.add_unmapped(getattr(ds, "unmapped", {}))
        counts.bad += len(getattr(ds, "skipped", []))
        for i in range(len(ds)):
            has_det, has_seg = ds.samples[i].has_det, ds.samples[i].has_seg
            counts.with_depth += bool(ds.has_depth(ds.samples[i]))
            if not decode:
                counts.images += 1
                continue
            try:
                item = ds.load_raw(i)
            except DataFormatError as exc:
                report.add(exc)
                counts.bad += 1
                continue
            _count(counts, item, has_det, has_seg)
    if "all" not in splits:
        try:
            ds = _open(format, root, "all", mapping, options)
            for error in getattr(ds, "problems", []):
                report.add(error)
            report.add_unmapped(getattr(ds, "unmapped", {}))
        except EmptySplitError as exc:
            for error in exc.problems:
                report.add(error)
            report.add_unmapped(exc.unmapped)
        except DataFormatError as exc:
            if not report.problems:
                report.add(exc)
    return report
