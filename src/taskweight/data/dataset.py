"""The base of every dataset format and the protocol the formats follow.

A format is a subclass of :class:`DetSegDataset`.  Its ``__init__`` checks its own options,
resolves its class mapping and calls :meth:`DetSegDataset._open`, which does the rest the same way
for every format:

1. **split** (:meth:`~DetSegDataset._split_entries`, :func:`taskweight.data.splits.split_entries`):
   ``root/splits/{split}.txt`` when it exists, else a split the format generates from the files on
   disk (:meth:`~DetSegDataset._generate_split`; :attr:`~DetSegDataset.generated_splits`), else an
   error naming the missing split file;
2. **index** every entry (:meth:`~DetSegDataset._index`, the format's): find its files, read the
   headers (and every chunk with ``verify="crc"``), parse and check its labels, pair its depth file
   (``depth=True``).  It returns ``(sample, problems)``: the :class:`Sample` and no problems, or
   None and every problem found (each a :class:`~taskweight.errors.DataFormatError` naming file and
   line, most important first).  It never raises for a problem of the sample;
3. **decide** (:meth:`~DetSegDataset._keep`, the base's): a sample without problems is kept (with
   ``verify="crc"`` after its label masks are decoded and checked, :meth:`~DetSegDataset._check_labels`);
   a sample with problems is, with ``on_error="raise"``, the first problem raised, with ``"skip"``
   dropped and recorded (``skipped``: :class:`~taskweight.data.problems.SkippedSample`; ``problems``:
   every error);
4. **finish**: warn about skipped samples and about a depth split without depth; a split left
   without samples raises :class:`~taskweight.data.problems.EmptySplitError`.

Loading (:meth:`~DetSegDataset.__getitem__`) decodes a sample (:meth:`~DetSegDataset._decode`, the
format's; :meth:`~DetSegDataset._depth`), resizes, caches and flips it the same way for every format.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from taskweight.classes import IGNORE_INDEX
from taskweight.data import transforms as T
from taskweight.data.depth import load_kitti_depth, paired_depth_png
from taskweight.data.images import checked_png
from taskweight.data.problems import EmptySplitError, SkippedSample
from taskweight.data.sampler import SampleKey
from taskweight.data.splits import SEEDED_SPLITS, SplitEntry, split_entries
from taskweight.errors import DataFormatError

ON_ERROR = ("raise", "skip")


def checked_index(index: int, length: int) -> int:
    """``index`` made non-negative; IndexError when it is out of range."""
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for {length} samples")
    return index


def dataset_item(
    item: dict[str, Any],
    *,
    augment: bool,
    has_det: bool,
    has_seg: bool,
    name: str,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """The public item of every format from a cached raw item (uint8 image, uint8 mask):
    optional random flip, tensors copied so the cache stays intact. Image and mask stay uint8
    (:func:`taskweight.data.collate.batch_to_device` converts them on the step's device). The flip is
    drawn from ``generator`` (default: torch's global one).

    A raw item with a ``depth`` map (float32 metres, 0 = no measurement) gives ``depth`` and
    ``has_depth`` = True; without one, ``has_depth`` is False and there is no ``depth``."""
    if augment:
        item = T.random_hflip(item, generator=generator)
    extra: dict[str, Any] = {"has_depth": item.get("depth") is not None}
    if extra["has_depth"]:
        extra["depth"] = item["depth"].float().clone()
    return {
        **extra,
        "image": item["image"].clone(),
        "boxes": item["boxes"].clone(),
        "labels": item["labels"].clone(),
        "ignore_boxes": item["ignore_boxes"].clone(),
        "seg": item["seg"].clone(),
        "has_det": has_det,
        "has_seg": has_seg,
        "name": name,
    }


def check_options(
    on_error: str, image_size: Sequence[int] | None, verify: str | None
) -> tuple[tuple[int, int] | None, str]:
    """The checked ``image_size`` (H, W) and ``verify`` (default: ``"crc"`` with ``on_error="skip"``,
    else ``"header"``) of a dataset's options; a bad option raises ValueError."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if image_size is not None:
        if len(tuple(image_size)) != 2 or min(int(v) for v in image_size) <= 0:
            raise ValueError(f"image_size must be (height, width) > 0, got {image_size!r}")
        image_size = (int(image_size[0]), int(image_size[1]))
    if verify is None:
        verify = "crc" if on_error == "skip" else "header"
    if verify not in ("header", "crc"):
        raise ValueError(f"verify must be 'header' or 'crc', got {verify!r}")
    return image_size, verify


@dataclass
class Sample:
    """One indexed image: where its files are and what is known before decoding."""

    name: str
    image: Path
    size: tuple[int, int]
    has_det: bool
    has_seg: bool
    info: dict[str, Any] = field(default_factory=dict)


class DetSegDataset(Dataset):
    """Base of the kitti, cityscapes and woodscape datasets (the protocol: see the module docstring).

    A format implements :meth:`_generate_split` (and sets :attr:`generated_splits` /
    :attr:`split_files_replace_generated` when they differ), :meth:`_index`, :meth:`_decode`, and where
    it has them :meth:`_check_labels` and :meth:`_depth`.

    ``on_error="raise"`` raises the first problem; ``"skip"`` drops the samples with problems,
    lists them in ``skipped`` (:class:`SkippedSample`: split, id, file, line, problem) and
    ``problems`` (the errors, each with path and line) and warns with a summary.
    ``verify="crc"`` (the default with ``"skip"``) reads every PNG completely when the
    dataset is opened and decodes every label mask (:meth:`_check_labels`: 16-bit masks with
    ids past 255, class indices outside the mapping ...), so everything that would fail when
    a sample is loaded - and that ``data check`` counts as bad - is found at opening and
    skipped (or raised); ``"header"`` (the default with ``"raise"``) reads headers only and
    a truncated file or a malformed mask raises when its sample is loaded.

    ``depth=True`` (a run whose tasks include depth) makes the formats index each image's depth
    ground truth too (``info["depth"]``, checked by :func:`taskweight.data.depth.paired_depth_png`);
    an image without one is not labelled for depth (its item's ``has_depth`` is False), ``repr``
    counts ``with_depth`` and a split where no image has depth is warned about.

    With ``verify="crc"``, ``unmapped`` holds, per mask file, the pixels of every
    segmentation label the class mapping does not cover and that therefore becomes void
    (label id -> pixels; colour-coded masks: ``"R,G,B"`` -> pixels); ``data check`` reports
    them as warnings.
    """

    format_name = "?"
    layout_name = "?"
    """The layout's name in messages (``expected the KITTI layout``)."""
    depth_source = "no depth ground truth"
    """Where the format's depth maps lie (for messages); formats that read depth replace it."""
    generated_splits: tuple[str, ...] = SEEDED_SPLITS
    """The splits :meth:`_generate_split` builds when ``splits/{split}.txt`` does not exist."""
    split_files_replace_generated = True
    """Whether a dataset with split files uses them only (of the generated splits, only ``"all"`` is left)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        image_size: tuple[int, int] | None = None,
        augment: bool = False,
        on_error: str = "raise",
        cache: bool = False,
        verify: str | None = None,
        depth: bool = False,
    ) -> None:
        self.image_size, self.verify = check_options(on_error, image_size, verify)
        self.read_depth = bool(depth)
        self.root = Path(root)
        self.split = split
        self.augment = augment
        self.on_error = on_error
        self.cache = cache
        self.skipped: list[SkippedSample] = []
        self.problems: list[DataFormatError] = []
        self.unmapped: dict[str, dict[int | str, int]] = {}
        self.samples: list[Sample] = []
        self._cache: dict[int, dict[str, Any]] = {}
        if not self.root.is_dir():
            raise DataFormatError(self.root, "dataset root not found")

    # ----------------------------------------------------------------- the protocol
    def _open(self) -> None:
        """Resolve the split, index every entry, keep or report it, finish (the module docstring's steps)."""
        for entry in self._split_entries():
            sample, problems = self._index(entry)
            self._keep(entry.name, sample, problems)
        self._finish()

    def _split_entries(self) -> list[SplitEntry]:
        """The entries of ``self.split`` (:func:`taskweight.data.splits.split_entries`)."""
        return split_entries(
            self.root,
            self.split,
            self._generate_split,
            generated=self.generated_splits,
            split_files_replace_generated=self.split_files_replace_generated,
        )

    def _generate_split(self, split: str) -> Iterable[str]:
        """Names of ``split`` (one of :attr:`generated_splits`) built from the files on disk; raises
        :class:`DataFormatError` about the dataset (e.g. no images at all)."""
        raise NotImplementedError

    def _index(self, entry: SplitEntry) -> tuple[Sample | None, list[DataFormatError]]:
        """(sample, []) or (None, its problems, first the one to raise); never raises for a problem of the sample."""
        raise NotImplementedError

    def _keep(self, name: str, sample: Sample | None, problems: Sequence[DataFormatError]) -> None:
        """Keep ``sample``; or, when it has problems, raise the first (``on_error="raise"``) or record
        it as skipped, with every problem (``"skip"``).

        With ``verify="crc"`` a sample without problems has its label masks decoded and
        checked first (:meth:`_check_labels`)."""
        problems = list(problems)
        if not problems and sample is None:
            raise TypeError(f"{type(self).__name__}._index gave neither a sample nor a problem for {name!r}")
        if not problems and sample is not None and self.verify == "crc":
            try:
                self._check_labels(sample)
            except DataFormatError as exc:
                problems = [exc]
        if not problems:
            assert sample is not None
            self.samples.append(sample)
            return
        if self.on_error == "raise":
            raise problems[0]
        self.skipped.append(SkippedSample.of(self.split, name, problems[0]))
        self.problems.extend(problems)

    def _finish(self) -> None:
        if self.skipped:
            warnings.warn(
                f"{self.root} [{self.split}]: skipped {len(self.skipped)} bad sample(s), first: {self.skipped[0]}",
                stacklevel=4,
            )
        if self.read_depth and self.samples and not any(self.has_depth(s) for s in self.samples):
            warnings.warn(
                f"{self.root} [{self.split}]: depth was asked for but none of the {len(self.samples)} samples has "
                f"a depth map ({self.depth_source}); the split trains and scores no depth",
                stacklevel=4,
            )
        if not self.samples:
            raise EmptySplitError(
                self.root,
                f"split {self.split!r} has no usable samples",
                skipped=self.skipped,
                problems=self.problems,
                unmapped=self.unmapped,
            )

    # ----------------------------------------------------------------- helpers of the formats' _index
    def _require_image_dir(self, path: Path) -> None:
        if not path.is_dir():
            raise DataFormatError(path, f"image directory not found (expected the {self.layout_name} layout)")

    def _missing_image(self, entry: SplitEntry, image: Path, labels: Sequence[Path]) -> DataFormatError:
        """The problem of an entry whose ``image`` does not exist: the split-file line that names it,
        or else the first existing of its ``labels`` (a label without its image)."""
        where = image.relative_to(self.root).as_posix()
        if entry.source is not None:
            return DataFormatError(entry.source, f"image {where} not found", line=entry.line)
        orphan = next((p for p in labels if p.is_file()), labels[-1])
        return DataFormatError(orphan, f"label without its image: {where} not found")

    def _checked_png(self, path: Path, what: str) -> tuple[tuple[int, int], str]:
        """((H, W), mode) of a PNG's header; with ``verify="crc"`` every chunk is read too."""
        return checked_png(path, what, crc=self.verify == "crc")

    def _paired_depth(
        self, path: Path, size: tuple[int, int], image: Path, problems: list[DataFormatError], what: str = "depth map"
    ) -> Path | None:
        """:func:`taskweight.data.depth.paired_depth_png` with this dataset's ``verify``."""
        return paired_depth_png(path, size, image, problems, verify=self.verify == "crc", what=what)

    def _check_labels(self, sample: Sample) -> None:
        """Decode ``sample``'s label files and check their content as loading it would (raise
        :class:`DataFormatError` naming the file); record unmapped segmentation labels in
        ``unmapped``.  Called at opening with ``verify="crc"``; formats override it."""

    def _note_unmapped(self, mask: str | Path, counts: dict[Any, int]) -> None:
        if counts:
            self.unmapped[str(mask)] = dict(counts)

    # ----------------------------------------------------------------- items
    def _decode(self, sample: Sample) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    @staticmethod
    def has_depth(sample: Sample) -> bool:
        """Whether ``sample`` is labelled for depth: its format indexed a depth file for it
        (``info["depth"]``; only when the dataset was opened with ``depth=True``)."""
        return sample.info.get("depth") is not None

    def _depth(self, sample: Sample) -> np.ndarray | None:
        """The sample's depth map (float32 metres along the optical axis, 0 = no measurement, the
        image's size) or None: by default ``info["depth"]`` read as KITTI's uint16 format
        (:func:`taskweight.data.depth.load_kitti_depth`); formats storing depth otherwise override this."""
        path = sample.info.get("depth")
        if path is None:
            return None
        return load_kitti_depth(path, sample.size)

    def load_raw(self, index: int) -> dict[str, Any]:
        """Decoded sample at its original size: uint8 image 3 x H x W, uint8 seg, boxes, labels
        (and ``depth``, float32 metres, when the format read one for the sample)."""
        s = self.samples[index]
        rgb, seg, boxes, labels, ignore = self._decode(s)
        if rgb.shape[:2] != s.size:
            raise DataFormatError(s.image, f"image changed size since the dataset was opened: {rgb.shape[:2]}")
        if seg is None:
            seg = np.full(rgb.shape[:2], IGNORE_INDEX, np.uint8)
        raw = {
            "image": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
            "seg": torch.from_numpy(np.ascontiguousarray(seg)),
            "boxes": torch.from_numpy(np.asarray(boxes, np.float32).reshape(-1, 4)),
            "labels": torch.from_numpy(np.asarray(labels, np.int64).reshape(-1)),
            "ignore_boxes": torch.from_numpy(np.asarray(ignore, np.float32).reshape(-1, 4)),
        }
        depth = self._depth(s)
        if depth is not None:
            raw["depth"] = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))
        return raw

    def _load(self, index: int) -> dict[str, Any]:
        if self.cache and index in self._cache:
            return self._cache[index]
        item = self.load_raw(index)
        if self.image_size is not None:
            item = T.resize(item, self.image_size)
        if self.cache:
            self._cache[index] = item
        return item

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        """The item at an index; a :class:`SampleKey` also seeds this visit's augmentation."""
        generator = None
        if isinstance(key, SampleKey):
            generator = torch.Generator().manual_seed(key.seed)
            key = key.index
        index = checked_index(key, len(self))
        s = self.samples[index]
        return dataset_item(
            self._load(index),
            augment=self.augment,
            has_det=s.has_det,
            has_seg=s.has_seg,
            name=s.name,
            generator=generator,
        )

    def __repr__(self) -> str:
        det = sum(s.has_det for s in self.samples)
        seg = sum(s.has_seg for s in self.samples)
        depth = f"with_depth={sum(self.has_depth(s) for s in self.samples)}, " if self.read_depth else ""
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, samples={len(self)}, "
            f"with_detection={det}, with_segmentation={seg}, {depth}image_size={self.image_size})"
        )
