"""KITTI-layout dataset: object labels (``label_2``) and semantic labels (``semantic``).

Layout under ``root``::

    training/image_2/NAME.png     RGB image (required)
    training/label_2/NAME.txt     KITTI object labels -> the sample is labelled for detection
    training/semantic/NAME.png    semantic mask -> the sample is labelled for segmentation
    training/depth/NAME.png       with depth=True: KITTI depth (uint16, metres x 256, 0 = none) -> labelled for depth
    splits/SPLIT.txt              one NAME per line (optional)

Real depth for the object images (``depth_root=``): KITTI's depth completion release keeps its
ground truth per raw drive, ``DEPTH_ROOT/{train,val}/DRIVE/proj_depth/groundtruth/image_02/FRAME.png``;
the object devkit's ``mapping/train_rand.txt`` and ``train_mapping.txt`` (option ``depth_mapping``,
default ``ROOT/devkit/mapping``) tie each object training image to its drive and frame
(:func:`~taskweight.data.depth.read_object_to_raw_mapping`). With ``depth_root`` set, depth is read
from there instead of ``training/depth``; an image the release has no map for is not labelled for depth.

Real KITTI covers the two tasks with different images (7481 object labels, a few hundred
semantic masks); a sample carries whatever exists and says so in ``has_det`` / ``has_seg``.
An image with neither labels, a label without its image, malformed lines, unknown classes,
boxes with right <= left or outside the image (1 pixel tolerance, then clipped), corrupt
PNGs and masks of another size are problems: raised (``on_error="raise"``) or counted,
listed in ``skipped`` / ``problems`` and warned about (``on_error="skip"``).

Splits: ``splits/SPLIT.txt`` wins when present; ``"all"`` is every image; a raw download
without any split file (``training/image_2`` + ``label_2`` [+ ``semantic``]) is cut 60/20/20
into train/val/test by :func:`~taskweight.data.splits.seeded_split` with ``split_seed``
(default 0), separately for the images with detection labels only, segmentation labels
only, both, and none, so every split gets its share of each kind.

Semantic masks are either single-channel Cityscapes labelIds (the KITTI semantics
benchmark) or RGB colour-coded masks (the 11-class set: road (128,64,128), sidewalk
(0,0,192), black (0,0,0) = no label (255), every other colour void).
``semantic_encoding="auto"`` (default) reads colour masks when every PNG of the semantic
folder is RGB(A) and label ids otherwise; ``"ids"`` / ``"color"`` force one.

Class mapping (:file:`mappings/kitti.yaml`, :data:`DEFAULT_MAPPING`; override with
``mapping=`` a dict or YAML path):

- detection: Car, Van -> car; Pedestrian, Person_sitting -> pedestrian; Cyclist -> cyclist;
  DontCare -> ``ignore_boxes`` (detections there are not penalised); Truck, Tram, Misc are
  not used (dropped, neither targets nor ignore regions); any other type is an error.
- segmentation: label id 7 (road) -> road, 8 (sidewalk) -> sidewalk, every other id -> void;
  ``colors`` maps the colour-coded masks.

With ``verify="crc"`` (the default with ``on_error="skip"``) every semantic mask is decoded
when the dataset is opened, so a malformed one (a 16-bit mask with ids past 255, a PNG
that does not decode) is skipped or raised then, not when its sample is loaded; mask
pixels the mapping does not cover (label ids that are neither listed nor Cityscapes ids
0..33, colours not listed) are counted in ``unmapped`` for ``data check``'s warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from taskweight.classes import DET_CLASSES, IGNORE_INDEX, SEG_CLASSES
from taskweight.data.boxes import check_box
from taskweight.data.cityscapes_labels import MAX_ID
from taskweight.data.class_mapping import (
    IGNORE,
    META_KEYS,
    color_table,
    default_mapping,
    map_colors,
    merged_mapping,
    unmapped_counts,
)
from taskweight.data.dataset import DetSegDataset, Sample
from taskweight.data.depth import depth_completion_path, read_object_to_raw_mapping
from taskweight.data.images import PIL_ERRORS, SINGLE_CHANNEL, png_header, read_rgb, verify_png
from taskweight.data.kitti_labels import parse_label_line
from taskweight.data.splits import DEFAULT_SPLIT_SEED, SplitEntry, split_entries, stratified_split
from taskweight.errors import DataFormatError

DEFAULT_MAPPING: dict[str, dict[Any, str | None]] = default_mapping("kitti")
"""KITTI type -> detection class name, ``"ignore"`` (DontCare region) or ``None`` (not used);
semantic label id -> segmentation class name (``"ignore"`` gives 255); ``"R,G,B"`` colour ->
segmentation class.  Read from ``data/mappings/kitti.yaml``."""

IMAGE_DIR, LABEL_DIR, SEMANTIC_DIR = "training/image_2", "training/label_2", "training/semantic"
DEPTH_DIR = "training/depth"
"""Depth maps paired with the images by name (KITTI's ``proj_depth/groundtruth`` format, see
:mod:`taskweight.data.depth`); read only with ``depth=True`` (a run whose tasks include depth)."""
SEMANTIC_ENCODINGS = ("auto", "ids", "color")


# --------------------------------------------------------------------------------- mapping
def _merged(mapping: dict | str | Path | None) -> dict[str, Any]:
    if isinstance(mapping, dict):
        for key in mapping:
            if key in META_KEYS:
                continue
            if key not in DEFAULT_MAPPING:
                raise ValueError(f"mapping: unknown key {key!r}, expected 'detection', 'segmentation' and/or 'colors'")
    return merged_mapping("kitti", mapping)


def resolve_mapping(mapping: dict | str | Path | None = None) -> tuple[dict[str, int | str | None], np.ndarray]:
    """Merge ``mapping`` (dict or YAML path) into :data:`DEFAULT_MAPPING`; return (type -> class
    index | "ignore" | None, 256-entry label-id lookup table)."""
    merged = _merged(mapping)
    det: dict[str, int | str | None] = {}
    for kitti_type, target in (merged.get("detection") or {}).items():
        if target is None or target == IGNORE:
            det[str(kitti_type)] = target
        elif target in DET_CLASSES:
            det[str(kitti_type)] = DET_CLASSES.index(target)
        else:
            raise ValueError(
                f"mapping['detection'][{kitti_type!r}] = {target!r}: expected one of "
                f"{list(DET_CLASSES)}, 'ignore' or None"
            )
    lut = np.zeros(256, np.uint8)  # void
    for label_id, target in (merged.get("segmentation") or {}).items():
        if isinstance(label_id, bool) or not isinstance(label_id, (int, np.integer)) or not 0 <= int(label_id) <= 255:
            raise ValueError(f"mapping['segmentation'] key {label_id!r} must be a label id in 0..255")
        if target == IGNORE:
            lut[int(label_id)] = IGNORE_INDEX
        elif target in SEG_CLASSES:
            lut[int(label_id)] = SEG_CLASSES.index(target)
        else:
            raise ValueError(
                f"mapping['segmentation'][{label_id}] = {target!r}: expected one of {list(SEG_CLASSES)} or 'ignore'"
            )
    return det, lut


def resolve_color_mapping(mapping: dict | str | Path | None = None) -> dict[int, int]:
    """Packed 0xRRGGBB -> segmentation class of the colour-coded masks."""
    return color_table(_merged(mapping).get("colors") or {})


def known_label_ids(mapping: dict | str | Path | None = None) -> np.ndarray:
    """256-entry bool table of the label ids the mapping covers: the ids it lists and the
    Cityscapes label ids 0..33 (void unless listed, by design); any other id is unmapped."""
    known = np.zeros(256, bool)
    known[: MAX_ID + 1] = True
    for label_id in _merged(mapping).get("segmentation") or {}:
        known[int(label_id)] = True  # validated by resolve_mapping
    return known


# --------------------------------------------------------------------------------- splits
def generated_split(root: Path, split: str, seed: int = DEFAULT_SPLIT_SEED) -> list[str]:
    """Names of ``split`` = ``"all"`` (every image and orphan label) or a seeded train/val/test cut,
    stratified by label kind (see the module docstring)."""
    root = Path(root)
    images = {p.stem for p in (root / IMAGE_DIR).glob("*.png")}
    labels = {p.stem for p in (root / LABEL_DIR).glob("*.txt")}
    masks = {p.stem for p in (root / SEMANTIC_DIR).glob("*.png")}
    if not images:
        raise DataFormatError(root / IMAGE_DIR, "no PNG images found")
    groups: dict[tuple[bool, bool], list[str]] = {}
    for n in images | labels | masks:
        groups.setdefault((n in labels, n in masks), []).append(n)
    return stratified_split(groups, split, seed)


def resolve_split(root: Path, split: str, *, seed: int = DEFAULT_SPLIT_SEED) -> list[SplitEntry]:
    """Entries of a split: ``root/splits/SPLIT.txt`` if it exists, every image (and orphan
    label) for ``"all"``, a seeded 60/20/20 train/val/test split when the dataset has no split
    files at all (:func:`generated_split`; :func:`taskweight.data.splits.split_entries`)."""
    return split_entries(Path(root), split, lambda s: generated_split(Path(root), s, seed))


# --------------------------------------------------------------------------------- decoding
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
                raise DataFormatError(
                    path,
                    f"expected a single-channel PNG of label ids, got mode {im.mode} "
                    "(colour-coded masks are not supported)",
                )
    except DataFormatError:
        raise
    except PIL_ERRORS as exc:
        raise DataFormatError(path, f"cannot decode semantic PNG: {exc}") from None
    return ids.astype(np.uint8, copy=False)


def load_color_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8 colours of an RGB(A) (or palette) colour-coded mask."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("RGB", "RGBA", "P"):
                raise DataFormatError(path, f"expected an RGB colour-coded mask, got mode {im.mode}")
            return np.asarray(im.convert("RGB"))
    except DataFormatError:
        raise
    except PIL_ERRORS as exc:
        raise DataFormatError(path, f"cannot decode semantic PNG: {exc}") from None


def load_color_mask(path: Path, table: dict[int, int]) -> np.ndarray:
    """H x W uint8 classes of an RGB(A) colour-coded mask (see :func:`resolve_color_mapping`)."""
    return map_colors(load_color_rgb(path), table)


def unmapped_colors(rgb: np.ndarray, table: dict[int, int]) -> dict[str, int]:
    """``"R,G,B"`` -> pixels of the colours of a mask that ``table`` does not list."""
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    codes, counts = np.unique(packed, return_counts=True)
    return {
        f"{c >> 16},{(c >> 8) & 255},{c & 255}": int(n)
        for c, n in zip(codes.tolist(), counts.tolist(), strict=True)
        if c not in table
    }


def parse_label_lines(path: Path) -> tuple[list, list[DataFormatError]]:
    """(objects, problems) of a KITTI label file: every malformed line is a problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return [], [DataFormatError(path, f"not a text file ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return [], [DataFormatError(path, f"cannot read label file: {exc.strerror or exc}")]
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    objects, problems = [], []
    for no, line in enumerate(lines, start=1):
        try:
            objects.append(parse_label_line(line, path, no))
        except DataFormatError as exc:
            problems.append(exc)
    return objects, problems


def _no_objects() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32)


# --------------------------------------------------------------------------------- dataset
class KittiDataset(DetSegDataset):
    """Detection + segmentation samples of a KITTI-layout directory.

    Labels, split names, image and mask sizes are checked when the dataset is opened;
    ``on_error="skip"`` drops the offending samples (listed in ``skipped`` as
    :class:`~taskweight.data.problems.SkippedSample` and in ``problems`` as errors with path
    and line) instead of raising.  ``verify="crc"`` (default with ``"skip"``) reads every
    PNG completely and decodes every semantic mask at opening, so a truncated file or a
    malformed mask is skipped too; with ``"header"`` (default with ``"raise"``) a PNG that
    turns out to be corrupt or malformed when decoded raises when its sample is loaded.
    A sample's ``info`` holds its ``label`` and ``semantic`` paths (None when absent) and its
    validated ``boxes``, ``labels`` and ``ignore`` arrays.
    """

    format_name = "kitti"
    layout_name = "KITTI"
    depth_source = f"{DEPTH_DIR}/NAME.png"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        image_size: tuple[int, int] | None = None,
        augment: bool = False,
        on_error: str = "raise",
        mapping: dict | str | Path | None = None,
        cache: bool = False,
        split_seed: int = DEFAULT_SPLIT_SEED,
        semantic_encoding: str = "auto",
        verify: str | None = None,
        depth: bool = False,
        depth_root: str | Path | None = None,
        depth_mapping: str | Path | None = None,
    ) -> None:
        super().__init__(
            root,
            split,
            image_size=image_size,
            augment=augment,
            on_error=on_error,
            cache=cache,
            verify=verify,
            depth=depth,
        )
        self.depth_root = Path(depth_root) if depth_root is not None else None
        self.raw_frames: dict[str, tuple[str, str]] = {}
        """Object image NAME → (drive, frame) when depth comes from the depth completion release."""
        if self.depth_root is not None and self.read_depth:
            if not self.depth_root.is_dir():
                raise DataFormatError(self.depth_root, "option depth_root: no such folder")
            mapping_dir = Path(depth_mapping) if depth_mapping is not None else self.root / "devkit" / "mapping"
            self.raw_frames = read_object_to_raw_mapping(mapping_dir)
        if semantic_encoding not in SEMANTIC_ENCODINGS:
            raise ValueError(f"semantic_encoding must be one of {SEMANTIC_ENCODINGS}, got {semantic_encoding!r}")
        self.split_seed = int(split_seed)
        self.det_map, self.seg_lut = resolve_mapping(mapping)
        self.color_table = resolve_color_mapping(mapping)
        self.seg_known = known_label_ids(mapping)
        self._require_image_dir(self.root / IMAGE_DIR)
        self.semantic_encoding = self._encoding(semantic_encoding)
        self._open()

    def _generate_split(self, split: str) -> list[str]:
        return generated_split(self.root, split, self.split_seed)

    def _depth_path(self, name: str) -> Path | None:
        """Where image ``name``'s depth map would be: ``training/depth``, or with ``depth_root`` the depth
        completion release's map of the same drive and frame (None: the release has none for it)."""
        if self.depth_root is None:
            return self.root / DEPTH_DIR / f"{name}.png"
        if name not in self.raw_frames:
            return None
        return depth_completion_path(self.depth_root, *self.raw_frames[name])

    def _encoding(self, requested: str) -> str:
        if requested != "auto":
            return requested
        modes = set()
        for p in sorted((self.root / SEMANTIC_DIR).glob("*.png")):
            try:
                with Image.open(p) as im:
                    modes.add(im.mode)
            except PIL_ERRORS:
                continue  # reported when the sample is indexed
        return "color" if modes and modes <= {"RGB", "RGBA"} else "ids"

    # ----------------------------------------------------------------- indexing
    def _check_semantic(self, semantic: Path, size: tuple[int, int], name: str) -> None:
        sem_size, mode = png_header(semantic, "semantic PNG")
        if sem_size != size:
            raise DataFormatError(
                semantic,
                f"semantic mask is {sem_size[1]}x{sem_size[0]} (WxH) but image {name}.png is {size[1]}x{size[0]}",
            )
        if self.semantic_encoding == "ids" and mode not in SINGLE_CHANNEL:
            raise DataFormatError(
                semantic,
                f"expected a single-channel PNG of label ids, got mode {mode} "
                "(colour-coded masks: semantic_encoding='color')",
            )
        if self.semantic_encoding == "color" and mode not in ("RGB", "RGBA", "P"):
            raise DataFormatError(semantic, f"expected an RGB colour-coded mask, got mode {mode}")
        if self.verify == "crc":
            verify_png(semantic, "semantic PNG")

    def _objects(
        self, label: Path, size: tuple[int, int], problems: list[DataFormatError]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes, labels, ignore boxes) of a label file; every bad line is appended to ``problems``."""
        boxes, labels, ignore = [], [], []
        objects, line_problems = parse_label_lines(label)
        problems += line_problems
        for obj in objects:
            if obj.type not in self.det_map:
                problems.append(
                    DataFormatError(
                        label,
                        f"unknown class {obj.type!r} (known: {sorted(self.det_map)}; extend the mapping to use it)",
                        line=obj.line,
                    )
                )
                continue
            target = self.det_map[obj.type]
            if target is None:
                continue
            if target == IGNORE:
                if obj.box[2] > obj.box[0] and obj.box[3] > obj.box[1]:
                    ignore.append(obj.box)
                continue
            try:
                box = check_box(obj.box, size, label, obj.line)
            except DataFormatError as exc:
                problems.append(exc)
                continue
            boxes.append(box)
            labels.append(target)
        return (
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(labels, np.int64).reshape(-1),
            np.asarray(ignore, np.float32).reshape(-1, 4),
        )

    def _index(self, entry: SplitEntry) -> tuple[Sample | None, list[DataFormatError]]:
        image = self.root / IMAGE_DIR / f"{entry.name}.png"
        label = self.root / LABEL_DIR / f"{entry.name}.txt"
        semantic = self.root / SEMANTIC_DIR / f"{entry.name}.png"
        try:
            if not image.is_file():
                return None, [self._missing_image(entry, image, [label, semantic])]
            size, _mode = self._checked_png(image, "image")
            if not label.is_file() and not semantic.is_file():
                raise DataFormatError(
                    image,
                    f"image without labels: neither {LABEL_DIR}/{entry.name}.txt nor "
                    f"{SEMANTIC_DIR}/{entry.name}.png found",
                )
        except DataFormatError as exc:
            return None, [exc]
        problems: list[DataFormatError] = []
        semantic_used = semantic if semantic.is_file() else None
        if semantic_used is not None:
            try:
                self._check_semantic(semantic_used, size, entry.name)
            except DataFormatError as exc:
                problems.append(exc)
        label_used = label if label.is_file() else None
        info: dict[str, Any] = {"label": label_used, "semantic": semantic_used, "depth": None}
        if label_used is not None:
            info["boxes"], info["labels"], info["ignore"] = self._objects(label_used, size, problems)
        else:
            info["boxes"], info["labels"], info["ignore"] = _no_objects()
        if self.read_depth:
            depth = self._depth_path(entry.name)
            info["depth"] = None if depth is None else self._paired_depth(depth, size, image, problems)
        if problems:  # the mask's problem first, then the label file's by line
            problems.sort(key=lambda e: (e.path != semantic_used, e.line or 0))
            return None, problems
        has_det, has_seg = label_used is not None, semantic_used is not None
        return Sample(entry.name, image, size, has_det=has_det, has_seg=has_seg, info=info), []

    def _check_labels(self, s: Sample) -> None:
        semantic = s.info["semantic"]
        if semantic is not None:
            _seg, unmapped = self._semantic_classes(semantic, s.size, count_unmapped=True)
            self._note_unmapped(semantic, unmapped)

    # ----------------------------------------------------------------- items
    def _semantic_classes(
        self, semantic: Path, size: tuple[int, int], *, count_unmapped: bool = False
    ) -> tuple[np.ndarray, dict[Any, int]]:
        """(H x W classes, pixels per label the mapping does not cover when ``count_unmapped``)
        of a semantic mask that must be ``size``; a malformed mask raises naming the file."""
        unmapped: dict[Any, int] = {}
        if self.semantic_encoding == "color":
            rgb = load_color_rgb(semantic)
            seg = map_colors(rgb, self.color_table)
            if count_unmapped:
                unmapped = unmapped_colors(rgb, self.color_table)
        else:
            ids = load_label_ids(semantic)
            seg = self.seg_lut[ids]
            if count_unmapped:
                unmapped = unmapped_counts(ids, self.seg_known)
        if seg.shape != size:
            raise DataFormatError(
                semantic, f"semantic mask is {seg.shape[1]}x{seg.shape[0]} (WxH) but the image is {size[1]}x{size[0]}"
            )
        return seg, unmapped

    def _decode(self, s: Sample) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
        rgb = read_rgb(s.image)
        seg = None
        semantic = s.info["semantic"]
        if semantic is not None:
            seg, _ = self._semantic_classes(semantic, rgb.shape[:2])
        return rgb, seg, s.info["boxes"].copy(), s.info["labels"].copy(), s.info["ignore"].copy()
