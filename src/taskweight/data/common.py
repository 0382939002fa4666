"""Pieces shared by the dataset formats: class mappings (YAML data), seeded splits, PNG
checks and a base Dataset that resizes, flips, caches and skips bad samples.

Class mappings are data: ``taskweight/data/mappings/{format}.yaml``.  A user mapping (a dict
or the path of a YAML file) is merged over the format's defaults section by section; a
top-level ``inherit: false`` starts from empty tables instead.

Seeded splits (:func:`seeded_split`): the names are sorted, permuted with
``numpy.random.default_rng(seed)`` (default seed :data:`DEFAULT_SPLIT_SEED` = 0) and cut
60/20/20 into train/val/test (``round(0.6 n)``, ``round(0.2 n)``, the rest); ``"all"`` is
every name.  The result does not depend on file-system order.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image
from torch.utils.data import Dataset

from taskweight.classes import DET_CLASSES, IGNORE_INDEX, SEG_CLASSES
from taskweight.data import transforms as T
from taskweight.data.depth import load_kitti_depth
from taskweight.errors import DataFormatError
from taskweight.yamlio import load_yaml, yaml_error_location

IGNORE = "ignore"
ON_ERROR = ("raise", "skip")
DEFAULT_SPLIT_SEED = 0
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.6, "val": 0.2, "test": 0.2}
SPLITS = ("train", "val", "test")
PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
SINGLE_CHANNEL = ("L", "P", "I", "I;16", "I;16B", "I;16L")
META_KEYS = ("inherit", "description", "name")


# --------------------------------------------------------------------------------- mappings
def default_mapping(format: str) -> dict[str, Any]:
    """The format's default mapping, read from ``data/mappings/{format}.yaml``."""
    try:
        # one joinpath() per part: Traversable.joinpath takes a single argument before Python 3.11
        text = resources.files("taskweight.data").joinpath("mappings").joinpath(f"{format}.yaml").read_text("utf-8")
    except FileNotFoundError:
        raise ValueError(f"no default class mapping for format {format!r}") from None
    return load_yaml(text, f"taskweight/data/mappings/{format}.yaml")


