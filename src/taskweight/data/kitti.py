"""KITTI-layout dataset: object labels (``label_2``) and semantic label ids (``semantic``).

Layout under ``root``::

    training/image_2/NAME.png     RGB image (required)
    training/label_2/NAME.txt     KITTI object labels -> the sample is labelled for detection
    training/semantic/NAME.png    8-bit Cityscapes labelIds -> the sample is labelled for segmentation
    splits/SPLIT.txt              one NAME per line (``split="all"``: every image)

Real KITTI covers the two tasks with different images (7481 object labels, a few hundred
semantic masks); a sample carries whatever exists and says so in ``has_det`` / ``has_seg``.

Class mapping (:data:`DEFAULT_MAPPING`, overridable with ``mapping=``):

- detection: Car, Van -> car; Pedestrian, Person_sitting -> pedestrian; Cyclist -> cyclist;
  DontCare -> ``ignore_boxes`` (detections there are not penalised); Truck, Tram, Misc are
  not used (dropped, neither targets nor ignore regions); any other type is an error.
- segmentation: label id 7 (road) -> road, 8 (sidewalk) -> sidewalk, every other id -> void.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from taskweight.classes import DET_CLASSES, IGNORE_INDEX, SEG_CLASSES
from taskweight.data import transforms as T
from taskweight.data.kitti_labels import parse_label_file
from taskweight.errors import DataFormatError

IGNORE = "ignore"

DEFAULT_MAPPING: dict[str, dict[Any, str | None]] = {
    "detection": {
        "Car": "car",
        "Van": "car",
        "Pedestrian": "pedestrian",
        "Person_sitting": "pedestrian",
        "Cyclist": "cyclist",
        "DontCare": IGNORE,
        "Truck": None,
        "Tram": None,
        "Misc": None,
    },
    # Cityscapes labelIds; ids not listed map to "void".
    "segmentation": {7: "road", 8: "sidewalk"},
}
"""KITTI type -> detection class name, ``"ignore"`` (DontCare region) or ``None`` (not used);
semantic label id -> segmentation class name (``"ignore"`` gives 255)."""

IMAGE_DIR, LABEL_DIR, SEMANTIC_DIR, SPLIT_DIR = "training/image_2", "training/label_2", "training/semantic", "splits"
ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class SplitEntry:
    name: str
    source: Path | None = None  # split file that listed it
    line: int | None = None


@dataclass
class _Sample:
    name: str
    image: Path
    label: Path | None
    semantic: Path | None
    size: tuple[int, int]  # original H, W
    boxes: np.ndarray  # N x 4 float32
    labels: np.ndarray  # N int64
    ignore: np.ndarray  # M x 4 float32


# --------------------------------------------------------------------------------- mapping
def resolve_mapping(mapping: dict | None = None) -> tuple[dict[str, int | str | None], np.ndarray]:
    """Merge ``mapping`` into :data:`DEFAULT_MAPPING`; return (type -> class index | "ignore" |
    None, 256-entry label-id lookup table)."""
    merged = copy.deepcopy(DEFAULT_MAPPING)
    for key, value in (mapping or {}).items():
        if key not in merged:
            raise ValueError(f"mapping: unknown key {key!r}, expected 'detection' and/or 'segmentation'")
        if not isinstance(value, dict):
            raise ValueError(f"mapping[{key!r}] must be a dict")
        merged[key].update(value)
    det: dict[str, int | str | None] = {}
    for kitti_type, target in merged["detection"].items():
        if target is None or target == IGNORE:
            det[str(kitti_type)] = target
        elif target in DET_CLASSES:
            det[str(kitti_type)] = DET_CLASSES.index(target)
        else:
            raise ValueError(f"mapping['detection'][{kitti_type!r}] = {target!r}: expected one of "
                             f"{list(DET_CLASSES)}, 'ignore' or None")
    lut = np.zeros(256, np.uint8)  # void
    for label_id, target in merged["segmentation"].items():
        if not isinstance(label_id, (int, np.integer)) or not 0 <= int(label_id) <= 255:
            raise ValueError(f"mapping['segmentation'] key {label_id!r} must be a label id in 0..255")
        if target == IGNORE:
            lut[int(label_id)] = IGNORE_INDEX
        elif target in SEG_CLASSES:
            lut[int(label_id)] = SEG_CLASSES.index(target)
        else:
            raise ValueError(f"mapping['segmentation'][{label_id}] = {target!r}: expected one of "
                             f"{list(SEG_CLASSES)} or 'ignore'")
    return det, lut


# --------------------------------------------------------------------------------- splits
def resolve_split(root: Path, split: str) -> list[SplitEntry]:
    """Names of a split: ``root/splits/SPLIT.txt`` if it exists, every image for ``"all"``.

    The one place that decides which images form a split (extend here for other schemes).
    """
    image_dir = root / IMAGE_DIR
    split_file = root / SPLIT_DIR / f"{split}.txt"
    if split_file.is_file():
        entries, seen = [], {}
        try:
            text = split_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataFormatError(split_file, f"cannot read split file: {exc}") from None
        for no, line in enumerate(text.splitlines(), start=1):
            token = line.strip()
            if not token or token.startswith("#"):
                continue
            if len(token.split()) != 1:
                raise DataFormatError(split_file, f"expected one image name per line, got {token!r}", line=no)
            name = token[:-4] if token.endswith(".png") else token
            if name in seen:
                raise DataFormatError(split_file, f"{name!r} is listed twice (first on line {seen[name]})", line=no)
            seen[name] = no
            entries.append(SplitEntry(name, split_file, no))
        if not entries:
            raise DataFormatError(split_file, "split file lists no images")
        return entries
    if split == "all":
        names = sorted(p.stem for p in image_dir.glob("*.png"))
        if not names:
            raise DataFormatError(image_dir, "no PNG images found")
        return [SplitEntry(n) for n in names]
    available = sorted(p.stem for p in (root / SPLIT_DIR).glob("*.txt")) if (root / SPLIT_DIR).is_dir() else []
    raise DataFormatError(split_file, f"split file not found (available splits: {available + ['all']})")


# --------------------------------------------------------------------------------- decoding
def _image_size(path: Path) -> tuple[tuple[int, int], str]:
    try:
        with Image.open(path) as im:
            return (im.height, im.width), im.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataFormatError(path, f"cannot read PNG: {exc}") from None


def load_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8 image; a corrupt file raises DataFormatError naming it."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataFormatError(path, f"cannot decode image: {exc}") from None


def load_label_ids(path: Path) -> np.ndarray:
    """H x W uint8 label ids from a single-channel PNG (modes L, P, I, I;16 with ids <= 255)."""
    try:
        with Image.open(path) as im:
            if im.mode in ("L", "P"):
                ids = np.asarray(im)
            elif im.mode in ("I", "I;16", "I;16B", "I;16L"):
                ids = np.asarray(im).astype(np.int64)
                if ids.size and (ids.min() < 0 or ids.max() > 255):
                    raise DataFormatError(path, f"label ids must be in 0..255, found {ids.min()}..{ids.max()}")
            else:
                raise DataFormatError(path, f"expected a single-channel PNG of label ids, got mode {im.mode} "
                                            "(colour-coded masks are not supported)")
    except DataFormatError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataFormatError(path, f"cannot decode semantic PNG: {exc}") from None
    return ids.astype(np.uint8, copy=False)


# --------------------------------------------------------------------------------- dataset
class KittiDataset(Dataset):
    """Detection + segmentation samples of a KITTI-layout directory.

    Labels, split names, image and mask sizes are checked when the dataset is opened;
    ``on_error="skip"`` drops the offending samples (listed in ``skipped``) instead of
    raising.  A PNG that turns out to be corrupt when decoded raises either way.
    """

    def __init__(self, root: str | Path, split: str = "train", *, image_size: tuple[int, int] | None = None,
                 augment: bool = False, on_error: str = "raise", mapping: dict | None = None,
                 cache: bool = False) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if image_size is not None:
            if len(tuple(image_size)) != 2 or min(int(v) for v in image_size) <= 0:
                raise ValueError(f"image_size must be (height, width) > 0, got {image_size!r}")
            image_size = (int(image_size[0]), int(image_size[1]))
        self.root = Path(root)
        self.split = split
        self.image_size = image_size
        self.augment = augment
        self.on_error = on_error
        self.cache = cache
        self.det_map, self.seg_lut = resolve_mapping(mapping)
        self.skipped: list[tuple[str, str]] = []
        if not self.root.is_dir():
            raise DataFormatError(self.root, "dataset root not found")
        if not (self.root / IMAGE_DIR).is_dir():
            raise DataFormatError(self.root / IMAGE_DIR, "image directory not found (expected the KITTI layout)")
        self.samples: list[_Sample] = []
        for entry in resolve_split(self.root, split):
            try:
                self.samples.append(self._index(entry))
            except DataFormatError as exc:
                if on_error == "raise":
                    raise
                self.skipped.append((entry.name, str(exc)))
        if self.skipped:
            warnings.warn(f"{self.root} [{split}]: skipped {len(self.skipped)} bad sample(s), first: "
                          f"{self.skipped[0][1]}", stacklevel=2)
        if not self.samples:
            raise DataFormatError(self.root, f"split {split!r} has no usable samples")
        self._cache: dict[int, dict[str, Any]] = {}

    # ----------------------------------------------------------------- indexing
    def _index(self, entry: SplitEntry) -> _Sample:
        image = self.root / IMAGE_DIR / f"{entry.name}.png"
        if not image.is_file():
            where = entry.source if entry.source is not None else image
            raise DataFormatError(where, f"image {IMAGE_DIR}/{entry.name}.png not found", line=entry.line)
        size, _mode = _image_size(image)
        label = self.root / LABEL_DIR / f"{entry.name}.txt"
        semantic = self.root / SEMANTIC_DIR / f"{entry.name}.png"
        boxes, labels, ignore = [], [], []
        if label.is_file():
            for obj in parse_label_file(label):
                if obj.type not in self.det_map:
                    raise DataFormatError(label, f"unknown class {obj.type!r} (known: {sorted(self.det_map)}; "
                                                 "extend the mapping to use it)", line=obj.line)
                target = self.det_map[obj.type]
                if target is None:
                    continue
                if target == IGNORE:
                    if obj.box[2] > obj.box[0] and obj.box[3] > obj.box[1]:
                        ignore.append(obj.box)
                    continue
                boxes.append(obj.box)
                labels.append(target)
        else:
            label = None
        if semantic.is_file():
            sem_size, mode = _image_size(semantic)
            if sem_size != size:
                raise DataFormatError(semantic, f"semantic mask is {sem_size[1]}x{sem_size[0]} (WxH) but image "
                                                f"{entry.name}.png is {size[1]}x{size[0]}")
            if mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                raise DataFormatError(semantic, f"expected a single-channel PNG of label ids, got mode {mode}")
        else:
            semantic = None
        return _Sample(name=entry.name, image=image, label=label, semantic=semantic, size=size,
                       boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                       labels=np.asarray(labels, np.int64).reshape(-1),
                       ignore=np.asarray(ignore, np.float32).reshape(-1, 4))

    # ----------------------------------------------------------------- items
    def __len__(self) -> int:
        return len(self.samples)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    def _load(self, index: int) -> dict[str, Any]:
        """Decoded (and resized) sample with a uint8 image; cached when ``cache``."""
        if self.cache and index in self._cache:
            return self._cache[index]
        s = self.samples[index]
        rgb = load_rgb(s.image)
        if rgb.shape[:2] != s.size:
            raise DataFormatError(s.image, f"image changed size since the dataset was opened: {rgb.shape[:2]}")
        if s.semantic is not None:
            ids = load_label_ids(s.semantic)
            if ids.shape != rgb.shape[:2]:
                raise DataFormatError(s.semantic, f"semantic mask is {ids.shape[1]}x{ids.shape[0]} (WxH) but the "
                                                  f"image is {rgb.shape[1]}x{rgb.shape[0]}")
            seg = torch.from_numpy(self.seg_lut[ids])
        else:
            seg = torch.full(rgb.shape[:2], IGNORE_INDEX, dtype=torch.uint8)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
            "seg": seg,
            "boxes": torch.from_numpy(s.boxes.copy()),
            "ignore_boxes": torch.from_numpy(s.ignore.copy()),
        }
        if self.image_size is not None:
            item = T.resize(item, self.image_size)
        if self.cache:
            self._cache[index] = item
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        s = self.samples[index]
        item = self._load(index)
        if self.augment:
            item = T.random_hflip(item)
        return {
            "image": item["image"].float().div_(255.0),
            "boxes": item["boxes"].clone(),
            "labels": torch.from_numpy(s.labels.copy()),
            "ignore_boxes": item["ignore_boxes"].clone(),
            "seg": item["seg"].long(),
            "has_det": s.label is not None,
            "has_seg": s.semantic is not None,
            "name": s.name,
        }

    def __repr__(self) -> str:
        det = sum(s.label is not None for s in self.samples)
        seg = sum(s.semantic is not None for s in self.samples)
        return (f"KittiDataset(root={str(self.root)!r}, split={self.split!r}, samples={len(self)}, "
                f"with_detection={det}, with_segmentation={seg}, image_size={self.image_size})")