def read_mapping_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = load_yaml(path)
    except OSError as exc:
        raise DataFormatError(path, f"cannot read mapping file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not a text file ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        line, message = yaml_error_location(exc)
        raise DataFormatError(path, f"invalid YAML: {message}", line=line) from None
    if not isinstance(data, dict):
        raise DataFormatError(path, "a mapping file must hold a YAML mapping (detection: ..., segmentation: ...)")
    return data


def merged_mapping(format: str, mapping: dict | str | Path | None) -> dict[str, Any]:
    """Defaults of ``format`` with ``mapping`` (dict or YAML path) merged over them."""
    merged = default_mapping(format)
    if mapping is None:
        return merged
    user = read_mapping_file(mapping) if isinstance(mapping, (str, Path)) else mapping
    if not isinstance(user, dict):
        raise ValueError(f"mapping must be a dict or the path of a YAML file, got {type(mapping).__name__}")
    if user.get("inherit", True) is False:
        merged = {k: ({} if isinstance(v, dict) else ([] if isinstance(v, list) else v)) for k, v in merged.items()}
    for key, value in user.items():
        if key in META_KEYS:
            continue
        if key not in merged:
            raise ValueError(f"mapping: unknown key {key!r} for format {format!r}, expected one of {sorted(merged)}")
        if isinstance(merged[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"mapping[{key!r}] must be a dict")
            merged[key] = {**merged[key], **copy.deepcopy(value)}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def detection_targets(table: dict[Any, Any], *, allow_ignore: bool = True) -> dict[str, int | str | None]:
    """Source class name -> detection class index, ``"ignore"`` or None."""
    out: dict[str, int | str | None] = {}
    for name, target in table.items():
        if target is None or (allow_ignore and target == IGNORE):
            out[str(name)] = target
        elif target in DET_CLASSES:
            out[str(name)] = DET_CLASSES.index(target)
        else:
            allowed = list(DET_CLASSES) + (["ignore"] if allow_ignore else []) + ["None"]
            raise ValueError(f"mapping['detection'][{name!r}] = {target!r}: expected one of {allowed}")
    return out


def seg_target(key: Any, target: Any, section: str = "segmentation") -> int:
    if target == IGNORE:
        return IGNORE_INDEX
    if target in SEG_CLASSES:
        return SEG_CLASSES.index(target)
    raise ValueError(f"mapping[{section!r}][{key!r}] = {target!r}: expected one of {list(SEG_CLASSES)} or 'ignore'")


def segmentation_lut(table: dict[Any, Any], size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 lookup table id -> class, bool table of ids listed in the mapping)."""
    lut = np.zeros(size, np.uint8)
    listed = np.zeros(size, bool)
    for label_id, target in table.items():
        if isinstance(label_id, bool) or not isinstance(label_id, (int, np.integer)) or not 0 <= int(label_id) < size:
            raise ValueError(f"mapping['segmentation'] key {label_id!r} must be a label id in 0..{size - 1}")
        lut[int(label_id)] = seg_target(label_id, target)
        listed[int(label_id)] = True
    return lut, listed


def color_table(table: dict[Any, Any]) -> dict[int, int]:
    """``"R,G,B"`` (or [R, G, B]) -> class, as packed 0xRRGGBB -> class index."""
    out = {}
    for key, target in table.items():
        parts = key if isinstance(key, (list, tuple)) else str(key).replace(" ", "").split(",")
        try:
            r, g, b = (int(v) for v in parts)
            if not all(0 <= v <= 255 for v in (r, g, b)):
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"mapping['colors'] key {key!r} must be 'R,G,B' with values in 0..255") from None
        out[(r << 16) | (g << 8) | b] = seg_target(key, target, "colors")
    return out


def map_colors(rgb: np.ndarray, table: dict[int, int]) -> np.ndarray:
    """H x W x 3 uint8 colour mask -> H x W uint8 classes (colours not in ``table`` are void)."""
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    out = np.zeros(packed.shape, np.uint8)
    for code, cls in table.items():
        if cls:
            out[packed == code] = cls
    return out


# --------------------------------------------------------------------------------- splits
def seeded_split(
    names: Iterable[str], split: str, seed: int = DEFAULT_SPLIT_SEED, fractions: dict[str, float] | None = None
) -> list[str]:
    """Deterministic 60/20/20 (or ``fractions``) train/val/test split of ``names``; sorted."""
    names = sorted(set(names))
    if split == "all":
        return names
    fractions = fractions or SPLIT_FRACTIONS
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: a seeded split has {list(SPLITS)} and 'all'")
    n = len(names)
    perm = np.random.default_rng(int(seed)).permutation(n)
    n_train = int(np.floor(fractions["train"] * n + 0.5))
    n_val = min(n - n_train, int(np.floor(fractions["val"] * n + 0.5)))
    cut = {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}[split]
    return sorted(names[int(i)] for i in cut)


def read_split_file(path: Path) -> list[tuple[str, int]]:
    """(name, line) of a split file: one name per line, ``#`` comments, blank lines ignored;
    a trailing ``.png`` is removed.  A name listed twice is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot read split file: {exc}") from None
    out: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    for no, line in enumerate(text.splitlines(), start=1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if len(token.split()) != 1:
            raise DataFormatError(path, f"expected one image name per line, got {token!r}", line=no)
        name = token[:-4] if token.endswith(".png") else token
        if name in seen:
            raise DataFormatError(path, f"{name!r} is listed twice (first on line {seen[name]})", line=no)
        seen[name] = no
        out.append((name, no))
    if not out:
        raise DataFormatError(path, "split file lists no images")
    return out


# --------------------------------------------------------------------------------- PNG files
def png_header(path: Path, what: str = "PNG") -> tuple[tuple[int, int], str]:
    """((H, W), mode) from the header; an unreadable file raises DataFormatError naming it."""
    try:
        with Image.open(path) as im:
            return (im.height, im.width), im.mode
    except PIL_ERRORS as exc:
        raise DataFormatError(path, f"cannot read {what}: {exc}") from None


def verify_png(path: Path, what: str = "PNG") -> None:
    """Read every chunk and check its CRC without decoding (finds truncated or damaged files)."""
    try:
        with Image.open(path) as im:
            im.verify()
    except PIL_ERRORS as exc:
        raise DataFormatError(path, f"corrupt or truncated {what}: {exc}") from None


def decode(path: Path, what: str = "PNG") -> Image.Image:
    """Fully decoded copy of an image (DataFormatError naming the file when it is corrupt)."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except PIL_ERRORS as exc:
        raise DataFormatError(path, f"cannot decode {what}: {exc}") from None


def size_mismatch(
    path: Path, what: str, size: tuple[int, int], image: Path, image_size: tuple[int, int]
) -> DataFormatError:
    return DataFormatError(
        path, f"{what} is {size[1]}x{size[0]} (WxH) but image {image.name} is {image_size[1]}x{image_size[0]}"
    )


def checked_index(index: int, length: int) -> int:
    """``index`` made non-negative; IndexError when it is out of range."""
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for {length} samples")
    return index


def dataset_item(item: dict[str, Any], *, augment: bool, has_det: bool, has_seg: bool, name: str) -> dict[str, Any]:
    """The public item of every format from a cached raw item (uint8 image, int masks):
    optional random flip, image scaled to [0, 1], tensors copied so the cache stays intact.

    A raw item with a ``depth`` map (float32 metres, 0 = no measurement) gives ``depth`` and
    ``has_depth`` = True; without one, ``has_depth`` is False and there is no ``depth``."""
    if augment:
        item = T.random_hflip(item)
    extra: dict[str, Any] = {"has_depth": item.get("depth") is not None}
    if extra["has_depth"]:
        extra["depth"] = item["depth"].float().clone()
    return {
        **extra,
        "image": item["image"].float().div_(255.0),
        "boxes": item["boxes"].clone(),
        "labels": item["labels"].clone(),
        "ignore_boxes": item["ignore_boxes"].clone(),
        "seg": item["seg"].long(),
        "has_det": has_det,
        "has_seg": has_seg,
        "name": name,
    }


def check_options(
    on_error: str, image_size: Sequence[int] | None, verify: str | None
) -> tuple[tuple[int, int] | None, str]:
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


def bbox_of_values(values: np.ndarray, keep: np.ndarray | None = None) -> dict[int, tuple[float, float, float, float]]:
    """Pixel extent (x1, y1, x2 + 1, y2 + 1) of every value of an integer map (``keep``: mask)."""
    h, w = values.shape
    flat = values.ravel()
    idx = np.flatnonzero(keep.ravel()) if keep is not None else np.arange(flat.size)
    if idx.size == 0:
        return {}
    vals, inv = np.unique(flat[idx], return_inverse=True)
    rows, cols = idx // w, idx % w
    n = len(vals)
    x1 = np.full(n, w, np.int64)
    y1 = np.full(n, h, np.int64)
    x2 = np.full(n, -1, np.int64)
    y2 = np.full(n, -1, np.int64)
    np.minimum.at(x1, inv, cols)
    np.minimum.at(y1, inv, rows)
    np.maximum.at(x2, inv, cols)
    np.maximum.at(y2, inv, rows)
    return {
        int(v): (float(a), float(b), float(c + 1), float(d + 1))
        for v, a, b, c, d in zip(vals, x1, y1, x2, y2, strict=True)
    }


def check_box(
    box: Sequence[float], size: tuple[int, int], path: Path, line: int | None, tolerance: float = 1.0
) -> tuple[float, float, float, float]:
    """Validate an x1 y1 x2 y2 box against an H x W image: x2 > x1, y2 > y1 and inside the
    image up to ``tolerance`` pixels (then clipped to it)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(np.isfinite((x1, y1, x2, y2))):
        raise DataFormatError(path, f"box {box} is not finite", line=line)
    if x2 <= x1:
        raise DataFormatError(path, f"box x_max {x2:g} <= x_min {x1:g}", line=line)
    if y2 <= y1:
        raise DataFormatError(path, f"box y_max {y2:g} <= y_min {y1:g}", line=line)
    h, w = size
    if x1 < -tolerance or y1 < -tolerance or x2 > w + tolerance or y2 > h + tolerance:
        raise DataFormatError(path, f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the {w}x{h} image", line=line)
    return max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)


def unmapped_counts(values: np.ndarray, known: np.ndarray) -> dict[int, int]:
    """Pixels per value of an integer label map that the bool table ``known`` does not list
    (values past the end of ``known`` count as not listed)."""
    hist = np.bincount(np.asarray(values).ravel().astype(np.int64, copy=False))
    listed = np.zeros(hist.size, bool)
    listed[: min(hist.size, known.size)] = known[: hist.size]
    return {int(v): int(hist[v]) for v in np.flatnonzero((hist > 0) & ~listed)}


# --------------------------------------------------------------------------------- skipped
@dataclass(frozen=True)
class SkippedSample:
    """A sample that ``on_error="skip"`` dropped: its split and id (sample name), the file and
    line (None when not applicable) of its first problem, and what is wrong."""

    split: str
    id: str
    file: str
    line: int | None
    problem: str

    @classmethod
    def of(cls, split: str, name: str, error: DataFormatError) -> SkippedSample:
        return cls(split=split, id=name, file=str(error.path), line=error.line, problem=error.reason)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "id": self.id, "file": self.file, "line": self.line, "problem": self.problem}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.problem}"


def _skipped_dict(item: Any, split: str) -> dict[str, Any]:
    """One entry of a dataset's ``skipped`` list as a dict (also (name, message) pairs of
    datasets of other registered formats)."""
    if isinstance(item, SkippedSample):
        return item.to_dict()
    if isinstance(item, dict):
        return {
            "split": item.get("split", split),
            "id": item.get("id"),
            "file": item.get("file"),
            "line": item.get("line"),
            "problem": item.get("problem"),
        }
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return {"split": split, "id": str(item[0]), "file": None, "line": None, "problem": str(item[1])}
    return {"split": split, "id": None, "file": None, "line": None, "problem": str(item)}


def skipped_report(datasets: Iterable[Any]) -> dict[str, Any]:
    """``{"count": N, "samples": [{"split", "id", "file", "line", "problem"}, ...]}`` of the
    samples that ``on_error="skip"`` dropped from ``datasets`` (all splits together, in order;
    a dataset given twice, or two datasets of one split, list a sample once)."""
    samples: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for ds in datasets:
        split = str(getattr(ds, "split", ""))
        for item in getattr(ds, "skipped", None) or []:
            entry = _skipped_dict(item, split)
            key = (entry["split"], entry["id"], entry["file"], entry["line"], entry["problem"])
            if key not in seen:
                seen.add(key)
                samples.append(entry)
    return {"count": len(samples), "samples": samples}


class EmptySplitError(DataFormatError):
    """A split left without a usable sample; ``skipped``, ``problems`` and ``unmapped`` are
    those of the dataset that could not be opened (so ``data check`` still counts them)."""

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        skipped: list[SkippedSample],
        problems: list[DataFormatError],
        unmapped: dict[str, dict[int | str, int]],
    ) -> None:
        super().__init__(path, message)
        self.skipped = skipped
        self.problems = problems
        self.unmapped = unmapped


# --------------------------------------------------------------------------------- dataset
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
    """Base of the kitti, cityscapes and woodscape datasets.

    Subclasses index every sample and hand it with its problems to :meth:`_keep` (which keeps
    it or reports the first problem through :meth:`_problem`), call :meth:`_finish`, and implement
    :meth:`_decode` -> (uint8 H x W x 3 image, uint8 H x W segmentation classes or None, boxes N x 4,
    labels N, ignore boxes M x 4).

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
    depth_source = "no depth ground truth"
    """Where the format's depth maps lie (for messages); formats that read depth replace it."""

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

    # ----------------------------------------------------------------- problems
    def _problem(self, name: str, error: DataFormatError) -> None:
        if self.on_error == "raise":
            raise error
        self.skipped.append(SkippedSample.of(self.split, name, error))
        self.problems.append(error)

    def _keep(self, name: str, sample: Any, problems: list[DataFormatError]) -> None:
        """Keep ``sample``; or, when it has problems, report the first (raise or skip) and record the rest.

        With ``verify="crc"`` a sample without problems has its label masks decoded and
        checked first (:meth:`_check_labels`)."""
        if not problems and sample is not None and self.verify == "crc":
            try:
                self._check_labels(sample)
            except DataFormatError as exc:
                problems = [exc]
        if problems:
            self._problem(name, problems[0])
            self.problems.extend(problems[1:])
        else:
            self.samples.append(sample)

    def _finish(self) -> None:
        if self.skipped:
            warnings.warn(
                f"{self.root} [{self.split}]: skipped {len(self.skipped)} bad sample(s), first: {self.skipped[0]}",
                stacklevel=3,
            )
        if self.read_depth and self.samples and not any(self.has_depth(s) for s in self.samples):
            warnings.warn(
                f"{self.root} [{self.split}]: depth was asked for but none of the {len(self.samples)} samples has "
                f"a depth map ({self.depth_source}); the split trains and scores no depth",
                stacklevel=3,
            )
        if not self.samples:
            raise EmptySplitError(
                self.root,
                f"split {self.split!r} has no usable samples",
                skipped=self.skipped,
                problems=self.problems,
                unmapped=self.unmapped,
            )

    def _verify(self, path: Path, what: str) -> tuple[tuple[int, int], str]:
        size, mode = png_header(path, what)
        if self.verify == "crc":
            verify_png(path, what)
        return size, mode

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

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = checked_index(index, len(self))
        s = self.samples[index]
        return dataset_item(self._load(index), augment=self.augment, has_det=s.has_det, has_seg=s.has_seg, name=s.name)

    def __repr__(self) -> str:
        det = sum(s.has_det for s in self.samples)
        seg = sum(s.has_seg for s in self.samples)
        depth = f"with_depth={sum(self.has_depth(s) for s in self.samples)}, " if self.read_depth else ""
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, samples={len(self)}, "
            f"with_detection={det}, with_segmentation={seg}, {depth}image_size={self.image_size})"
        )
